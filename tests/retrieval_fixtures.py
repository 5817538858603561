"""Small definitions for retrieval and training tests: users, merchants and a view with an on-demand feature."""

from datetime import timedelta
from pathlib import Path

import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView, OnDemandTransformation

user = Entity("user", join_keys={"user_id": "int64"})
merchant = Entity("merchant", join_keys={"merchant_id": "int64"})

user_stats = FeatureGroup(
    "user_stats",
    entities=[user],
    features=[Feature("txn_count", "int64"), Feature("amount_mean", "float64"), Feature("segment", "string")],
    partitions=DailyPartitions(start="2024-05-01"),
    ttl=timedelta(days=2),
)
merchant_stats = FeatureGroup(
    "merchant_stats",
    entities=[merchant],
    features=[Feature("txn_count", "int64"), Feature("fraud_rate", "float64")],
    partitions=DailyPartitions(start="2024-05-01"),
)


def amount_ratio(df: pd.DataFrame) -> pd.DataFrame:
    """The requested amount relative to the user's mean amount."""
    return pd.DataFrame({"amount_ratio": df["amount"] / df["amount_mean"]})


risk_view = FeatureView(
    "risk",
    features=["user_stats:amount_mean", "user_stats:segment", "merchant_stats:fraud_rate"],
    on_demand=[
        OnDemandTransformation(
            "amount_ratio", amount_ratio, outputs=[Feature("amount_ratio", "float64")],
            inputs=["amount_mean"], request_inputs=["amount"],
        )
    ],
)
numeric_view = FeatureView("numeric", features=["user_stats:txn_count", "user_stats:amount_mean", "merchant_stats:fraud_rate"])


def make_store(root: Path, views: tuple[FeatureView, ...] = (risk_view, numeric_view)) -> FeatureStore:
    """A store over `user_stats`, `merchant_stats` and the `risk` and `numeric` views, applied on a Delta root under `root`."""
    store = FeatureStore(groups=[user_stats, merchant_stats], views=list(views), offline_root=root / "offline", project="test")
    store.apply()
    return store


def user_rows(day: str, values: dict[int, tuple[int, float, str]], hour: int = 12) -> pd.DataFrame:
    """`user_stats` rows at `hour` of `day`: user → (txn_count, amount_mean, segment)."""
    return pd.DataFrame(
        {
            "user_id": list(values),
            "event_time": pd.Timestamp(f"{day} {hour:02d}:00"),
            "txn_count": [v[0] for v in values.values()],
            "amount_mean": [v[1] for v in values.values()],
            "segment": [v[2] for v in values.values()],
        }
    )


def merchant_rows(day: str, values: dict[int, tuple[int, float]]) -> pd.DataFrame:
    """`merchant_stats` rows at midnight of `day`: merchant → (txn_count, fraud_rate)."""
    return pd.DataFrame(
        {
            "merchant_id": list(values),
            "event_time": pd.Timestamp(f"{day} 00:00"),
            "txn_count": [v[0] for v in values.values()],
            "fraud_rate": [v[1] for v in values.values()],
        }
    )
