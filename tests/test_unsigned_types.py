"""Unsigned integers: refused in definitions (Delta Lake has none), converted exactly when they arrive as input data.

Delta Lake stores uint8 as a signed byte, so 200 failed mid-write; Feast has no
unsigned value types either. A definition declares the signed type that holds
the values, and uint columns, entity frames and numpy key values are converted
to it on every path, with a value out of range refused naming the column.
"""

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, OnDemandTransformation
from feature_platform.definitions.aggregations import Aggregation, StreamFeatureGroup
from feature_platform.errors import ContractError, DefinitionError
from feature_platform.serving.server import create_app

user = Entity("user", join_keys={"user_id": "int64"})
DAY = "2024-01-02"


@pytest.mark.parametrize(
    ("dtype", "named", "instead"),
    [
        ("uint8", "uint8", "int16"),
        (pa.uint16(), "uint16", "int32"),
        ("uint32", "uint32", "int64"),
        (pa.uint64(), "uint64", "int64"),
        (pa.list_(pa.uint8()), "uint8", "int16"),
        (pa.struct([("a", pa.int64()), ("b", pa.uint32())]), "uint32", "int64"),
        (pa.map_(pa.string(), pa.uint16()), "uint16", "int32"),
    ],
)
def test_an_unsigned_feature_dtype_is_refused_naming_the_feature_and_the_signed_type(dtype, named, instead):
    with pytest.raises(DefinitionError, match=rf"feature 'hits': dtype .* holds unsigned integers \({named}\).* declare {instead}"):
        Feature("hits", dtype)


@pytest.mark.parametrize("dtype", ["uint8", pa.uint32(), pa.uint64()])
def test_an_unsigned_join_key_is_refused_naming_the_entity_and_key(dtype):
    with pytest.raises(DefinitionError, match=r"entity 'card' join key 'card_id': dtype uint\d+ holds unsigned integers.*Supported: \["):
        Entity("card", join_keys={"card_id": dtype})


def test_unsigned_stream_fields_and_on_demand_outputs_are_refused_too():
    with pytest.raises(DefinitionError, match=r"field 'amount': dtype uint16 holds unsigned integers"):
        StreamFeatureGroup("w", entities=[user], fields={"amount": pa.uint16()}, aggregations=[Aggregation("count", timedelta(hours=1))])
    with pytest.raises(DefinitionError, match=r"feature 'doubled': dtype uint8 holds unsigned"):
        OnDemandTransformation("double", function=lambda df: df, outputs=[Feature("doubled", "uint8")], inputs=["hits"])


def counters() -> FeatureGroup:
    """A group declaring the signed types that hold uint16 hits and uint32 keys."""
    return FeatureGroup(
        "counters",
        entities=[user],
        features=[Feature("hits", "int32"), Feature("big", "int64")],
        partitions=DailyPartitions(start="2024-01-01"),
        ttl=timedelta(days=3650),
    )


def unsigned_rows(big: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.array([4_000_000_000, 7], dtype="uint32"),
            "event_time": pd.Timestamp(f"{DAY} 12:00", tz="UTC"),
            "hits": pd.array([65_535, 0], dtype="uint16"),
            "big": np.array(big, dtype=np.uint64),
        }
    )


def test_unsigned_input_columns_are_stored_read_joined_synced_and_served_exactly(tmp_path, redis_url):
    store = FeatureStore([counters()], offline_root=tmp_path, online_url=redis_url, project="u")
    store.apply()
    store.write_partition("counters", DAY, unsigned_rows([2**63 - 1, 5]))
    stored = store.read_group("counters")
    assert stored.to_dict("list") == {
        "user_id": [4_000_000_000, 7], "event_time": [pd.Timestamp(f"{DAY} 12:00", tz="UTC")] * 2, "hits": [65_535, 0], "big": [2**63 - 1, 5],
    }
    assert [str(t) for t in stored.dtypes[["user_id", "hits", "big"]]] == ["int64", "int32", "int64"]
    entities = pd.DataFrame({"user_id": pd.array([7, 4_000_000_000, 8], dtype="uint32"), "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
    for indexed in (False, True):  # the ASOF join, then the join index's lookup
        if indexed:
            store.build_join_index("counters")
        joined = store.get_historical_features(entities, ["counters:hits", "counters:big"])
        assert joined[["hits", "big"]].astype(object).where(joined[["hits", "big"]].notna(), None).values.tolist() == [
            [0, 5], [65_535, 2**63 - 1], [None, None],
        ]
    assert store.sync_to_online("counters").rows_written == 2
    frame = pd.DataFrame({"user_id": np.array([4_000_000_000, 7, 8], dtype=np.uint64)})
    rows = [{"user_id": np.uint32(k)} for k in (4_000_000_000, 7, 8)]
    for entity_rows in (frame, rows):
        online = store.get_online_features(entity_rows, ["counters:hits", "counters:big"])
        assert online.to_dict(include_statuses=True) == {
            "user_id": [4_000_000_000, 7, 8], "hits": [65_535, 0, None], "big": [2**63 - 1, 5, None],
            "hits__status": ["PRESENT", "PRESENT", "NOT_FOUND"], "big__status": ["PRESENT", "PRESENT", "NOT_FOUND"],
        }
    response = TestClient(create_app(store)).post(
        "/get-online-features", json={"features": ["counters:big"], "entities": {"user_id": [4_000_000_000]}}
    )
    assert response.json()["features"] == {"user_id": [4_000_000_000], "big": [2**63 - 1]}


def test_an_unsigned_value_out_of_the_declared_range_is_refused_naming_the_column_and_nothing_is_written(tmp_path):
    store = FeatureStore([counters()], offline_root=tmp_path, project="u")
    store.apply()
    with pytest.raises(ContractError, match=r"feature group 'counters', column 'big': dtype: cannot cast uint64 to int64 safely"):
        store.write_partition("counters", DAY, unsigned_rows([2**63, 5]))
    assert not store.offline.exists(counters())
