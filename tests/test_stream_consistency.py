"""Random event streams through the real consumer: online at T equals historical at T, and a backfill equals the stream's rows."""

import math
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform.streaming.processor import CONSUMER_GROUP, backfill_offline
from tests.stream_fixtures import WINDOW_FEATURES, features, stream_store, transaction

TILE_S = 60
STORED = ["card_id", "event_time", "event_id", "amount", "merchant_id"]

events_strategy = st.lists(
    st.tuples(
        st.integers(1, 5),  # card
        st.floats(0.01, 65.0),  # minutes ago: beyond 60 the event is older than the largest window and dead-lettered
        st.integers(-400, 400).map(lambda k: k * 0.25),  # amounts whose sums are exact in any order
        st.integers(1, 40),  # merchant
    ),
    min_size=1,
    max_size=150,
)


def read_both(store, cards: list[int]) -> tuple[dict, pd.DataFrame]:
    """The online vectors and the historical rows of `cards` at one moment T (retried across a tile boundary)."""
    while True:
        before = time.time()
        online = store.get_online_features([{"card_id": c} for c in cards], features()).to_dict(include_statuses=True)
        after = time.time()
        if int(before // TILE_S) == int(after // TILE_S):
            break
    at = pd.Timestamp(after, unit="s", tz="UTC")
    historical = store.get_historical_features(pd.DataFrame({"card_id": cards, "event_time": [at] * len(cards)}), features())
    return online, historical


def expected_windows(events: list[dict], card: int, at: float) -> dict[str, object]:
    """The windows of `card` at `at` (epoch s) computed directly from the accepted events: the oracle."""
    def window(minutes: int) -> list[dict]:
        start = (math.floor(at / TILE_S) - minutes + 1) * TILE_S * 1000
        return [e for e in events if e["card_id"] == card and start <= e["event_time"] <= at * 1000]

    ten, hour = window(10), window(60)
    if not hour:
        return {name: None for name in WINDOW_FEATURES}
    return {
        "txn_count_10m": len(ten),
        "txn_count_1h": len(hour),
        "amount_sum_1h": sum(e["amount"] for e in hour),
        "amount_mean_10m": sum(e["amount"] for e in ten) / len(ten) if ten else None,
        "amount_min_1h": min(e["amount"] for e in hour),
        "amount_max_10m": max((e["amount"] for e in ten), default=None),
        "merchants_1h": len({e["merchant_id"] for e in hour}),
    }


def plain(value: object) -> object:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA else value


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=events_strategy, batch_size=st.integers(1, 60), cached=st.integers(1, 6))
def test_online_at_T_equals_historical_at_T_for_every_card_and_window(redis_url: str, events: list, batch_size: int, cached: int) -> None:
    redis.Redis.from_url(redis_url).flushall()
    with tempfile.TemporaryDirectory() as folder:
        store = stream_store(Path(folder), redis_url)
        now = datetime.now(timezone.utc)
        published = [transaction(c, ago, amount, merchant, now=now) for c, ago, amount, merchant in events]
        store.publish_events("card_windows", published)
        options = {"batch_size": batch_size, "offline_batch": batch_size * 2, "cached_entities": cached}  # 5 cards: evictions
        with store.stream_processor("card_windows", **options) as processor:
            processor.run(until_idle=True)
        accepted = [e for e in published if e["event_time"] >= (now - timedelta(hours=1)).timestamp() * 1000]
        cards = [1, 2, 3, 4, 5]
        online, historical = read_both(store, cards)
        at = historical["event_time"].iloc[0].timestamp()
        for row, card in enumerate(cards):
            oracle = expected_windows(accepted, card, at)
            for name in WINDOW_FEATURES:
                served, trained = online[name][row], plain(historical[name].iloc[row])
                assert served == trained, (card, name, served, trained)
                if name == "merchants_1h" and oracle[name] is not None:
                    assert abs(served - oracle[name]) <= max(1, 0.05 * oracle[name])
                else:
                    assert served == oracle[name], (card, name, served, oracle[name])
                assert online[f"{name}__status"][row] == ("NOT_FOUND" if oracle["txn_count_1h"] is None else "PRESENT")


def test_a_backfill_from_the_stream_history_writes_the_rows_the_consumer_wrote(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    now = datetime.now(timezone.utc)
    events = [transaction(i % 4, minutes_ago=i * 0.4, amount=i * 1.5, merchant_id=i % 9, now=now) for i in range(120)]
    events.append({"card_id": "not a number", "event_time": 1, "amount": 1.0, "merchant_id": 1})
    store.publish_events("card_windows", events)
    store.stream_processor("card_windows", batch_size=17, offline_batch=23).run(until_idle=True)
    streamed = store.read_group("card_windows").sort_values("event_id").reset_index(drop=True)

    rebuilt = stream_store(tmp_path / "rebuilt", redis_url)
    rows = backfill_offline(rebuilt.offline, rebuilt.group("card_windows"), store.stream("card_windows").entries())
    backfilled = rebuilt.read_group("card_windows").sort_values("event_id").reset_index(drop=True)

    assert rows == 120 == len(streamed)
    pd.testing.assert_frame_equal(streamed[STORED], backfilled[STORED])


def test_a_replayed_stream_changes_neither_online_nor_offline(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(7, minutes_ago=i, amount=2.0, merchant_id=i) for i in range(30)])
    with store.stream_processor("card_windows", consumer="first") as first:
        first.run(until_idle=True)
    before = store.get_online_features([{"card_id": 7}], features()).to_dict()
    rows = len(store.read_group("card_windows"))

    stream = store.stream("card_windows")
    with store.stream_processor("card_windows", consumer="second") as second:
        second.start()  # rewinds to the durable watermarks: nothing to read again
        stream.client.xgroup_setid(stream.key, CONSUMER_GROUP, "0")  # yet every entry is delivered again
        stats = second.run(until_idle=True)

    assert stats.redelivered == 30 and stats.events == 0
    assert store.get_online_features([{"card_id": 7}], features()).to_dict() == before
    assert before["txn_count_1h"] == [30]
    assert len(store.read_group("card_windows")) == rows == 30
