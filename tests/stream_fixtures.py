"""A small stream group of card transactions, and helpers to publish and read its events."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

from feature_platform import Aggregation, Entity, FeatureStore, StreamFeatureGroup
from feature_platform.windows.tile_bytes import tile_bytes

card = Entity("card", join_keys={"card_id": "int64"})

WINDOW_FEATURES = [
    "txn_count_10m", "txn_count_1h", "amount_sum_1h", "amount_mean_10m",
    "amount_min_1h", "amount_max_10m", "merchants_1h",
]


def card_windows(*, ttl: timedelta | None = None, tile: timedelta = timedelta(minutes=1)) -> StreamFeatureGroup:
    """Counts, sums, means, extremes and distinct merchants of a card's transactions over 10 minutes and 1 hour."""
    return StreamFeatureGroup(
        "card_windows",
        entities=[card],
        fields={"amount": "float64", "merchant_id": "int64"},
        aggregations=[
            Aggregation("count", timedelta(minutes=10), name="txn_count_10m"),
            Aggregation("count", timedelta(hours=1), name="txn_count_1h"),
            Aggregation("sum", timedelta(hours=1), column="amount"),
            Aggregation("mean", timedelta(minutes=10), column="amount"),
            Aggregation("min", timedelta(hours=1), column="amount"),
            Aggregation("max", timedelta(minutes=10), column="amount"),
            Aggregation("approx_count_distinct", timedelta(hours=1), column="merchant_id", name="merchants_1h"),
        ],
        tile=tile,
        ttl=ttl,
    )


def stream_store(tmp_path: Path, redis_url: str, group: StreamFeatureGroup | None = None) -> FeatureStore:
    store = FeatureStore(groups=[group or card_windows()], offline_root=tmp_path / "offline", online_url=redis_url, project="streams")
    store.apply()
    return store


def transaction(card_id: int, minutes_ago: float, amount: float, merchant_id: int = 1, *, now: datetime | None = None) -> dict:
    """One card transaction event, `minutes_ago` before `now`, its time in epoch milliseconds."""
    moment = (now or datetime.now(timezone.utc)) - timedelta(minutes=minutes_ago)
    return {"card_id": card_id, "event_time": int(moment.timestamp() * 1000), "amount": amount, "merchant_id": merchant_id}


def features(group: str = "card_windows") -> list[str]:
    return [f"{group}:{name}" for name in WINDOW_FEATURES]


def tile_values(group: StreamFeatureGroup, tile: bytes) -> list:
    """A stored tile as `[count, last, *one value per measure]`, a HyperLogLog measure's value its codes."""
    form = tile_bytes(group)
    header, codes = form.split([tile])
    values = [int(header["count"][0]), int(header["last"][0])]
    for position in range(len(form.layout.measures)):
        values.append(codes[form.sketches.index(position)][0] if position in form.sketches else header[f"m{position}"][0].item())
    return values
