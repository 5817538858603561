"""A consumer killed with SIGKILL mid-run, and a Redis restart under a running consumer, lose no event and count none twice."""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from feature_platform.online.redis_server import start_server
from feature_platform.sources.streams import entry_order
from feature_platform.streaming.processor import StreamStats
from tests.stream_fixtures import features, stream_store, transaction

ROOT = Path(__file__).resolve().parent.parent
CARDS = 50
pytestmark = pytest.mark.slow


def worker(tmp_path: Path, url: str, batch_size: int = 100) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stream_worker", str(tmp_path), url, str(batch_size)],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def publish(store, count: int) -> None:
    now = datetime.now(timezone.utc)
    events = [transaction(i % CARDS, minutes_ago=(i % 500) / 10, amount=1.0, merchant_id=i % 7, now=now) for i in range(count)]
    store.publish_events("card_windows", events)


def assert_counted_once(store, count: int) -> None:
    online = store.get_online_features([{"card_id": c} for c in range(CARDS)], features()).to_dict()
    assert sum(online["txn_count_1h"]) == count
    assert sum(online["amount_sum_1h"]) == float(count)
    stored = store.read_group("card_windows")
    assert len(stored) == count
    assert stored["event_id"].is_unique


def applied_some(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        return any(key.endswith(b"!stream:watermark") for key in client.scan_iter(match=b"fp:streams:card_windows:*"))
    finally:
        client.close()


def read_past_durable(store) -> int:
    """Entries the consumer group was given beyond what both sinks had stored (what a restart must read again)."""
    stream = store.stream("card_windows")
    online = stream.client.get(next(stream.client.scan_iter(match=b"fp:streams:card_windows:*!stream:watermark")))
    offline = store.offline.last_commit_value(store.group("card_windows"), "stream_watermark")
    durable = min(entry_order(online.decode()), entry_order(offline)) if offline else (0, 0)
    delivered = stream.lag("feature-platform").last_delivered
    return len(stream.client.xrange(stream.key, f"({durable[0]}-{durable[1]}", delivered))


def test_a_consumer_killed_mid_run_again_and_again_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    server = start_server(tmp_path / "redis", persistent=True)
    try:
        store = stream_store(tmp_path, server.url)
        publish(store, 20_000)
        rng = random.Random(16)
        read_again, left = 0, []
        for _ in range(4):
            process = worker(tmp_path, server.url)
            deadline = time.monotonic() + 60
            while not applied_some(server.url) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.1, 0.8))
            process.send_signal(signal.SIGKILL)
            process.wait()
            read_again += read_past_durable(store)
            left.append(store.stream("card_windows").length())
        assert read_again > 0  # some kills came between reading entries and storing them in both sinks
        assert min(left) < 20_000  # and the worker (no retention) had trimmed what both sinks stored
        process = worker(tmp_path, server.url)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert_counted_once(store, 20_000)
    finally:
        server.stop()


def test_a_redis_restart_under_a_running_consumer_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    server = start_server(tmp_path / "redis", persistent=True)
    try:
        store = stream_store(tmp_path, server.url)
        publish(store, 20_000)
        process = worker(tmp_path, server.url)
        deadline = time.monotonic() + 60
        while not applied_some(server.url) and time.monotonic() < deadline:
            time.sleep(0.05)
        store.online.close()
        server.stop()  # SIGTERM: Redis writes its append-only file and exits
        time.sleep(1.0)
        server = start_server(tmp_path / "redis", port=server.port, persistent=True)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        store = stream_store(tmp_path, server.url)
        assert_counted_once(store, 20_000)
    finally:
        server.stop()


def test_a_consumer_that_read_past_what_it_stored_offline_is_rewound_on_restart(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    publish(store, 300)
    crashed = store.stream_processor("card_windows", consumer="crashed", batch_size=100, offline_batch=10**9)
    crashed.start()
    stats = StreamStats("card_windows", "crashed")
    for _ in range(3):
        crashed.step(stats)  # online applied, offline only buffered: as if killed before the Delta commit
    crashed.drain()  # the last batch's online write confirmed
    crashed.close()  # gives the lease up without flushing: the buffered events are lost with the process
    stream = store.stream("card_windows")
    assert (stats.events, stream.lag("feature-platform").behind, store.read_group("card_windows").empty) == (300, 0, True)

    with store.stream_processor("card_windows", consumer="restarted", batch_size=100) as restarted:
        again = restarted.run(until_idle=True)

    assert (again.redelivered, again.events, again.offline_rows) == (300, 0, 300)
    assert_counted_once(store, 300)


def lose_the_second_batch(processor, client, stats: StreamStats) -> None:
    """Two batches stored online, then Redis restored to its state after the first, as after a restart
    from an append-only file missing the second. Each batch is drained first: key by key, the restore is
    not atomic as a restart is, so no write may come between."""
    processor.start()
    processor.step(stats)
    processor.drain()
    state = [k for k in client.scan_iter(match=b"fp:streams:card_windows:*") if not k.endswith(b"!stream:lease")]
    saved = {key: client.dump(key) for key in state}
    processor.step(stats)
    processor.drain()
    for key, value in saved.items():
        client.restore(key, 0, value, replace=True)


def test_redis_coming_back_with_older_tiles_under_a_running_consumer_is_read_again_not_lost(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    publish(store, 300)
    client = store.stream("card_windows").client
    with store.stream_processor("card_windows", batch_size=100) as processor:
        lose_the_second_batch(processor, client, StreamStats("card_windows", "processor"))
        processor.run(until_idle=True)

    assert_counted_once(store, 300)


def test_a_batch_refused_by_the_watermark_while_in_flight_is_read_again_and_counted_once(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    publish(store, 400)
    client = store.stream("card_windows").client
    with store.stream_processor("card_windows", batch_size=100) as processor:
        stats = StreamStats("card_windows", "processor")
        lose_the_second_batch(processor, client, stats)
        processor.step(stats)  # the third batch merged on the tiles with the second
        processor.step(stats)  # reads the fourth, sends the third (refused: it expects the second's watermark), rewinds
        assert stats.events == 200
        again = processor.run(until_idle=True)

    assert (again.redelivered, again.events) == (100, 300)  # from the start: the first batch is skipped online
    assert_counted_once(store, 400)


def test_connections_dropped_with_a_batch_in_flight_lose_nothing_and_count_nothing_twice(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    publish(store, 400)
    killer = redis.Redis.from_url(redis_url)
    kills = iter(range(6))

    def drop_connections() -> bool:  # run asks just after sending a batch's write: drop it, written or not
        if next(kills, None) is not None:
            killer.client_kill_filter(_type="normal", skipme=True)
        return False

    with store.stream_processor("card_windows", batch_size=50) as processor:
        stats = processor.run(until_idle=True, should_stop=drop_connections)
    killer.close()

    assert stats.events <= 400  # a write whose reply was lost is skipped when read again, never counted twice
    assert_counted_once(store, 400)
