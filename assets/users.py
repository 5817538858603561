"""The users domain: spending behaviour and profile of card holders."""

from datetime import datetime, timedelta

import pandas as pd

from assets.aggregations import daily_windows
from assets.entities import user
from assets.partitions import DAILY
from feature_platform import DriftSettings, Feature, FeatureGroup, Rule


def compute_user_transaction_features(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    frame = daily_windows(
        inputs["transactions"],
        start,
        end,
        keys=["user_id"],
        windows={
            30: lambda g: g.agg(
                txn_count_30d=("amount", "size"),
                amount_mean_30d=("amount", "mean"),
                amount_max_30d=("amount", "max"),
                distinct_merchants_30d=("merchant_id", "nunique"),
            ),
            7: lambda g: g.agg(txn_count_7d=("amount", "size"), amount_sum_7d=("amount", "sum")),
        },
    )
    return frame.fillna({"txn_count_7d": 0, "amount_sum_7d": 0.0}).astype({"txn_count_7d": "int64"})


user_transaction_features = FeatureGroup(
    "user_transaction_features",
    entities=[user],
    features=[
        Feature("txn_count_7d", "int64", "Transactions in the 7 days before the event time."),
        Feature("amount_sum_7d", "float64", "Amount spent in the 7 days before."),
        Feature("txn_count_30d", "int64", "Transactions in the 30 days before."),
        Feature("amount_mean_30d", "float64", "Mean transaction amount over the 30 days before."),
        Feature("amount_max_30d", "float64", "Largest transaction amount over the 30 days before."),
        Feature("distinct_merchants_30d", "int64", "Distinct merchants paid in the 30 days before."),
    ],
    partitions=DAILY,
    ttl=timedelta(days=2),
    description="Rolling 7- and 30-day spending aggregates per card holder, as of the start of each day.",
    owner="team:fraud-ml",
    tags={"domain": "users", "pii": "false", "tier": "gold"},
    compute=compute_user_transaction_features,
    sources=["transactions"],
    lookback=timedelta(days=30),
    rules=[
        Rule.in_range("txn_count_7d", min=0, description="A count cannot be negative."),
        Rule.custom(
            "window_counts_consistent",
            lambda df: df["txn_count_7d"] <= df["txn_count_30d"],
            description="The 7-day window lies inside the 30-day one.",
        ),
        Rule.in_range(
            "amount_sum_7d", min=0, severity="WARN", description="Negative weekly spend: refunds or an upstream sign bug."
        ),
        Rule.max_null_fraction("amount_mean_30d", 0.0, description="Every row has a 30-day history."),
    ],
)


def compute_user_last_transaction(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    events = inputs["transactions"]
    events = events[(events["event_time"] >= start) & (events["event_time"] < end)]
    events = events.assign(day=events["event_time"].dt.floor("D"))
    last = events.sort_values("event_time").groupby(["user_id", "day"], sort=False).tail(1)
    return last.rename(columns={"amount": "last_amount", "merchant_id": "last_merchant_id"})[
        ["user_id", "event_time", "last_amount", "last_merchant_id"]
    ]


user_last_transaction = FeatureGroup(
    "user_last_transaction",
    entities=[user],
    features=[
        Feature("last_amount", "float64", "Amount of the card holder's latest transaction."),
        Feature("last_merchant_id", "int64", "Merchant of the card holder's latest transaction."),
    ],
    partitions=DAILY,
    ttl=timedelta(days=7),
    description="The latest transaction of each card holder, at second resolution.",
    owner="team:fraud-ml",
    tags={"domain": "users", "freshness": "realtime"},
    compute=compute_user_last_transaction,
    sources=["transactions"],
    rules=[Rule.in_range("last_amount", min=0, description="A card payment cannot have a negative amount.")],
    drift=DriftSettings(max_drifted_share=0.3),
)


def compute_user_profile(inputs: dict[str, pd.DataFrame], start: None, end: None) -> pd.DataFrame:
    return inputs["users"].rename(columns={"signup_time": "event_time"})


user_profile = FeatureGroup(
    "user_profile",
    entities=[user],
    features=[
        Feature("age", "int64", "Age in years at sign-up."),
        Feature("home_country", "string", "Country of residence."),
        Feature("is_premium", "bool", "Holds a premium card."),
    ],
    partitions=None,
    description="Card holder profile as of sign-up (a snapshot, not partitioned).",
    owner="team:fraud-ml",
    tags={"domain": "users", "pii": "true"},
    compute=compute_user_profile,
    sources=["users"],
)

feature_groups = [user_transaction_features, user_last_transaction, user_profile]
