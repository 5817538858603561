"""Embedded Redis only in development: production without a Redis URL fails at start-up; /health names the Redis."""

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from feature_platform import FeatureStore
from feature_platform.online.endpoint import ConfigurationError, describe
from feature_platform.online.redis_server import stop_server
from feature_platform.serving.server import create_app
from tests.online_fixtures import score_rows, scores_group
from tests.test_server import REPO_ASSETS

MISSING = "FEATURE_PLATFORM_ENV=production and no FEATURE_PLATFORM_REDIS_URL"


def test_production_without_a_redis_url_refuses_the_embedded_server(tmp_path):
    store = FeatureStore([scores_group()], offline_root=tmp_path / "offline", home=tmp_path / "home", environment="production")
    store.apply()
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 0))  # offline work needs no Redis

    with pytest.raises(ConfigurationError, match=MISSING):
        store.get_online_features({"user_id": [1]}, ["score"])
    assert not (tmp_path / "home" / "redis").exists()


def test_the_environment_comes_from_feature_platform_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_ENV", "production")
    store = FeatureStore([scores_group()], offline_root=tmp_path / "offline", home=tmp_path / "home")
    store.apply()
    with pytest.raises(ConfigurationError, match=MISSING):
        store.sync_to_online("scores")


def test_an_unknown_environment_is_an_error_listing_the_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_ENV", "prod")
    with pytest.raises(ConfigurationError, match=r"FEATURE_PLATFORM_ENV='prod' is not one of \['development', 'production'\]"):
        FeatureStore([scores_group()], offline_root=tmp_path / "offline")


def test_development_without_a_url_uses_the_embedded_server_and_health_says_so(tmp_path):
    store = FeatureStore([scores_group()], offline_root=tmp_path / "offline", home=tmp_path / "home")
    store.apply()
    try:
        response = TestClient(create_app(store)).get("/health")
        password = store.online.url.split(":")[2].split("@")[0]
    finally:
        stop_server(tmp_path / "home")

    body = response.json()
    assert (response.status_code, body["environment"], body["redis"]) == (200, "development", True)
    assert body["redis_endpoint"] == {"kind": "server", "host": "127.0.0.1", "port": body["redis_endpoint"]["port"], "tls": False, "embedded": True}
    assert password and password not in response.text


def test_health_in_production_names_the_configured_redis_host_never_its_password(tmp_path, redis_server):
    url = f"redis://default:{'hunter2'}@127.0.0.1:{redis_server.port}/0"
    store = FeatureStore([scores_group()], offline_root=tmp_path / "offline", online_url=url, environment="production")
    store.apply()

    response = TestClient(create_app(store)).get("/health")

    assert response.json()["redis_endpoint"] == {"kind": "server", "host": "127.0.0.1", "port": redis_server.port, "tls": False, "embedded": False}
    assert response.json()["environment"] == "production"
    assert "hunter2" not in response.text


def test_endpoint_descriptions_of_cluster_tls_and_unix_urls():
    assert describe("rediss+cluster://u:p@redis.internal:7000", embedded=False) == {
        "kind": "cluster", "host": "redis.internal", "port": 7000, "tls": True, "embedded": False,
    }
    assert describe("rediss://:p@cache.example:6380/0", embedded=False)["tls"] is True
    assert describe("unix:///run/redis.sock", embedded=False) == {"kind": "unix", "host": "/run/redis.sock", "port": None, "tls": False, "embedded": False}


def test_the_feature_server_in_production_without_a_url_fails_at_start_up(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "__init__.py").write_text(REPO_ASSETS)
    env = {k: v for k, v in os.environ.items() if k != "FEATURE_PLATFORM_REDIS_URL"}
    env.update({"FEATURE_PLATFORM_ENV": "production", "FEATURE_PLATFORM_HOME": str(tmp_path / "home"), "PYTHONPATH": os.getcwd()})
    command = [sys.executable, "-m", "feature_platform.cli", "serve", "--repo", str(tmp_path), "--port", "1"]

    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert started.returncode != 0
    assert MISSING in started.stdout + started.stderr
    assert not (tmp_path / "home" / "redis").exists()


def test_the_dagster_code_location_in_production_without_a_url_fails_to_load(monkeypatch):
    from feature_platform.orchestration import build_definitions

    group = scores_group()
    online_group = type(group)(**{**group.__dict__, "compute": lambda context: None})
    monkeypatch.setenv("FEATURE_PLATFORM_ENV", "production")
    monkeypatch.delenv("FEATURE_PLATFORM_REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match=MISSING):
        build_definitions([online_group])

    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_URL", "redis+cluster://redis.internal:6379")
    keys = {key.path[0] for asset in build_definitions([online_group]).assets for key in asset.keys}
    assert "online" in keys
