"""Bad events go to the dead-letter stream with their reason; the good ones around them are applied; nothing is dropped silently."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from feature_platform.definitions.aggregations import EVENT_ID
from feature_platform.windows.events import parse_entries
from tests.stream_fixtures import card_windows, features, stream_store, transaction


def run_events(tmp_path: Path, redis_url: str, events: list[dict]):
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", events)
    with store.stream_processor("card_windows") as processor:
        stats = processor.run(until_idle=True)
    return store, stats


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"event_time": 0, "amount": 1.0, "merchant_id": 1}, "missing field 'card_id'"),
        ({"card_id": 1, "amount": 1.0, "merchant_id": 1}, "missing field 'event_time'"),
        ({"card_id": 1, "event_time": 0, "merchant_id": 1}, "missing field 'amount'"),
        ({"card_id": "card-1", "event_time": 0, "amount": 1.0, "merchant_id": 1}, "field 'card_id' is not an integer (int64)"),
        ({"card_id": 2**64, "event_time": 0, "amount": 1.0, "merchant_id": 1}, "field 'card_id' is not an integer (int64)"),
        ({"card_id": 1, "event_time": 0, "amount": "twelve", "merchant_id": 1}, "field 'amount' is not a number"),
        ({"card_id": 1, "event_time": 0, "amount": "nan", "merchant_id": 1}, "field 'amount' is not a finite number"),
        ({"card_id": 1, "event_time": 0, "amount": 1.0, "merchant_id": 1.5}, "field 'merchant_id' is not an integer (int64)"),
        ({"card_id": 1, "event_time": "yesterday", "amount": 1.0, "merchant_id": 1}, "field 'event_time' is not epoch milliseconds or an ISO 8601 time"),
    ],
)
def test_a_malformed_event_is_dead_lettered_with_its_reason(tmp_path: Path, redis_url: str, event: dict, reason: str) -> None:
    if event.get("event_time") == 0:
        event = {**event, "event_time": transaction(1, 1.0, 0.0)["event_time"]}
    store, stats = run_events(tmp_path, redis_url, [transaction(1, 2.0, 5.0), event, transaction(1, 1.0, 7.0)])

    letters = store.stream("card_windows").dead_letters()
    assert [letter["reason"] for letter in letters] == [reason]
    assert {k.removeprefix("field:"): v for k, v in letters[0].items() if k.startswith("field:")} == {k: str(v) for k, v in event.items()}
    assert (stats.events, stats.dead_letters) == (2, 1)
    assert store.get_online_features([{"card_id": 1}], features()).to_dict()["amount_sum_1h"] == [12.0]
    assert len(store.read_group("card_windows")) == 2


def test_an_event_stamped_far_after_it_arrived_is_dead_lettered(tmp_path: Path, redis_url: str) -> None:
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    store, stats = run_events(tmp_path, redis_url, [{"card_id": 1, "event_time": later.isoformat(), "amount": 1.0, "merchant_id": 1}])

    assert store.stream("card_windows").dead_letters()[0]["reason"] == (
        "event_time is more than 0:00:05 after the stream received it (max_future)"
    )
    assert store.get_online_features([{"card_id": 1}], features()).statuses["txn_count_1h"] == ["NOT_FOUND"]
    assert store.read_group("card_windows").empty


def test_an_event_older_than_the_largest_window_is_dead_lettered(tmp_path: Path, redis_url: str) -> None:
    store, _ = run_events(tmp_path, redis_url, [transaction(1, 61.0, 1.0), transaction(1, 59.0, 2.0)])

    assert [d["reason"] for d in store.stream("card_windows").dead_letters()] == [
        "event_time is older than the largest window (1:00:00) when the stream received it"
    ]
    assert store.get_online_features([{"card_id": 1}], features()).to_dict()["txn_count_1h"] == [1]


def test_iso_times_with_and_without_offsets_are_the_same_instant(tmp_path: Path, redis_url: str) -> None:
    moment = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    events = [
        {"card_id": 1, "event_time": moment.isoformat(), "amount": 1.0, "merchant_id": 1},
        {"card_id": 2, "event_time": moment.replace(tzinfo=None).isoformat(), "amount": 1.0, "merchant_id": 1},
        {"card_id": 3, "event_time": moment.astimezone(timezone(timedelta(hours=2))).isoformat(), "amount": 1.0, "merchant_id": 1},
    ]
    store, stats = run_events(tmp_path, redis_url, events)

    assert stats.dead_letters == 0
    assert set(store.read_group("card_windows")["event_time"]) == {moment}


def test_batch_writes_to_a_stream_group_are_refused_with_the_way_to_feed_it(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    frame = store.read_group("card_windows")
    for write in (lambda: store.push("card_windows", frame), lambda: store.ingest("card_windows", frame),
                  lambda: store.sync_to_online("card_windows")):
        with pytest.raises(ValueError, match="'card_windows' is a stream group: .* publish its events with publish_events"):
            write()


def test_an_entry_with_several_faults_is_rejected_for_the_first_and_the_rest_keep_their_order() -> None:
    group = card_windows()
    now_ms = 1_764_755_000_000
    entries = [
        (f"{now_ms}-0", [b"card_id", b"1", b"event_time", str(now_ms).encode(), b"amount", b"2.5", b"merchant_id", b"4"]),
        (f"{now_ms}-1", [b"event_time", b"yesterday", b"amount", b"nan", b"merchant_id", b"4"]),  # key missing first
        (f"{now_ms}-2", [b"card_id", b"2", b"event_time", b"yesterday", b"amount", b"nan", b"merchant_id", b"4"]),
        (f"{now_ms}-3", {b"merchant_id": b"5", b"amount": b"1", b"card_id": b"3", b"event_time": str(now_ms).encode()}),
    ]

    parsed = parse_entries(group, entries)

    assert [(d.entry_id, d.reason) for d in parsed.dead] == [
        (f"{now_ms}-1", "missing field 'card_id'"),
        (f"{now_ms}-2", "field 'event_time' is not epoch milliseconds or an ISO 8601 time"),
    ]
    assert parsed.table.column("card_id").to_pylist() == [1, 3]
    assert parsed.table.column(EVENT_ID).to_pylist() == [f"{now_ms}-0", f"{now_ms}-3"]
    assert parsed.table.column("amount").to_pylist() == [2.5, 1.0]


def test_entry_ids_as_bytes_parse_as_the_same_ids() -> None:
    fields = [b"card_id", b"1", b"event_time", b"1764755000000", b"amount", b"2.5", b"merchant_id", b"4"]

    parsed = parse_entries(card_windows(), [(b"1764755000000-7", fields)])

    assert parsed.table.column(EVENT_ID).to_pylist() == ["1764755000000-7"]
