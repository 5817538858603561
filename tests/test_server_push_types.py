"""Every dtype the Python API accepts can be pushed over HTTP (issue 12 class 6), in the JSON form docs/serving.md gives.

A real Redis, a real Delta table and the real app: what a push stores is read
back exactly through the Python API, and the HTTP answer is itself a valid push.
"""

import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import Feature, FeatureGroup
from feature_platform.serving.json_values import dumps
from feature_platform.serving.server import create_app
from tests.online_fixtures import online_store, user

FEATURES = {
    "i64": pa.int64(), "i32": pa.int32(), "i8": pa.int8(), "f64": pa.float64(), "f32": pa.float32(),
    "flag": pa.bool_(), "text": pa.string(), "raw": pa.binary(), "seen": pa.timestamp("us", tz="UTC"),
    "day": pa.date32(), "counts": pa.list_(pa.int64()), "pair": pa.struct([("a", pa.int64()), ("b", pa.string())]),
}
everything = FeatureGroup(
    "everything", entities=[user], partitions=None, created_time="created",
    features=[Feature(name, arrow) for name, arrow in FEATURES.items()],
)
REFERENCES = [f"everything:{name}" for name in FEATURES]
BIG = 2**53 + 1


@pytest.fixture
def store(tmp_path, redis_url):
    return online_store(tmp_path, redis_url, everything)


@pytest.fixture
def client(store):
    return TestClient(create_app(store))


def pushed_rows() -> dict:
    return {
        "user_id": [1, 2],
        "event_time": ["2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00"],
        "created": ["2024-05-01T12:30:00Z", None],
        "i64": [BIG, str(-BIG)],
        "i32": [None, -(2**31)],
        "i8": ["127", 0],
        "f64": ["Infinity", "NaN"],
        "f32": [0.5, "-Infinity"],
        "flag": [True, None],
        "text": ["héllo ✓", ""],
        "raw": ["AP8=", None],
        "seen": ["1969-07-20T20:17:40.123456Z", None],
        "day": ["1900-02-28", None],
        "counts": [[BIG, None], []],
        "pair": [{"a": 1, "b": "x"}, {"a": None}],
    }


def read(client, user_ids: list[int]) -> dict:
    response = client.post("/get-online-features", json={"features": REFERENCES, "entities": {"user_id": user_ids}})
    assert response.status_code == 200, response.text
    return response.json()["features"]


def test_a_push_of_every_dtype_is_stored_exactly(client, store):
    response = client.post("/push", json={"group": "everything", "rows": pushed_rows()})
    assert response.json() == {"group": "everything", "rows": 2, "to": "online"}
    stored = store.get_online_features([{"user_id": 1}, {"user_id": 2}], REFERENCES).to_dict()
    assert stored["i64"] == [BIG, -BIG] and stored["i32"] == [None, -(2**31)] and stored["i8"] == [127, 0]
    assert stored["f64"][0] == math.inf and math.isnan(stored["f64"][1])
    assert stored["f32"] == [0.5, -math.inf] and stored["flag"] == [True, None] and stored["text"] == ["héllo ✓", ""]
    assert stored["raw"] == [b"\x00\xff", None]
    assert stored["seen"] == [datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=timezone.utc), None]
    assert stored["day"] == [date(1900, 2, 28), None]
    assert stored["counts"] == [[BIG, None], []] and stored["pair"] == [{"a": 1, "b": "x"}, {"a": None, "b": None}]


def test_the_answer_gives_each_dtype_in_its_json_form(client):
    client.post("/push", json={"group": "everything", "rows": pushed_rows()})
    assert read(client, [1, 2]) == {
        "user_id": [1, 2], "i64": [BIG, -BIG], "i32": [None, -(2**31)], "i8": [127, 0],
        "f64": ["Infinity", "NaN"], "f32": [0.5, "-Infinity"], "flag": [True, None], "text": ["héllo ✓", ""],
        "raw": ["AP8=", None], "seen": ["1969-07-20T20:17:40.123456+00:00", None], "day": ["1900-02-28", None],
        "counts": [[BIG, None], []], "pair": [{"a": 1, "b": "x"}, {"a": None, "b": None}],
    }


