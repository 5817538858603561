"""A frozen Redis (SIGSTOP) under concurrent requests to a real server process (issue 12 class 0), and SIGTERM.

The promise: every lookup fails with a 503 once its timeout passes, lookups never
queue behind each other, `/health` answers at once and says Redis is
unreachable, and once Redis thaws every answer is the right one. SIGTERM lets
the requests in flight finish, then the server exits 0.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from feature_platform import FeatureStore
from feature_platform.online.redis_server import free_port
from feature_platform.online.store import OnlineStoreError

TIMEOUT_S = 2.0
ASSETS = textwrap.dedent(
    """
    from feature_platform import Entity, Feature, FeatureGroup, FeatureView
    user = Entity("user", join_keys={"user_id": "int64"})
    scores = FeatureGroup("scores", entities=[user], features=[Feature("score", "int64")], partitions=None)
    feature_groups = [scores]
    feature_views = [FeatureView("ranking", features=["scores:score"])]
    raw_sources = []
    """
)
USERS = list(range(1, 41))


@pytest.fixture
def repo(tmp_path, freezable_redis, monkeypatch):
    """A repository whose `scores` group holds score = 10 * user_id online."""
    (tmp_path / "repo" / "assets").mkdir(parents=True)
    (tmp_path / "repo" / "assets" / "__init__.py").write_text(ASSETS)
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_URL", freezable_redis.url)
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_TIMEOUT_S", str(TIMEOUT_S))
    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(tmp_path / "home"))
    store = FeatureStore.from_repo(tmp_path / "repo")
    store.apply()  # the server serves applied definitions only
    store.push("scores", pd.DataFrame({"user_id": USERS, "event_time": pd.Timestamp("2024-01-01", tz="UTC"),
                                       "score": [10 * u for u in USERS]}))
    return tmp_path / "repo"


def start(repo: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "feature_platform.serving.server", "--repo", str(repo), "--port", str(port),
               "--workers", str(workers)]
    server = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": os.getcwd()})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()  # never leave a half-started server behind
            raise AssertionError(f"the server did not start (exit code {server.poll()})")
        time.sleep(0.1)


@pytest.fixture
def server(repo):
    process, url = start(repo, workers=2)
    yield url
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=20)


# One client for all threads: building an httpx client per request costs more CPU than the requests themselves.
http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))


def lookup(url: str, user_id: int) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = http.post(f"{url}/get-online-features", json={"feature_view": "ranking", "entities": {"user_id": [user_id]}})
    return time.monotonic() - started, response


def health(url: str) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = http.get(f"{url}/health")
    return time.monotonic() - started, response


def test_with_redis_frozen_lookups_fail_after_their_timeout_side_by_side_and_health_answers_at_once(server, freezable_redis):
    os.kill(freezable_redis.process.pid, signal.SIGSTOP)
    with ThreadPoolExecutor(12) as pool:
        lookups = [pool.submit(lookup, server, u) for u in USERS[:10]]
        time.sleep(0.2)
        checks = [pool.submit(health, server) for _ in range(2)]
        lookups = [f.result() for f in lookups]
        checks = [f.result() for f in checks]
    for seconds, response in checks:
        assert seconds < 1.5
        assert response.status_code == 503 and (response.json()["status"], response.json()["redis"]) == ("degraded", False)
    for seconds, response in lookups:
        assert response.status_code == 503
        assert f"no answer within {TIMEOUT_S:g} s" in response.json()["detail"]
        assert TIMEOUT_S - 0.2 < seconds < TIMEOUT_S + 1.5  # one timeout each: none waited for another


def test_after_redis_thaws_every_answer_belongs_to_its_own_request(server, freezable_redis):
    os.kill(freezable_redis.process.pid, signal.SIGSTOP)
    with ThreadPoolExecutor(8) as pool:
        assert all(r.status_code == 503 for _, r in pool.map(lambda u: lookup(server, u), USERS[:8]))
    os.kill(freezable_redis.process.pid, signal.SIGCONT)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda u: lookup(server, u)[1], USERS * 2))
    for user_id, response in zip(USERS * 2, answers):
        assert response.json()["features"] == {"user_id": [user_id], "score": [10 * user_id]}
    assert health(server)[1].json()["redis"] is True


def test_the_python_api_fails_after_one_timeout_and_recovers(repo, freezable_redis):
    store = FeatureStore.from_repo(repo)
    assert store.get_online_features([{"user_id": 1}], ["scores:score"]).to_dict()["score"] == [10]
    os.kill(freezable_redis.process.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(OnlineStoreError, match="Timeout"):
        store.get_online_features([{"user_id": 2}], ["scores:score"])
    assert time.monotonic() - started < TIMEOUT_S + 1.0
    os.kill(freezable_redis.process.pid, signal.SIGCONT)
    assert store.get_online_features([{"user_id": 3}], ["scores:score"]).to_dict()["score"] == [30]


def test_sigterm_lets_the_requests_in_flight_finish_then_exits_zero(repo, freezable_redis):
    process, url = start(repo, workers=2)
    os.kill(freezable_redis.process.pid, signal.SIGSTOP)
    with ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(lookup, url, u) for u in (5, 6)]
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        os.kill(freezable_redis.process.pid, signal.SIGCONT)
        answers = [f.result()[1] for f in in_flight]
    assert [a.json()["features"]["score"] for a in answers] == [[50], [60]]
    assert process.wait(timeout=15) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)


def test_each_answer_arrives_whole_in_one_write_and_the_connection_stays_open(server):
    """The coalescing transport sends a response's head and body together; keep-alive and lengths stay right."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        for user_id in (3, 4):
            body = b'{"feature_view": "ranking", "entities": {"user_id": [%d]}}' % user_id
            conn.sendall(b"POST /get-online-features HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            head, _, answer = conn.recv(65536).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"content-length: %d" % len(answer) in head
            assert answer == b'{"features":{"user_id":[%d],"score":[%d]},"statuses":{"score":["PRESENT"]}}' % (user_id, 10 * user_id)


def workers_of(process: subprocess.Popen) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]


def test_workers_are_processes_on_one_port_and_a_dead_one_is_replaced(repo):
    process, url = start(repo, workers=2)
    try:
        workers = workers_of(process)
        assert len(workers) == 2
        with ThreadPoolExecutor(8) as pool:
            assert {lookup(url, u)[1].status_code for u in USERS} == {200}
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while workers_of(process) == workers or len(workers_of(process)) != 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        assert workers[1] in workers_of(process)
        with ThreadPoolExecutor(8) as pool:
            assert {lookup(url, u)[1].status_code for u in USERS} == {200}
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_workers_stop_when_the_server_is_killed(repo):
    process, url = start(repo, workers=2)
    workers = workers_of(process)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its server"
        time.sleep(0.1)
