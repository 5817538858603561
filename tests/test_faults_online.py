"""Faults on the online path, injected for real: SIGKILL of a sync, a Redis crash and restart, a hung Redis."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from reliability_fixtures import day, frame, make_store, start_worker, worker_result

from feature_platform.online import store as online
from feature_platform.online.redis_server import RedisProcess, start_server
from feature_platform.online.store import OnlineStoreError
from feature_platform.serving.server import create_app

USERS = 100_000  # rows of one partition: 50 script batches, so a kill lands between batches
NEWER = 50  # users whose online value is newer than anything offline before the sync starts
PASSWORD = "online-faults-pw"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server with an fsync'd append-only file: a crash loses no acknowledged write."""
    process = start_server(tmp_path / "redis", password=PASSWORD, persistent=True)
    redis.Redis.from_url(process.url).config_set("appendfsync", "always")
    yield process
    process.stop()


def seeded_store(root: Path, url: str):
    """`USERS` rows offline on day 1; the first `NEWER` users already hold newer (day 2) values online."""
    store = make_store(root, online_url=url)
    store.write_partition("events", day(1), frame(day(1), USERS, writer="offline"))
    store.push("events", frame(day(2), NEWER, writer="newer"), to="online")
    return store


def wait_for_keys(url: str, at_least: int, timeout: float = 60) -> int:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = client.dbsize()
        if size >= at_least:
            return size
        time.sleep(0.001)
    raise AssertionError(f"fewer than {at_least} keys after {timeout}s")


def assert_converged(store) -> None:
    """Every user holds its latest value: the pushed newer one for the first `NEWER`, the offline one after."""
    got = store.get_online_features({"user_id": list(range(USERS))}, ["txn_count", "writer"]).to_dict()
    assert got["writer"] == ["newer"] * NEWER + ["offline"] * (USERS - NEWER)
    assert got["txn_count"] == [2 * u for u in range(USERS)]


def test_sigkill_of_the_online_sync_mid_batch_then_a_rerun_converges_without_regressing(tmp_path: Path, server: RedisProcess) -> None:
    """Proves: a sync killed with SIGKILL between its Redis batches leaves some keys written and none older
    than before (the newer values pushed earlier survive); running the sync again converges to exactly the
    latest value of every entity."""
    store = seeded_store(tmp_path, server.url)

    worker = start_worker("sync", tmp_path, server.url)
    wait_for_keys(server.url, NEWER + 2)  # the pushed values, the lineage index and a synced value
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    landed = redis.Redis.from_url(server.url).dbsize() - 1

    assert worker.returncode == -signal.SIGKILL
    assert NEWER < landed < USERS  # the kill landed between batches
    newer = store.get_online_features({"user_id": list(range(NEWER))}, ["writer"]).to_dict()
    assert newer["writer"] == ["newer"] * NEWER

    report = store.sync_to_online("events")

    assert report.rows_read == USERS
    assert redis.Redis.from_url(server.url).dbsize() == USERS + 1  # and the lineage index
    assert_converged(store)


def test_redis_crash_and_restart_during_a_sync_fails_clearly_or_retries_and_a_rerun_converges(
    tmp_path: Path, server: RedisProcess
) -> None:
    """Proves: when redis-server is killed (SIGKILL) in the middle of a sync and restarted on its port and data,
    the sync either retries through it or fails with an OnlineStoreError that names the online store (its
    password redacted); no value regresses, and a re-run converges to the latest value of every entity."""
    store = seeded_store(tmp_path, server.url)

    worker = start_worker("sync", tmp_path, server.url)
    wait_for_keys(server.url, NEWER + 1)
    server.process.kill()
    server.process.wait()
    restarted = start_server(server.directory, port=server.port, password=PASSWORD, persistent=True)
    result = worker_result(worker)

    try:
        if not result["ok"]:
            assert result["error"] == "OnlineStoreError", result
            assert f"127.0.0.1:{server.port}" in result["message"] and PASSWORD not in result["message"]
        newer = store.get_online_features({"user_id": list(range(NEWER))}, ["writer"]).to_dict()
        assert newer["writer"] == ["newer"] * NEWER

        store.sync_to_online("events")

        assert_converged(store)
    finally:
        restarted.stop()


def test_a_hung_redis_gives_a_bounded_clear_error_and_health_reports_it_until_it_recovers(
    tmp_path: Path, server: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: when Redis stops answering (the process frozen with SIGSTOP: connections open, no replies),
    online reads fail with an OnlineStoreError after the client's socket timeout instead of hanging, the
    HTTP server answers 503 on /get-online-features and /health, and all recover once Redis answers again."""
    monkeypatch.setattr(online, "SOCKET_TIMEOUT_S", 0.3)
    store = make_store(tmp_path, online_url=server.url)
    store.push("events", frame(day(1), 3), to="online")
    client = TestClient(create_app(store))
    request = {"entities": {"user_id": [1]}, "features": ["txn_count"]}
    assert client.get("/health").json()["status"] == "ok"

    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(OnlineStoreError) as raised:
            store.get_online_features({"user_id": [1]}, ["txn_count"])
        health = client.get("/health")
        lookup = client.post("/get-online-features", json=request)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)

    assert "Timeout" in str(raised.value) and f"127.0.0.1:{server.port}" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert (health.status_code, health.json()["status"], health.json()["redis"]) == (503, "degraded", False)
    assert lookup.status_code == 503 and "online store" in lookup.json()["detail"] and PASSWORD not in lookup.text
    assert client.get("/health").status_code == 200
    assert client.post("/get-online-features", json=request).json()["features"]["txn_count"] == [2]


def test_redis_not_listening_gives_a_clear_error_and_health_reports_it(tmp_path: Path) -> None:
    """Proves: with nothing listening at the Redis URL, reads and pushes fail with an OnlineStoreError naming
    the store, and /health answers 503 with redis false rather than failing."""
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    store = make_store(tmp_path, online_url=url)

    with pytest.raises(OnlineStoreError) as read_error:
        store.get_online_features({"user_id": [1]}, ["txn_count"])
    with pytest.raises(OnlineStoreError):
        store.push("events", frame(day(1), 3), to="online")
    health = TestClient(create_app(store)).get("/health")

    assert f"127.0.0.1:{port}" in str(read_error.value) and PASSWORD not in str(read_error.value)
    assert (health.status_code, health.json()["redis"]) == (503, False)
