"""The merchants domain: merchant risk, overall and by card country (a composite key)."""

from datetime import datetime, timedelta

import pandas as pd

from assets.aggregations import daily_windows
from assets.entities import country, merchant
from assets.partitions import DAILY
from feature_platform import DriftSettings, Feature, FeatureGroup, Rule


def compute_merchant_features(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    return daily_windows(
        inputs["transactions"],
        start,
        end,
        keys=["merchant_id"],
        windows={
            7: lambda g: g.agg(
                merchant_txn_count_7d=("amount", "size"),
                merchant_amount_mean_7d=("amount", "mean"),
                merchant_fraud_rate_7d=("is_fraud", "mean"),
            )
        },
    )


merchant_features = FeatureGroup(
    "merchant_features",
    entities=[merchant],
    features=[
        Feature("merchant_txn_count_7d", "int64", "Transactions at the merchant in the 7 days before."),
        Feature("merchant_amount_mean_7d", "float64", "Mean amount at the merchant over the 7 days before."),
        Feature("merchant_fraud_rate_7d", "float64", "Share of fraudulent transactions over the 7 days before."),
    ],
    partitions=DAILY,
    ttl=timedelta(days=3),
    description="Seven-day volume, ticket size and fraud rate per merchant.",
    owner="team:risk",
    tags={"domain": "merchants", "tier": "gold"},
    compute=compute_merchant_features,
    sources=["transactions"],
    lookback=timedelta(days=7),
    rules=[
        Rule.in_range("merchant_fraud_rate_7d", min=0, max=1, description="A rate is a share."),
        Rule.in_range("merchant_txn_count_7d", min=1, description="A merchant row exists because it had transactions."),
    ],
    # 200 merchants make a small sample: the default distance threshold (0.1) would alarm on noise.
    drift=DriftSettings(max_drifted_share=0.3, method="wasserstein", threshold=0.5),
)


def compute_merchant_country_features(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    return daily_windows(
        inputs["transactions"],
        start,
        end,
        keys=["merchant_id", "country"],
        windows={1: lambda g: g.agg(country_txn_count_1d=("amount", "size"), country_amount_sum_1d=("amount", "sum"))},
    )


merchant_country_features = FeatureGroup(
    "merchant_country_features",
    entities=[merchant, country],
    features=[
        Feature("country_txn_count_1d", "int64", "Transactions at the merchant with cards of this country, the day before."),
        Feature("country_amount_sum_1d", "float64", "Amount at the merchant with cards of this country, the day before."),
    ],
    partitions=DAILY,
    ttl=timedelta(days=2),
    description="Yesterday's volume per merchant and card country (composite key).",
    owner="team:risk",
    tags={"domain": "merchants"},
    compute=compute_merchant_country_features,
    sources=["transactions"],
    lookback=timedelta(days=1),
    rules=[
        Rule.in_range(
            "country_amount_sum_1d", min=0, description="Yesterday's card volume cannot be negative."
        ),
    ],
    drift=None,
)

feature_groups = [merchant_features, merchant_country_features]
