"""While the consumer keeps up, it reads at most every `min_read_interval`: fewer, bigger batches, what is merged visible meanwhile."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from feature_platform import FeatureStore
from feature_platform.errors import ArgumentError
from feature_platform.streaming.processor import StreamProcessor, StreamStats

from tests.stream_fixtures import features, stream_store, transaction

INTERVAL = timedelta(seconds=2)


@contextmanager
def after_a_short_read(tmp_path: Path, redis_url: str) -> Iterator[tuple[FeatureStore, StreamProcessor, StreamStats]]:
    """A consumer that has read and merged 3 events of card 1, fewer than a batch: its next read waits for INTERVAL."""
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(1, 1.0, 5.0)] * 3)
    with store.stream_processor("card_windows", min_read_interval=INTERVAL) as processor:
        processor.start()
        stats = StreamStats("card_windows", "test")
        assert processor.step(stats) == 3  # its write goes out with the next step
        yield store, processor, stats


def test_after_a_short_read_the_next_read_takes_what_arrived_during_the_interval(tmp_path: Path, redis_url: str) -> None:
    with after_a_short_read(tmp_path, redis_url) as (store, processor, stats):
        second: list[int] = []
        waiting = threading.Thread(target=lambda: second.append(processor.step(stats)))
        waiting.start()
        time.sleep(0.3)
        store.publish_events("card_windows", [transaction(2, 1.0, 7.0)] * 4)
        waiting.join()
        processor.drain()

    assert second == [4]
    assert stats.events == 7


def test_the_merged_batch_is_visible_online_while_the_consumer_waits(tmp_path: Path, redis_url: str) -> None:
    with after_a_short_read(tmp_path, redis_url) as (store, processor, stats):
        waiting = threading.Thread(target=lambda: processor.step(stats))
        waiting.start()
        time.sleep(0.3)
        during = store.get_online_features([{"card_id": 1}], features()).to_dict()["txn_count_10m"]
        waiting.join()

    assert during == [3]


def test_after_a_full_batch_the_next_read_does_not_wait(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(card, 1.0, 5.0) for card in range(10)])
    with store.stream_processor("card_windows", batch_size=5, min_read_interval=timedelta(seconds=30)) as processor:
        processor.start()
        stats = StreamStats("card_windows", "test")
        began = time.monotonic()
        read = [processor.step(stats), processor.step(stats)]
        took = time.monotonic() - began

    assert read == [5, 5]
    assert took < 10


def test_a_negative_read_interval_is_refused_with_what_it_means(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)

    with pytest.raises(ArgumentError, match="stream group 'card_windows': min_read_interval must be 0 or more"):
        store.stream_processor("card_windows", min_read_interval=timedelta(milliseconds=-1))


@pytest.mark.parametrize("batch_size", [0, -3])
def test_a_batch_size_below_one_is_refused_with_what_it_means(tmp_path: Path, redis_url: str, batch_size: int) -> None:
    store = stream_store(tmp_path, redis_url)

    with pytest.raises(ArgumentError, match=f"stream group 'card_windows': batch_size must be 1 or more .*, not {batch_size}"):
        store.stream_processor("card_windows", batch_size=batch_size)
