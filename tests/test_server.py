"""The HTTP feature server: endpoints, bad requests, the bearer token, and a real uvicorn process."""

import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from feature_platform import Feature, FeatureView, OnDemandTransformation
from feature_platform.online.redis_server import free_port
from feature_platform.serving.server import create_app
from tests.online_fixtures import online_store, score_rows, scores_group

boost = OnDemandTransformation(
    "boost",
    function=lambda df: df.assign(boosted=df["score"] * df["factor"])[["boosted"]],
    outputs=[Feature("boosted", "float64")],
    inputs=["score"],
    request_inputs=["factor"],
)
view = FeatureView("ranking", features=["scores:score", "scores:label"], on_demand=[boost])


@pytest.fixture
def store(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group(), views=(view,))
    store.push("scores", score_rows("2024-01-01", [1, 2], 100))
    return store


@pytest.fixture
def client(store):
    return TestClient(create_app(store))


def test_get_online_features_by_references(client):
    response = client.post("/get-online-features", json={"features": ["scores:score"], "entities": {"user_id": [1, 9]}})
    assert response.status_code == 200
    assert response.json() == {
        "features": {"user_id": [1, 9], "score": [101, None]},
        "statuses": {"score": ["PRESENT", "NOT_FOUND"]},
    }


def test_get_online_features_by_view_runs_on_demand_transformations(client):
    body = {"feature_view": "ranking", "entities": {"user_id": [2], "factor": [0.5]}, "full_feature_names": False}
    response = client.post("/get-online-features", json=body)
    assert response.json()["features"] == {"user_id": [2], "score": [102], "label": ["2024-01-01"], "boosted": [51.0]}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"features": ["scores:nope"], "entities": {"user_id": [1]}}, 400, "has no feature 'nope'"),
        ({"features": ["score"], "entities": {"user_id": ["1"]}}, 400, "integer key"),
        ({"features": ["score"], "entities": {"account": [1]}}, 400, "user_id"),
        ({"features": ["score"], "entities": {"user_id": [1], "x": [1, 2]}}, 400, "different lengths"),
        ({"entities": {"user_id": [1]}}, 422, "exactly one of"),
        ({"features": "score", "entities": {"user_id": [1]}}, 422, "list"),
        ({"feature_view": "ranking", "entities": {"user_id": [1]}}, 400, "factor"),
        ({"feature_view": "ranking", "entities": {"user_id": [1], "factor": ["x"]}}, 400, "output 'boosted' does not fit its declared type"),
        ({"features": ["score"], "entities": {"user_id": [None]}}, 400, "got NoneType"),
        ({"features": ["score"], "entities": {"user_id": [[1]]}}, 400, "got list"),
    ],
)
def test_bad_online_requests_get_a_4xx_with_a_message(client, body, status, message):
    response = client.post("/get-online-features", json=body)
    assert response.status_code == status
    assert message in response.text


def test_malformed_json_is_a_422(client):
    response = client.post("/get-online-features", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_oversized_bodies_are_refused(store):
    client = TestClient(create_app(store, max_body_bytes=100))
    response = client.post("/get-online-features", json={"features": ["score"], "entities": {"user_id": list(range(100))}})
    assert response.status_code == 413


def test_push_then_read_back(client):
    rows = {"user_id": [3], "event_time": ["2024-01-05T08:00:00"], "score": [7], "label": ["pushed"]}
    response = client.post("/push", json={"group": "scores", "rows": rows})
    assert response.json() == {"group": "scores", "rows": 1, "to": "online"}
    read = client.post("/get-online-features", json={"features": ["score", "label"], "entities": {"user_id": [3]}})
    assert read.json()["features"] == {"user_id": [3], "score": [7], "label": ["pushed"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"group": "nope", "rows": {"user_id": [1]}}, "unknown feature group 'nope'"),
        ({"group": "scores", "rows": {"user_id": [1], "event_time": ["2024-01-05"]}}, "missing column"),
        ({"group": "scores", "rows": {"user_id": [1], "event_time": ["yesterday"], "score": [1], "label": ["x"]}}, "event_time"),
        ({"group": "scores", "rows": {"user_id": [1, 2], "event_time": ["2024-01-05"]}}, "same length"),
    ],
)
def test_bad_pushes_get_a_400_with_a_message(client, body, message):
    response = client.post("/push", json=body)
    assert response.status_code == 400
    assert message in response.text


