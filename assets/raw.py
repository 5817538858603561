"""Raw sources of the demo: synthetic card transactions (daily) and user profiles.

The data is deterministic (seeded by day) and scales with the environment
variable `FEATURE_PLATFORM_DEMO_SCALE` (default 1: ~1,000 users, ~3,000
transactions a day). Two days are special on purpose: `BROKEN_DAY` carries
negative amounts (an upstream bug the quality rules must block) and from
`DRIFT_FROM` amounts shift upwards (the drift monitor must notice).
"""

import os
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd

from assets.partitions import DAILY
from feature_platform import RawSource

COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "JP"]
BROKEN_DAY = date(2024, 4, 20)
DRIFT_FROM = date(2024, 5, 8)


def scale() -> int:
    return max(1, int(os.environ.get("FEATURE_PLATFORM_DEMO_SCALE", "1")))


def user_count() -> int:
    return 1_000 * scale()


def merchant_count() -> int:
    return 200 * scale()


def produce_transactions(start: datetime, end: datetime) -> pd.DataFrame:
    """One day of card transactions with fraud labels."""
    day = start.date()
    rng = np.random.default_rng(day.toordinal())
    n = int(3_000 * scale() * (1.15 if day.weekday() >= 5 else 1.0))
    user_id = rng.integers(0, user_count(), n)
    seconds = np.sort(rng.integers(0, 86_400, n))
    is_fraud = rng.random(n) < 0.01
    amount = rng.lognormal(mean=3.0, sigma=0.9, size=n) * np.where(is_fraud, 4.0, 1.0)
    if day >= DRIFT_FROM:
        amount *= 2.5
    if day == BROKEN_DAY:
        amount[rng.random(n) < 0.05] *= -1
    home = np.array(COUNTRIES)[user_id % len(COUNTRIES)]
    abroad = rng.random(n) < np.where(is_fraud, 0.5, 0.05)
    country = np.where(abroad, np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)], home)
    return pd.DataFrame(
        {
            "transaction_id": day.toordinal() * 10_000_000 + np.arange(n),
            "user_id": user_id.astype("int64"),
            "merchant_id": rng.integers(0, merchant_count(), n).astype("int64"),
            "country": country,
            "amount": np.round(amount, 2),
            "is_fraud": is_fraud,
            "event_time": pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s"),
        }
    )


def produce_users(start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Profiles of every card holder, as of sign-up."""
    rng = np.random.default_rng(7)
    n = user_count()
    signup = datetime(2022, 1, 1, tzinfo=timezone.utc) + pd.to_timedelta(rng.integers(0, 800 * 86_400, n), unit="s")
    return pd.DataFrame(
        {
            "user_id": np.arange(n, dtype="int64"),
            "signup_time": signup,
            "age": rng.integers(18, 85, n).astype("int64"),
            "home_country": np.array(COUNTRIES)[np.arange(n) % len(COUNTRIES)],
            "is_premium": rng.random(n) < 0.2,
        }
    )


transactions = RawSource(
    "transactions",
    partitions=DAILY,
    description="Card transactions with fraud labels, one folder of Parquet files per day.",
    owner="team:payments-data",
    produce=produce_transactions,
)

users = RawSource(
    "users",
    partitions=None,
    description="Card holder profiles (sign-up time, age, home country, premium flag).",
    owner="team:payments-data",
    produce=produce_users,
)
