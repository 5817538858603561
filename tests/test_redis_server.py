"""The embedded redis-server and connections: reuse across processes, persistence, AUTH, redaction."""

import json
import subprocess
import sys

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from feature_platform.online.redis_server import ensure_server, running_url, start_server, stop_server
from feature_platform.online.store import OnlineStore, OnlineStoreError, redact
from tests.online_fixtures import online_store, score_rows, scores_group


@pytest.fixture
def home(tmp_path):
    """A repository home whose embedded server is stopped after the test."""
    yield tmp_path / "home"
    stop_server(tmp_path / "home")


def test_embedded_server_is_reused_by_another_process(home):
    url = ensure_server(home)
    code = f"from feature_platform.online.redis_server import ensure_server; print(ensure_server({str(home)!r}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == url


def test_embedded_server_keeps_its_data_across_a_restart(home, tmp_path):
    store = online_store(tmp_path, None, scores_group())
    store.home = home
    store.push("scores", score_rows("2024-01-01", [1], 100))
    assert (home / "redis" / "appendonly.aof").exists()

    assert stop_server(home) is True
    assert running_url(home) is None
    restarted = online_store(tmp_path, None, scores_group())
    restarted.home = home

    assert restarted.get_online_features({"user_id": [1]}, ["score"]).to_dict()["score"] == [101]


def test_the_embedded_append_only_file_is_rewritten_only_past_a_gigabyte(tmp_path):
    """Under a stream's writes the default (on doubling, from 64 MB) forked a rewrite every few seconds."""
    server = start_server(tmp_path / "redis", persistent=True)
    try:
        config = redis.Redis.from_url(server.url).config_get("auto-aof-rewrite-*")
    finally:
        server.stop()

    assert config == {"auto-aof-rewrite-min-size": str(2**30), "auto-aof-rewrite-percentage": "100"}


def test_embedded_server_requires_its_password(home):
    url = ensure_server(home)
    anonymous = redis.Redis(port=redis.Redis.from_url(url).connection_pool.connection_kwargs["port"], retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("x")


def test_stop_without_a_running_server_says_so(home):
    assert stop_server(home) is False


@pytest.fixture(scope="module")
def protected_server(tmp_path_factory):
    """A redis-server started with `requirepass`."""
    server = start_server(tmp_path_factory.mktemp("auth"), password="s3cret-pass", persistent=False)
    yield server
    server.stop()


def test_password_from_the_url_authenticates(protected_server):
    assert OnlineStore(protected_server.url).ping()


def test_password_from_the_environment_authenticates(protected_server, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PASSWORD", "s3cret-pass")
    assert OnlineStore(f"redis://127.0.0.1:{protected_server.port}/0").ping()


def test_a_wrong_password_fails_without_revealing_it(protected_server, tmp_path):
    url = f"redis://:wrong-pass@127.0.0.1:{protected_server.port}/0"
    store = online_store(tmp_path, url, scores_group())
    with pytest.raises(OnlineStoreError) as error:
        store.get_online_features({"user_id": [1]}, ["score"])
    assert "wrong-pass" not in str(error.value) and "***" in str(error.value)
    assert "wrong-pass" not in repr(store.online)


def test_redact_hides_user_passwords():
    assert redact("rediss://app:pw@redis.example.com:6380/2") == "rediss://app:***@redis.example.com:6380/2"
    assert redact("redis://localhost:6379") == "redis://localhost:6379"


def test_unsupported_url_scheme_is_an_error():
    with pytest.raises(OnlineStoreError, match="must start with redis://"):
        OnlineStore("http://localhost:6379")


def test_an_acl_user_from_the_url_authenticates(protected_server):
    admin = redis.Redis.from_url(protected_server.url)
    admin.acl_setuser("features", enabled=True, passwords=["+app-pass"], keys=["fp:*"], commands=["+@all"])
    store = OnlineStore(f"redis://features:app-pass@127.0.0.1:{protected_server.port}/0")
    assert store.ping()
    assert store.mget([b"fp:x"]) == [None]


def test_cli_starts_reports_and_stops_the_embedded_server(home, monkeypatch, capsys):
    from feature_platform.cli import main

    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(home))
    assert main(["redis", "start", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["running"] is True and started["port"] == int(running_url(home).rsplit(":", 1)[1].split("/")[0])
    assert main(["redis", "stop"]) == 0
    assert capsys.readouterr().out.startswith(f"stopped the embedded Redis on 127.0.0.1:{started['port']} (data kept in ")
    assert running_url(home) is None
    assert main(["redis", "stop"]) == 0
    assert capsys.readouterr().out.startswith("the embedded Redis was not running; nothing to stop")
