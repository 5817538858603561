"""Answers never lie or crash (issue 12 class 5): every answer is strict JSON, every bad input a 4xx or our error.

Real Redis and the real app; the OpenAPI schema drives schemathesis, and
hypothesis throws arbitrary JSON at the lookup endpoint.
"""

import json
import math

import pandas as pd
import pyarrow as pa
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import Entity, Feature, FeatureGroup, FeatureView
from feature_platform.errors import EntityFrameError, FeaturePlatformError, FeatureReferenceError
from feature_platform.serving.server import create_app
from tests.online_fixtures import online_store, pair_group, score_rows, scores_group, user

merchant = Entity("merchant", join_keys={"merchant_id": "int64"})
# A merchant feature that happens to be called like the user join key.
merchants = FeatureGroup(
    "merchants", entities=[merchant], partitions=None,
    features=[Feature("user_id", "int64"), Feature("raw", pa.binary()), Feature("ratio", "float64")],
)
pairs_view = FeatureView("pair_weights", features=["pairs:weight"])


def strict_json(text: str) -> object:
    """Parse as RFC 8259 JSON: no NaN or Infinity literals."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def store(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group(), merchants, pair_group(), views=(pairs_view,))
    store.push("scores", score_rows("2024-01-01", [1, 2, 3], 100))
    store.push("merchants", pd.DataFrame({
        "merchant_id": [7, 8, 9], "event_time": pd.Timestamp("2024-01-01", tz="UTC"),
        "user_id": [42, 43, 44], "raw": [b"\x00\xffbytes", None, b""], "ratio": [math.inf, -math.inf, 0.5],
    }))
    return store


@pytest.fixture
def client(store):
    return TestClient(create_app(store))


def test_a_feature_named_like_a_join_key_is_refused_instead_of_replacing_the_key(store, client):
    rows = [{"user_id": 3, "merchant_id": 7}]
    with pytest.raises(FeatureReferenceError, match="join key 'user_id'.*full_feature_names=True"):
        store.get_online_features(rows, ["scores:score", "merchants:user_id"])
    response = client.post("/get-online-features", json={"features": ["scores:score", "merchants:user_id"],
                                                          "entities": {"user_id": [3], "merchant_id": [7]}})
    assert response.status_code == 400 and "join key 'user_id'" in response.json()["detail"]


def test_full_feature_names_keep_the_join_key_and_the_feature_apart(store):
    answer = store.get_online_features([{"user_id": 3, "merchant_id": 7}], ["scores:score", "merchants:user_id"],
                                       full_feature_names=True).to_dict()
    assert answer == {"user_id": [3], "merchant_id": [7], "scores__score": [103], "merchants__user_id": [42]}


def test_a_frame_with_a_repeated_key_column_is_an_entity_frame_error(store):
    frame = pd.DataFrame([[1, 2]], columns=["user_id", "user_id"])
    with pytest.raises(EntityFrameError, match="user_id"):
        store.get_online_features(frame, ["scores:score"])


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb"])
def test_a_lone_surrogate_key_is_refused_by_the_python_api_and_over_http(store, client, key):
    with pytest.raises(EntityFrameError, match="lone surrogate"):
        store.get_online_features([{"left": key, "right": "x"}], ["pairs:weight"])
    body = json.dumps({"features": ["pairs:weight"], "entities": {"left": [key], "right": ["x"]}})  # \ud800 escapes
    response = client.post("/get-online-features", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "lone surrogate" in strict_json(response.text)["detail"]


def test_a_lone_surrogate_echoed_in_an_error_is_escaped_not_a_500(client):
    body = '{"features": ["scores:\\ud800"], "entities": {"user_id": [1]}}'
    response = client.post("/get-online-features", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "\\ud800" in response.text and response.content.isascii()


def test_binary_features_are_sent_as_base64(client):
    response = client.post("/get-online-features", json={"features": ["merchants:raw"], "entities": {"merchant_id": [7, 8, 9]}})
    assert response.status_code == 200
    assert strict_json(response.text)["features"]["raw"] == ["AP9ieXRlcw==", None, ""]


def test_non_finite_floats_are_sent_as_strings_never_as_bare_literals(client):
    response = client.post("/get-online-features", json={"features": ["merchants:ratio"], "entities": {"merchant_id": [7, 8, 9]}})
    assert strict_json(response.text)["features"]["ratio"] == ["Infinity", "-Infinity", 0.5]


def test_non_finite_request_values_in_a_validation_error_are_still_strict_json(client):
    body = '{"features": ["scores:score"], "entities": {"user_id": [1]}, "full_feature_names": Infinity}'
    response = client.post("/get-online-features", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    strict_json(response.text)


def test_the_feature_view_field_takes_only_a_view_name(client):
    response = client.post("/get-online-features", json={"feature_view": "scores:score", "entities": {"user_id": [1]}})
    assert response.status_code == 400
    assert "unknown feature view 'scores:score'" in response.json()["detail"]
    assert client.post("/get-online-features", json={"feature_view": "pair_weights",
                                                     "entities": {"left": ["a"], "right": ["b"]}}).status_code == 200


def test_a_feature_of_a_type_the_online_store_cannot_hold_is_refused_at_definition():
    with pytest.raises(FeaturePlatformError, match="feature .when. of dtype time64.*cannot be"):
        FeatureGroup("clocks", entities=[user], features=[Feature("when", pa.time64("us"))])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
entity_names = st.sampled_from(["user_id", "merchant_id", "left", "right", "factor"]) | st.text(max_size=8)
lookup_bodies = st.fixed_dictionaries(
    {"entities": st.dictionaries(entity_names, st.lists(json_values, max_size=3), max_size=3)},
    optional={
        "features": st.lists(st.sampled_from(["scores:score", "merchants:raw", "merchants:ratio", "pairs:weight", "score"]) | st.text(max_size=12), max_size=3),
        "feature_view": st.sampled_from(["pair_weights", "scores:score"]) | st.text(max_size=12),
        "full_feature_names": st.booleans() | json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=lookup_bodies)
def test_any_lookup_body_gets_a_strict_json_answer_below_500(client, body):
    response = client.post("/get-online-features", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert response.content.isascii()
    strict_json(response.text)


@pytest.mark.parametrize(("method", "path"), [("POST", "/get-online-features"), ("POST", "/push"), ("GET", "/health"), ("GET", "/feature-views")])
def test_the_openapi_schema_finds_no_server_error_and_no_loose_json(store, method, path):
    operation = schemathesis.openapi.from_asgi("/openapi.json", create_app(store))[path][method]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call()
        assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
        strict_json(response.text)

    check()


@pytest.mark.parametrize("path", ["/get-online-features", "/push"])
def test_a_name_given_twice_in_one_json_object_is_refused_not_half_read(client, path):
    body = ('{"features": ["scores:score"], "entities": {"user_id": [1], "user_id": [2]}}' if path != "/push"
            else '{"group": "scores", "rows": {"user_id": [1], "user_id": [2]}}')
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "'user_id' appears twice" in response.text


def test_an_integer_key_given_as_a_float_past_2_53_is_refused_not_rounded(store, client):
    with pytest.raises(EntityFrameError, match="past 2\\*\\*53"):
        store.get_online_features({"user_id": [float(2**53 + 2)]}, ["scores:score"])
    response = client.post("/get-online-features", content='{"features": ["scores:score"], "entities": {"user_id": [9007199254740993.0]}}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and "past 2**53" in response.json()["detail"]
    assert store.get_online_features({"user_id": [3.0]}, ["scores:score"]).to_dict()["score"] == [103]


def test_status_columns_never_replace_a_feature_of_the_same_name(tmp_path, redis_url):
    tricky = FeatureGroup("tricky", entities=[user], partitions=None,
                          features=[Feature("score", "int64"), Feature("score__status", "string")])
    store = online_store(tmp_path, redis_url, tricky)
    store.push("tricky", pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-01", tz="UTC"),
                                       "score": [5], "score__status": ["mine"]}))
    answer = store.get_online_features([{"user_id": 1}], ["tricky:score", "tricky:score__status"])
    assert answer.to_dict() == {"user_id": [1], "score": [5], "score__status": ["mine"]}
    with pytest.raises(FeaturePlatformError, match="'score__status' would replace"):
        answer.to_dict(include_statuses=True)
