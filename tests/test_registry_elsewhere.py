"""Another process applies or retires while a store keeps running: its writes notice at once, its online reads within
`FEATURE_PLATFORM_REGISTRY_CHECK_S`, and both fail naming the group (or view) and the fix, never serving the old definition."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView
from feature_platform.errors import ArgumentError, DefinitionMismatchError
from feature_platform.online.redis_server import free_port
from feature_platform.serving.server import create_app

ROOT = Path(__file__).resolve().parent.parent
CHECK_S = 0.3
DAY = "2024-01-02"
ENTITIES = pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
user = Entity("user", join_keys={"user_id": "int64"})


def scores(*extra: str, version: int = 1) -> FeatureGroup:
    features = [Feature("score", "int64"), *(Feature(f, "int64") for f in extra)]
    return FeatureGroup("scores", entities=[user], features=features, partitions=DailyPartitions(start="2024-01-01"), version=version)


def rows() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "event_time": pd.Timestamp(f"{DAY} 12:00", tz="UTC"), "score": [10, 20]})


def elsewhere(root: Path, redis_url: str, code: str) -> None:
    """Run `code` with a FeatureStore `store` of its own on the same offline root and Redis, in another process."""
    script = textwrap.dedent(
        f"""
        from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView
        user = Entity("user", join_keys={{"user_id": "int64"}})
        def scores(*extra, version=1):
            features = [Feature("score", "int64"), *(Feature(f, "int64") for f in extra)]
            return FeatureGroup("scores", entities=[user], features=features, partitions=DailyPartitions(start="2024-01-01"), version=version)
        """
    ) + textwrap.dedent(code).replace("STORE", f"offline_root={str(root)!r}, online_url={redis_url!r}, project='live'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)


@pytest.fixture
def serving(tmp_path, redis_url, monkeypatch):
    """A long-running store (and its HTTP server) that applied, wrote, synced and served `scores` v1 and the view `model`."""
    monkeypatch.setenv("FEATURE_PLATFORM_REGISTRY_CHECK_S", str(CHECK_S))
    store = FeatureStore([scores(), scores(version=2)], [FeatureView("model", features=["scores@1:score"])], offline_root=tmp_path,
                         online_url=redis_url, project="live")
    store.apply()
    store.write_partition("scores", DAY, rows(), version=1)
    store.sync_to_online("scores", version=1)
    client = TestClient(create_app(store))
    assert store.get_online_features([{"user_id": 1}], ["scores@1:score"]).to_dict()["score"] == [10]
    assert client.post("/get-online-features", json={"feature_view": "model", "entities": {"user_id": [2]}}).json()["features"]["score"] == [20]
    return store, client


def test_a_group_retired_by_another_process_is_refused_by_writes_at_once_and_by_online_reads_within_the_interval(serving, tmp_path, redis_url):
    store, client = serving
    elsewhere(tmp_path, redis_url, """
        store = FeatureStore([scores(), scores(version=2)], [FeatureView("model", features=["scores@2:score"], version=2)], STORE)
        store.apply()
        store.retire("scores", 1)
    """)
    retired = r"feature group 'scores' v1 was retired: its online keys are gone; define version=3 and apply it \(a long-running process"
    for write in (
        lambda: store.write_partition("scores", DAY, rows(), version=1),
        lambda: store.sync_to_online("scores", version=1),
        lambda: store.read_group("scores", version=1),
        lambda: store.get_historical_features(ENTITIES, ["scores@1:score"]),
    ):
        with pytest.raises(DefinitionMismatchError, match=retired):
            write()
    time.sleep(CHECK_S + 0.05)
    with pytest.raises(DefinitionMismatchError, match=retired):
        store.get_online_features([{"user_id": 1}], ["scores@1:score"])
    response = client.post("/get-online-features", json={"feature_view": "model", "entities": {"user_id": [2]}})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("feature group 'scores' v1 was retired: its online keys are gone; define version=3")
    assert not store.online.client.keys(b"*scores:v1*")  # nothing written back into the retired version


def test_a_definition_changed_by_another_process_is_refused_naming_the_difference_and_the_fix(serving, tmp_path, redis_url):
    store, client = serving
    elsewhere(tmp_path, redis_url, """
        FeatureStore([scores("rank"), scores(version=2)], [FeatureView("model", features=["scores@1:score"])], STORE).apply()
    """)
    changed = r"feature group 'scores' v1 differs from what was applied \(removes feature\(s\) \['rank'\].*update this code"
    with pytest.raises(DefinitionMismatchError, match=changed):
        store.write_partition("scores", DAY, rows(), version=1)
    time.sleep(CHECK_S + 0.05)
    with pytest.raises(DefinitionMismatchError, match=changed):
        store.get_online_features([{"user_id": 1}], ["scores@1:score"])
    response = client.post("/get-online-features", json={"feature_view": "model", "entities": {"user_id": [2]}})
    assert (response.status_code, "feature group 'scores' v1 differs from what was applied" in response.json()["detail"]) == (409, True)


def test_a_store_serves_again_once_it_has_the_definitions_another_process_applied(serving, tmp_path, redis_url):
    store, _ = serving
    elsewhere(tmp_path, redis_url, """
        FeatureStore([scores(), scores(version=2)], [FeatureView("model", features=["scores@2:score"], version=2)], STORE).apply()
    """)
    time.sleep(CHECK_S + 0.05)
    with pytest.raises(DefinitionMismatchError, match="feature view 'model' v1 differs from what was applied"):
        store.get_online_features([{"user_id": 1}], "model")
    assert store.get_online_features([{"user_id": 1}], ["scores@1:score"]).to_dict()["score"] == [10]  # v1 itself is unchanged
    updated = FeatureStore([scores(), scores(version=2)], [FeatureView("model", features=["scores@2:score"], version=2)],
                           offline_root=tmp_path, online_url=redis_url, project="live")
    assert updated.get_online_features([{"user_id": 1}], "model").to_dict(include_statuses=True)["score__status"] == ["NOT_FOUND"]


def test_a_bad_check_interval_is_refused_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_REGISTRY_CHECK_S", "soon")
    with pytest.raises(ArgumentError, match=r"FEATURE_PLATFORM_REGISTRY_CHECK_S must be a number of seconds in \[0, 3600\), got 'soon'"):
        FeatureStore([scores()], offline_root=tmp_path)


def test_a_forked_feature_server_notices_a_retire_in_every_worker(tmp_path, redis_url, monkeypatch):
    """The server's workers are forked after it read the registry (where deltalake cannot run): they still notice."""
    repo = tmp_path / "repo"
    (repo / "assets").mkdir(parents=True)
    (repo / "assets" / "__init__.py").write_text(textwrap.dedent("""
        from feature_platform import Entity, Feature, FeatureGroup
        user = Entity("user", join_keys={"user_id": "int64"})
        feature_groups = [FeatureGroup("scores", entities=[user], features=[Feature("score", "int64")], partitions=None)]
        feature_views = []
        raw_sources = []
    """))
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_URL", redis_url)
    monkeypatch.setenv("FEATURE_PLATFORM_OFFLINE_ROOT", str(tmp_path / "offline"))
    monkeypatch.setenv("FEATURE_PLATFORM_REGISTRY_CHECK_S", str(CHECK_S))
    store = FeatureStore.from_repo(repo)
    store.apply()
    store.push("scores", pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-01", tz="UTC"), "score": [10]}))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "feature_platform.serving.server", "--repo", str(repo), "--port", str(port), "--workers", "2"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    body = {"features": ["scores:score"], "entities": {"user_id": [1]}}
    try:
        url = f"http://127.0.0.1:{port}/get-online-features"
        deadline = time.monotonic() + 60
        while True:
            try:
                answers = [httpx.post(url, json=body) for _ in range(20)]
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert {(a.status_code, str(a.json()["features"]["score"])) for a in answers} == {(200, "[10]")}
        store.retire("scores", 1)
        time.sleep(CHECK_S + 0.2)
        answers = [httpx.post(url, json=body) for _ in range(20)]
        assert {a.status_code for a in answers} == {409}
        assert {a.json()["detail"].split(":")[0] for a in answers} == {"feature group 'scores' v1 was retired"}
    finally:
        server.terminate()
        server.wait(timeout=30)