def test_an_answer_pushed_back_stores_the_same_values(client):
    client.post("/push", json={"group": "everything", "rows": pushed_rows()})
    answer = read(client, [1, 2])
    answer["user_id"] = [11, 12]
    rows = {**answer, "event_time": ["2024-05-02T00:00:00Z"] * 2, "created": [None, None]}
    assert client.post("/push", json={"group": "everything", "rows": rows}).status_code == 200
    again = read(client, [11, 12])
    assert {k: v for k, v in again.items() if k != "user_id"} == {k: v for k, v in answer.items() if k != "user_id"}


def test_a_push_to_the_offline_store_keeps_the_same_types(client, store):
    assert client.post("/push", json={"group": "everything", "rows": pushed_rows(), "to": "offline"}).status_code == 200
    frame = store.read_group("everything").sort_values("user_id")
    assert frame["i64"].tolist() == [BIG, -BIG]
    assert frame["seen"].iloc[0] == datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=timezone.utc)
    assert frame["event_time"].iloc[0] == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("i64", 1.5, "JSON integer or a string of decimal digits"),
        ("i64", True, "JSON integer"),
        ("i64", "12x", "JSON integer"),
        ("i64", 2.0**60, "past 2**53"),
        ("i64", str(2**64), "integer"),
        ("i32", 2**31, "i32"),
        ("i8", -129, "i8"),
        ("f64", "inf", '"Infinity"'),
        ("flag", "true", "true or false"),
        ("text", 5, "string"),
        ("text", "\ud800", "lone surrogate"),
        ("raw", "not base64!", "base64"),
        ("seen", 1714557600, "ISO 8601"),
        ("seen", "yesterday", "ISO 8601"),
        ("day", "2024-05-01T00:00:00", "YYYY-MM-DD"),
        ("counts", 3, "array"),
        ("pair", {"a": 1, "c": 2}, "unknown fields"),
        ("event_time", 1714557600, "ISO 8601"),
    ],
)
def test_a_value_not_in_its_dtypes_json_form_is_a_400_naming_the_column_and_nothing_is_stored(client, store, column, value, expected):
    rows = pushed_rows()
    rows[column] = [value, rows[column][1]]
    response = client.post("/push", content=json.dumps({"group": "everything", "rows": rows}), headers={"content-type": "application/json"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert f"column '{column}'" in detail and expected in detail
    assert store.get_online_features([{"user_id": 1}, {"user_id": 2}], ["everything:i64"]).statuses["i64"] == ["NOT_FOUND"] * 2


def test_unknown_columns_and_uneven_columns_are_refused(client):
    rows = pushed_rows()
    assert "not declared" in client.post("/push", json={"group": "everything", "rows": {**rows, "extra": [1, 2]}}).json()["detail"]
    rows["i64"] = [1]
    assert "same length" in client.post("/push", json={"group": "everything", "rows": rows}).json()["detail"]


def _value(arrow: pa.DataType) -> st.SearchStrategy:
    if pa.types.is_integer(arrow):
        info = (2 ** (arrow.bit_width - 1)) if pa.types.is_signed_integer(arrow) else 0
        high = 2 ** (arrow.bit_width - 1) - 1 if info else 2**arrow.bit_width - 1
        return st.integers(-info, high)
    if arrow == pa.float32():
        return st.floats(width=32, allow_nan=False)
    if pa.types.is_floating(arrow):
        return st.floats(allow_nan=False)
    if pa.types.is_boolean(arrow):
        return st.booleans()
    if pa.types.is_string(arrow):
        return st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
    if pa.types.is_binary(arrow):
        return st.binary(max_size=8)
    if pa.types.is_timestamp(arrow):
        return st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc))
    if pa.types.is_date(arrow):
        return st.dates()
    if pa.types.is_list(arrow):
        return st.lists(st.none() | _value(arrow.value_type), max_size=3)
    return st.fixed_dictionaries({f.name: st.none() | _value(f.type) for f in arrow})


