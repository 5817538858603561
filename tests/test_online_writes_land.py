"""Every online write lands or raises to its caller: thousands of writes through one store and one server.

Class 0 of issue 12: a connection taken per write and never returned made the
101st write store nothing and a multi-batch sync hang. These tests write far
past any pool size, through one `FeatureStore` and one real uvicorn process,
and fail whatever Redis refuses with an `OnlineStoreError`.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

from feature_platform.online import store as online
from feature_platform.online.redis_server import start_server
from feature_platform.online.store import OnlineStoreError
from tests.online_fixtures import online_store, score_rows, scores_group

WRITES = 2000


def connections_held(store) -> int:
    """Connections the store's pool has created (open or idle); a leak makes this grow with the writes."""
    pool = store.online.client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


def test_thousands_of_single_row_pushes_through_one_store_all_land(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())

    for user in range(WRITES):
        store.push("scores", score_rows("2024-01-02", [user], 0))
        if user % 500 == 0:  # each write is readable at once, not only at the end
            assert store.get_online_features([{"user_id": user}], ["scores:score"]).to_dict()["score"] == [user]

    got = store.get_online_features({"user_id": list(range(WRITES))}, ["scores:score"]).to_dict()
    assert got["score"] == list(range(WRITES))
    assert connections_held(store) <= 2


def test_a_multi_batch_sync_after_thousands_of_pushes_completes_and_lands(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    for user in range(WRITES // 2):
        store.push("scores", score_rows("2024-01-01", [user], 0, hour=1))
    users = list(range(3 * online.BATCH + 7))
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", users, 100))

    for _ in range(3):
        report = store.sync_to_online("scores", "2024-01-01")

    assert report.rows_read == len(users)
    got = store.get_online_features({"user_id": users}, ["scores:score"]).to_dict()
    assert got["score"] == [100 + u for u in users]
    assert connections_held(store) <= 2


def test_thousands_of_syncs_through_one_store_all_land(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1, 2], 0))
    client = redis.Redis.from_url(redis_url)

    for _ in range(1000):
        client.flushall()
        assert store.sync_to_online("scores", "2024-01-01").rows_written == 2

    assert store.get_online_features({"user_id": [1, 2]}, ["scores:score"]).to_dict()["score"] == [1, 2]
    assert connections_held(store) <= 2


def test_a_write_redis_refuses_raises_and_the_next_write_lands(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    client = redis.Redis.from_url(redis_url)
    store.push("scores", score_rows("2024-01-02", [0], 0))
    client.config_set("maxmemory", "1")  # every write now fails with OOM
    try:
        for _ in range(150):
            with pytest.raises(OnlineStoreError, match="OOM|maxmemory"):
                store.push("scores", score_rows("2024-01-02", list(range(online.BATCH + 1)), 0))
    finally:
        client.config_set("maxmemory", "0")

    store.push("scores", score_rows("2024-01-03", [7], 0))
    assert store.get_online_features([{"user_id": 7}], ["scores:score"]).to_dict()["score"] == [7]
    assert connections_held(store) <= 2


def test_a_flushed_script_cache_is_reloaded_and_the_write_lands(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    store.push("scores", score_rows("2024-01-02", [1], 0))
    redis.Redis.from_url(redis_url).script_flush()

    store.push("scores", score_rows("2024-01-03", [1, 2], 10))

    assert store.get_online_features({"user_id": [1, 2]}, ["scores:score"]).to_dict()["score"] == [11, 12]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{probe.getsockname()[1]}/0"


ONLINE_CALLS = {
    "push": lambda s: s.push("scores", score_rows("2024-01-02", [1], 0)),
    "push online_and_offline": lambda s: s.push("scores", score_rows("2024-01-02", [1], 0), to="online_and_offline"),
    "sync_to_online": lambda s: s.sync_to_online("scores", "2024-01-01"),
    "get_online_features": lambda s: s.get_online_features([{"user_id": 1}], ["scores:score"]),
    "online.write": lambda s: s.online.write(s.group("scores"), pa_table(s)),
    "online.mget": lambda s: s.online.mget([b"fp:x"]),
    "online.delete_group": lambda s: s.online.delete_group(s.group("scores")),
}


def pa_table(store):
    from feature_platform.definitions.contract import conform

    return conform(store.group("scores"), score_rows("2024-01-02", [1], 0), written_at=pd.Timestamp.now(tz="UTC"))


@pytest.mark.parametrize("call", sorted(ONLINE_CALLS))
def test_every_online_call_raises_online_store_error_when_redis_is_unreachable(tmp_path, call):
    store = online_store(tmp_path, closed_port_url(), scores_group())
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 0))

    with pytest.raises(OnlineStoreError, match="online store redis://127.0.0.1"):
        ONLINE_CALLS[call](store)
    assert store.online.ping() is False