def test_health_reports_redis_reachability(client, tmp_path):
    assert client.get("/health").json()["redis"] is True
    port = free_port()
    down = online_store(tmp_path, f"redis://127.0.0.1:{port}/0", scores_group())
    response = TestClient(create_app(down)).get("/health")
    assert (response.status_code, response.json()) == (
        503,
        {
            "status": "degraded",
            "redis": False,
            "redis_endpoint": {"kind": "server", "host": "127.0.0.1", "port": port, "tls": False, "embedded": False},
            "environment": "development",
        },
    )


def test_feature_views_lists_views_with_their_inputs(client):
    assert client.get("/feature-views").json() == [
        {
            "name": "ranking",
            "version": 1,
            "description": "",
            "features": ["scores:score", "scores:label"],
            "join_keys": ["user_id"],
            "request_inputs": ["factor"],
            "outputs": ["score", "label", "boosted"],
        }
    ]


def test_token_is_required_when_set(store):
    client = TestClient(create_app(store, token="t0ken"))
    body = {"features": ["score"], "entities": {"user_id": [1]}}
    assert client.post("/get-online-features", json=body).status_code == 401
    wrong = client.post("/get-online-features", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.post("/get-online-features", json=body, headers={"Authorization": "Bearer t0ken"})
    assert right.status_code == 200
    assert client.get("/feature-views").status_code == 401


def test_the_lookup_route_answers_like_every_other_endpoint(store):
    """The bare ASGI route of lookups gives the same 401 (with its challenge), 405, 422 and 413 as FastAPI does elsewhere."""
    client = TestClient(create_app(store, token="t0ken", max_body_bytes=200))
    unauthorised = client.post("/get-online-features", json={"features": ["score"], "entities": {"user_id": [1]}})
    assert (unauthorised.status_code, unauthorised.headers["www-authenticate"]) == (401, "Bearer")
    assert unauthorised.json() == {"detail": "missing or wrong bearer token"}
    assert client.get("/get-online-features").status_code == 405
    headers = {"Authorization": "Bearer t0ken", "content-type": "application/json"}
    empty = client.post("/get-online-features", content=b"", headers=headers)
    assert (empty.status_code, empty.json()["detail"][0]["type"]) == (422, "json_invalid")
    big = client.post("/get-online-features", content=b" " * 201, headers=headers)
    assert big.json() == {"detail": "request body larger than 200 bytes"} and big.status_code == 413


def test_openapi_schema_documents_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/get-online-features", "/push", "/health", "/feature-views"} <= set(paths)


REPO_ASSETS = textwrap.dedent(
    """
    from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureView
    user = Entity("user", join_keys={"user_id": "int64"})
    scores = FeatureGroup("scores", entities=[user], features=[Feature("score", "int64")], partitions=DailyPartitions(start="2024-01-01"))
    feature_groups = [scores]
    feature_views = [FeatureView("ranking", features=["scores:score"])]
    raw_sources = []
    """
)


def test_cli_serve_runs_uvicorn_on_localhost_with_the_token(tmp_path, redis_url):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "__init__.py").write_text(REPO_ASSETS)
    port = free_port()
    env = {**os.environ, "FEATURE_PLATFORM_REDIS_URL": redis_url, "FEATURE_PLATFORM_SERVER_TOKEN": "abc",
           "PYTHONPATH": os.getcwd()}
    applied = subprocess.run([sys.executable, "-m", "feature_platform.cli", "apply", "--repo", str(tmp_path)], env=env, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr  # the server refuses to start on definitions that were not applied
    command = [sys.executable, "-m", "feature_platform.cli", "serve", "--repo", str(tmp_path), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert (health.json()["status"], health.json()["redis"]) == ("ok", True)
        views = httpx.get(f"http://127.0.0.1:{port}/feature-views", headers={"Authorization": "Bearer abc"})
        assert [v["name"] for v in views.json()] == ["ranking"]
    finally:
        server.terminate()
        server.wait(timeout=10)