rows_of_every_dtype = st.fixed_dictionaries({name: st.lists(st.none() | _value(arrow), min_size=2, max_size=2) for name, arrow in FEATURES.items()})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=rows_of_every_dtype)
def test_any_values_pushed_in_their_json_form_come_back_exactly(client, store, values):
    rows = {"user_id": [1, 2], "event_time": [datetime.now(timezone.utc).isoformat()] * 2, "created": [None, None], **values}
    response = client.post("/push", content=dumps({"group": "everything", "rows": rows}), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    stored = store.get_online_features([{"user_id": 1}, {"user_id": 2}], REFERENCES).to_dict()
    for name, arrow in FEATURES.items():
        expected = values[name]
        if pa.types.is_struct(arrow):
            expected = [None if v is None else {f.name: v.get(f.name) for f in arrow} for v in expected]
        assert stored[name] == expected, name


def test_pushes_over_http_never_regress_a_newer_value(client, store):
    rows = pushed_rows()
    client.post("/push", json={"group": "everything", "rows": rows})
    older = {**rows, "event_time": ["2024-04-01T00:00:00Z"] * 2, "created": [None, None], "i64": [1, 2]}
    assert client.post("/push", json={"group": "everything", "rows": older}).status_code == 200
    assert store.get_online_features([{"user_id": 1}], ["everything:i64"]).to_dict()["i64"] == [BIG]


def test_naive_times_are_utc(client, store):
    rows = pushed_rows()
    rows["seen"] = ["2024-05-01T08:00:00", "2024-05-01T08:00:00+00:00"]
    client.post("/push", json={"group": "everything", "rows": rows})
    seen = store.get_online_features([{"user_id": 1}, {"user_id": 2}], ["everything:seen"]).to_dict()["seen"]
    assert seen == [datetime(2024, 5, 1, 8, tzinfo=timezone.utc)] * 2
    assert seen[0] - datetime(2024, 5, 1, tzinfo=timezone.utc) == timedelta(hours=8)


offline_kinds = FeatureGroup(
    "offline_kinds", entities=[user], partitions=None, online=False,
    features=[Feature("price", pa.decimal128(12, 2)), Feature("counts", pa.map_(pa.string(), pa.int64())),
              Feature("visits", pa.list_(pa.timestamp("us", tz="UTC"))), Feature("span", pa.struct([("first", pa.date32())]))],
)


def test_offline_only_dtypes_push_over_http_in_their_json_form(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, offline_kinds)
    client = TestClient(create_app(store))
    rows = {"user_id": [1, 2], "event_time": ["2024-05-01T00:00:00Z"] * 2, "price": ["12345678.91", 7],
            "counts": [[["a", 1], ["b", None]], []], "visits": [["2024-05-01T10:00:00+02:00", None], None],
            "span": [{"first": "1999-12-31"}, None]}
    response = client.post("/push", json={"group": "offline_kinds", "rows": rows, "to": "offline"})
    assert response.status_code == 200, response.text
    frame = store.read_group("offline_kinds").sort_values("user_id")
    assert frame["price"].tolist() == [Decimal("12345678.91"), Decimal("7.00")]
    assert frame["counts"].iloc[0] == [("a", 1), ("b", None)]
    visits = [None if pd.isna(v) else pd.Timestamp(v) for v in frame["visits"].iloc[0]]  # UTC, without a zone in numpy
    assert visits == [pd.Timestamp("2024-05-01T08:00:00"), None]
    assert frame["span"].iloc[0] == {"first": date(1999, 12, 31)}
    bad = {**rows, "price": [12.5, None]}
    refused = client.post("/push", json={"group": "offline_kinds", "rows": bad, "to": "offline"})
    assert refused.status_code == 400 and "column 'price'" in refused.json()["detail"] and "decimal" in refused.json()["detail"]
