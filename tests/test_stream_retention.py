"""The stream keeps what a restart or a backfill may read again: entries both sinks stored go once past the retention."""

from datetime import timedelta
from pathlib import Path

import pytest

from feature_platform.errors import ArgumentError

from tests.stream_fixtures import features, stream_store, transaction


def consume(store, **options) -> None:
    with store.stream_processor("card_windows", **options) as processor:
        processor.run(until_idle=True)


def test_entries_younger_than_the_retention_stay_in_the_stream(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(card, 1.0, 2.0) for card in range(30)])

    consume(store)  # the default retention: 1 hour

    assert store.stream("card_windows").length() == 30


def test_entries_both_sinks_stored_are_trimmed_past_the_retention_and_none_is_lost(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(card % 3, 1.0, 2.0) for card in range(30)])

    consume(store, retention=timedelta(0), batch_size=7)

    assert store.stream("card_windows").length() == 0
    assert store.get_online_features([{"card_id": c} for c in range(3)], features()).to_dict()["txn_count_1h"] == [10, 10, 10]
    assert len(store.read_group("card_windows")) == 30


def test_a_negative_retention_is_refused_with_what_it_means(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)

    with pytest.raises(ArgumentError, match="stream group 'card_windows': retention must be 0 or more"):
        store.stream_processor("card_windows", retention=timedelta(minutes=-1))
