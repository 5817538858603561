"""Property tests: whatever typed keys and values go in, exactly those come back out."""

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.online import codec

account = Entity("account", join_keys={"account_id": "int64", "region": "string"})

balances = FeatureGroup(
    "balances",
    entities=[account],
    features=[Feature("count", "int64"), Feature("balance", "float64"), Feature("label", "string"), Feature("active", "bool")],
    partitions=DailyPartitions(start="2024-05-01"),
)

SEPARATORS = [":", "|", "/", "\\", "\x00", " ", "::", "a:b", "1", "", "é", "🙂", "\u200b", "\n"]
int64s = st.integers(-(2**63), 2**63 - 1)
key_texts = st.one_of(st.sampled_from(SEPARATORS), st.text(max_size=12), st.lists(st.sampled_from(SEPARATORS), max_size=4).map("".join))
event_times = st.datetimes(min_value=datetime(2024, 5, 1), max_value=datetime(2027, 12, 31), timezones=st.just(timezone.utc))
rows = st.fixed_dictionaries(
    {
        "account_id": int64s,
        "region": key_texts,
        "event_time": event_times,
        "count": st.none() | int64s,
        "balance": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "label": st.none() | st.text(max_size=30),
        "active": st.none() | st.booleans(),
    }
)
frames = st.lists(rows, min_size=1, max_size=25, unique_by=lambda r: (r["account_id"], r["region"], r["event_time"]))


def typed_frame(written: list[dict]) -> pd.DataFrame:
    """The rows as a frame with nullable dtypes, as a careful caller builds it (no int -> float round trip)."""
    column = lambda name: [r[name] for r in written]  # noqa: E731
    return pd.DataFrame(
        {
            "account_id": pd.array(column("account_id"), dtype="int64"),
            "region": column("region"),
            "event_time": pd.to_datetime(column("event_time"), utc=True),
            "count": pd.array(column("count"), dtype="Int64"),
            "balance": pd.array(column("balance"), dtype="Float64"),
            "label": pd.array(column("label"), dtype="string"),
            "active": pd.array(column("active"), dtype="boolean"),
        }
    )


def as_stored(row: dict) -> tuple:
    return tuple(row[c] for c in balances.input_columns)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(written=frames)
def test_ingest_then_offline_read_returns_exactly_the_rows_written(tmp_path: Path, written: list[dict]) -> None:
    """Proves: random rows with composite typed keys (any int64, unicode strings full of separators, empty
    strings) and nullable values of every dtype are stored and read back exactly, none lost or altered."""
    store = FeatureStore(groups=[balances], offline_root=tmp_path / uuid.uuid4().hex, project="fuzz")
    store.apply()

    store.ingest("balances", typed_frame(written))

    stored = store.offline.read(balances, columns=balances.input_columns).to_pylist()
    assert sorted(map(as_stored, stored), key=repr) == sorted(map(as_stored, written), key=repr)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(written=frames)
def test_point_in_time_lookup_at_each_rows_own_time_returns_that_row(tmp_path: Path, written: list[dict]) -> None:
    """Proves: asking the historical API for every written (composite key, event time) returns exactly the
    values of that row: random typed keys are matched exactly, never confused with one another."""
    store = FeatureStore(groups=[balances], offline_root=tmp_path / uuid.uuid4().hex, project="fuzz")
    store.apply()
    store.ingest("balances", typed_frame(written))
    entities = typed_frame(written)[["account_id", "region", "event_time"]]

    result = store.get_historical_features(entities, [f"balances:{f}" for f in balances.feature_names])

    got = result.astype(object).where(result.notna(), None)
    for name in balances.feature_names:
        assert got[name].tolist() == [r[name] for r in written], name


online_frames = st.lists(rows, min_size=1, max_size=25, unique_by=lambda r: (r["account_id"], r["region"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(written=online_frames)
def test_push_then_online_lookup_returns_exactly_the_values_written(tmp_path: Path, redis_url: str, written: list[dict]) -> None:
    """Proves: entities with random composite typed keys pushed to Redis are each found under their own key
    with exactly the values written (no two entities overwrite each other, nothing is altered)."""
    store = FeatureStore(groups=[balances], offline_root=tmp_path / "offline", online_url=redis_url, project=f"p{uuid.uuid4().hex}")
    store.apply()
    store.push("balances", typed_frame(written), to="online")

    keys = {"account_id": [r["account_id"] for r in written], "region": [r["region"] for r in written]}
    got = store.get_online_features(keys, [f"balances:{f}" for f in balances.feature_names]).to_dict()

    assert got["count"] == [r["count"] for r in written]
    assert got["balance"] == [r["balance"] for r in written]
    assert got["label"] == [r["label"] for r in written]
    assert got["active"] == [r["active"] for r in written]


key_values = st.one_of(int64s, key_texts, st.booleans())
namespaces = st.tuples(st.sampled_from(["a", "a_b", "b"]), st.sampled_from(["g", "b_g", "g_1"]), st.integers(1, 3))


@settings(max_examples=400, deadline=None)
@given(first=st.tuples(namespaces, st.lists(key_values, min_size=1, max_size=3)), second=st.tuples(namespaces, st.lists(key_values, min_size=1, max_size=3)))
def test_distinct_typed_keys_never_share_a_redis_key(first: tuple, second: tuple) -> None:
    """Proves: two entity keys (project, group, version, typed key values) map to the same Redis key only when
    they are the same key: int 1 vs "1" vs True, "a:b"+"c" vs "a"+"b:c", and names that join alike differ."""

    def redis_key(spec: tuple) -> bytes:
        (project, group, version), values = spec
        definition = FeatureGroup(group, entities=[account], features=[Feature("count", "int64")], version=version)
        return codec.encode_keys(codec.key_prefix(project, definition), [[v] for v in values])[0]

    def typed(spec: tuple) -> tuple:
        return spec[0], tuple((type(v).__name__, v) for v in spec[1])

    assert (redis_key(first) == redis_key(second)) == (typed(first) == typed(second))