@pytest.mark.parametrize("url", ["redis://127.0.0.1:notaport/0", "http://127.0.0.1:6379", "redis://:pw@127.0.0.1:99999/0"])
def test_a_bad_online_url_is_an_online_store_error_without_the_password(tmp_path, url):
    store = online_store(tmp_path, url, scores_group())

    with pytest.raises(OnlineStoreError) as raised:
        store.get_online_features([{"user_id": 1}], ["scores:score"])
    assert ":pw@" not in str(raised.value)


@pytest.mark.parametrize("call", ["push", "sync_to_online", "online.delete_group"])
def test_writes_to_a_frozen_redis_fail_after_the_timeout_and_never_hang(tmp_path, monkeypatch, call):
    monkeypatch.setattr(online, "SOCKET_TIMEOUT_S", 0.5)
    server = start_server(tmp_path / "redis", persistent=False)
    try:
        store = online_store(tmp_path, server.url, scores_group())
        users = list(range(2 * online.BATCH + 1))
        store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", users, 0))
        store.sync_to_online("scores", "2024-01-01")
        os.kill(server.process.pid, signal.SIGSTOP)
        began = time.monotonic()
        try:
            with pytest.raises(OnlineStoreError, match="Timeout"):
                ONLINE_CALLS[call](store)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert time.monotonic() - began < 5
        assert store.get_online_features([{"user_id": 3}], ["scores:score"]).to_dict()["score"] == [3]
    finally:
        server.stop()


SERVER_REPO = textwrap.dedent(
    """
    from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureView
    user = Entity("user", join_keys={"user_id": "int64"})
    scores = FeatureGroup("scores", entities=[user], features=[Feature("score", "int64")], partitions=DailyPartitions(start="2024-01-01"))
    feature_groups = [scores]
    feature_views = []
    raw_sources = []
    """
)


def test_thousands_of_http_pushes_to_one_server_process_all_land(tmp_path, redis_url):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "__init__.py").write_text(SERVER_REPO)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "FEATURE_PLATFORM_REDIS_URL": redis_url, "PYTHONPATH": str(Path(__file__).parents[1])}
    env.pop("FEATURE_PLATFORM_SERVER_TOKEN", None)
    apply = [sys.executable, "-m", "feature_platform.cli", "apply", "--repo", str(tmp_path)]
    applied = subprocess.run(apply, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr  # the server serves applied definitions only
    command = [sys.executable, "-m", "feature_platform.cli", "serve", "--repo", str(tmp_path), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    http.get("/health")
                    break
                except httpx.TransportError:
                    assert server.poll() is None, server.stdout.read().decode()
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            for user in range(2000):
                rows = {"user_id": [user], "event_time": ["2024-01-02T12:00:00"], "score": [user]}
                answer = http.post("/push", json={"group": "scores", "rows": rows})
                assert answer.status_code == 200, answer.text
            lookup = http.post("/get-online-features", json={"entities": {"user_id": list(range(2000))}, "features": ["scores:score"]})
        assert lookup.json()["features"]["score"] == list(range(2000))
    finally:
        server.terminate()
        server.wait(timeout=10)
