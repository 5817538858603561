"""The real-time domain: card holders' transactions of the last 10 minutes and hour, from the transaction stream.

`card_activity` is a stream group: `feature-platform stream card_activity` (or
its Dagster sensor) consumes the `card_activity` stream, which
`python -m demo_stream` feeds with generated transactions.
"""

from datetime import datetime, timedelta, timezone

import numpy as np

from assets.entities import user
from assets.raw import merchant_count, user_count
from feature_platform import Aggregation, FeatureView, StreamFeatureGroup

card_activity = StreamFeatureGroup(
    "card_activity",
    entities=[user],
    fields={"amount": "float64", "merchant_id": "int64"},
    aggregations=[
        Aggregation("count", timedelta(minutes=10), name="txn_count_10m"),
        Aggregation("count", timedelta(hours=1), name="txn_count_1h"),
        Aggregation("sum", timedelta(minutes=10), column="amount", name="amount_sum_10m"),
        Aggregation("sum", timedelta(hours=1), column="amount", name="amount_sum_1h"),
        Aggregation("max", timedelta(hours=1), column="amount", name="amount_max_1h"),
        Aggregation("approx_count_distinct", timedelta(hours=1), column="merchant_id", name="merchants_1h"),
    ],
    description="Card holder activity over the last 10 minutes and hour, maintained from the transaction stream.",
    owner="team:fraud-ml",
    tags={"domain": "realtime"},
    ttl=timedelta(hours=1),
)

realtime_fraud = FeatureView(
    "realtime_fraud",
    features=[f"card_activity:{f.name}" for f in card_activity.features] + ["user_profile:is_premium"],
    description="Real-time fraud signals: bursts of card activity in the last minutes, with the card holder's profile.",
    owner="team:fraud-ml",
)

feature_groups = [card_activity]
feature_views = [realtime_fraud]


def generate_transactions(count: int, *, seed: int = 0, now: datetime | None = None, spread: timedelta = timedelta(minutes=50)) -> list[dict]:
    """`count` card transactions stamped over the `spread` before `now`, with a fraud label (bursts are riskier)."""
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc)
    users = rng.integers(0, user_count() // 10, count)  # a tenth of the card holders are active this hour
    ago = np.sort(rng.uniform(0, spread.total_seconds(), count))[::-1]
    amounts = np.round(rng.gamma(2.0, 35.0, count), 2)
    merchants = rng.integers(0, merchant_count(), count)
    return [
        {
            "user_id": int(u), "event_time": (now - timedelta(seconds=float(s))).isoformat(), "amount": float(a),
            "merchant_id": int(m), "is_fraud": bool(rng.random() < (0.2 if a > 200 else 0.02)),
        }
        for u, s, a, m in zip(users, ago, amounts, merchants)
    ]
