"""Every write is checked against the group's contract first; a violation writes nothing."""

import numpy as np
import pandas as pd
import pytest
from conftest import user_rows

from feature_platform import ContractError, FeatureStore


def assert_refused(store: FeatureStore, frame: pd.DataFrame, column: str | None, rule: str) -> None:
    before = store.offline.version(store.group("user_stats"))
    with pytest.raises(ContractError) as error:
        store.write_partition("user_stats", "2024-05-01", frame)
    assert (error.value.group, error.value.column, error.value.rule) == ("user_stats", column, rule)
    assert "feature group 'user_stats'" in str(error.value)
    assert store.offline.version(store.group("user_stats")) == before


def test_missing_column_is_refused(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-01", [1]).drop(columns="segment"), "segment", "missing column")


def test_extra_column_is_refused(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-01", [1]).assign(surprise=1), "surprise", "unexpected column")


def test_wrong_dtype_is_refused(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-01", [1]).assign(txn_count="seven"), "txn_count", "dtype")


def test_non_integral_floats_are_refused_for_an_integer_feature(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-01", [1]).assign(txn_count=1.5), "txn_count", "dtype")


def test_mixed_type_object_column_is_refused(store: FeatureStore) -> None:
    frame = user_rows("2024-05-01", [1, 2]).assign(segment=pd.Series(["a", 3], dtype=object))
    assert_refused(store, frame, "segment", "dtype")


def test_nan_join_key_in_a_float_column_is_refused(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-01", [1, 2]).assign(user_id=[1, np.nan]), "user_id", "null join key")


def test_null_join_key_in_a_nullable_integer_column_is_refused(store: FeatureStore) -> None:
    frame = user_rows("2024-05-01", [1, 2]).assign(user_id=pd.array([1, None], dtype="Int64"))
    assert_refused(store, frame, "user_id", "null join key")


def test_missing_event_time_is_refused(store: FeatureStore) -> None:
    frame = user_rows("2024-05-01", [1, 2]).assign(event_time=[pd.Timestamp("2024-05-01"), pd.NaT])
    assert_refused(store, frame, "event_time", "null event time")


def test_event_outside_the_partition_is_refused(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-02", [1]), "event_time", "event outside partition")


def test_duplicate_keys_and_event_time_are_refused(store: FeatureStore) -> None:
    assert_refused(store, user_rows("2024-05-01", [1, 1]), None, "duplicate rows")


def test_a_refused_write_leaves_stored_data_as_it_was(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2]))
    assert_refused(store, user_rows("2024-05-01", [3]).assign(txn_count="x"), "txn_count", "dtype")
    assert sorted(store.read_group("user_stats")["user_id"]) == [1, 2]


def test_naive_timestamps_are_taken_as_utc(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1]))
    assert store.read_group("user_stats")["event_time"].tolist() == [pd.Timestamp("2024-05-01 12:00", tz="UTC")]


def test_aware_timestamps_are_converted_to_utc_before_the_partition_check(store: FeatureStore) -> None:
    # 2024-05-01 23:30 in New York is 2024-05-02 03:30 UTC: outside the 2024-05-01 partition.
    frame = user_rows("2024-05-01", [1]).assign(event_time=pd.Timestamp("2024-05-01 23:30", tz="America/New_York"))
    assert_refused(store, frame, "event_time", "event outside partition")
    store.write_partition("user_stats", "2024-05-02", frame)
    assert store.read_group("user_stats")["event_time"].tolist() == [pd.Timestamp("2024-05-02 03:30", tz="UTC")]


def test_safe_casts_are_accepted(store: FeatureStore) -> None:
    frame = user_rows("2024-05-01", [1, 2]).astype({"user_id": "int32", "txn_count": "float64"})
    frame["amount_mean"] = np.array([1, 2], dtype="int16")
    store.write_partition("user_stats", "2024-05-01", frame)
    rows = store.read_group("user_stats").sort_values("user_id")
    assert rows["txn_count"].tolist() == [1, 2]
    assert rows["amount_mean"].tolist() == [1.0, 2.0]


def _created_group():
    from feature_platform import Entity, Feature, FeatureGroup

    user = Entity("user", join_keys={"user_id": "int64"})
    return FeatureGroup("events", entities=[user], features=[Feature("v", "float64")], created_time="created", partitions=None)


def _conform(frame: pd.DataFrame):
    from datetime import datetime, timezone

    from feature_platform.definitions.contract import conform

    return conform(_created_group(), frame, written_at=datetime(2024, 1, 1, tzinfo=timezone.utc))


def test_rows_repeating_key_event_and_created_are_counted_exactly() -> None:
    times = pd.to_datetime(["2024-01-01 10:00"] * 4, utc=True)
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2], "event_time": times, "created": times, "v": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ContractError, match=r"2 row\(s\) repeat the same \['user_id', 'event_time', 'created'\]"):
        _conform(frame)


def test_a_missing_created_time_is_a_value_of_its_own_in_the_uniqueness_check() -> None:
    times = pd.to_datetime(["2024-01-01 10:00"] * 3, utc=True)
    created = pd.Series([pd.NaT, pd.NaT, pd.Timestamp("1677-09-22", tz="UTC")])  # two missing: a repeat
    frame = pd.DataFrame({"user_id": [1, 1, 1], "event_time": times, "created": created, "v": [1.0, 2.0, 3.0]})
    with pytest.raises(ContractError, match=r"1 row\(s\) repeat the same"):
        _conform(frame)
    assert _conform(frame.iloc[1:]).num_rows == 2  # one missing and one earliest time are distinct rows


def test_rows_differing_only_in_created_time_are_distinct() -> None:
    times = pd.to_datetime(["2024-01-01 10:00"] * 3, utc=True)
    created = pd.to_datetime(["2024-01-01 10:00:00.000001", "2024-01-01 10:00:00.000002", "2024-01-01 10:00:00.000003"], utc=True)
    frame = pd.DataFrame({"user_id": [1, 1, 1], "event_time": times, "created": created, "v": [1.0, 2.0, 3.0]})
    assert _conform(frame).num_rows == 3


def test_nanosecond_times_are_floored_to_microseconds_before_and_after_1970() -> None:
    times = pd.Series(pd.to_datetime([-1501, 1501, 1_700_000_000_000_000_999], unit="ns", utc=True))
    frame = pd.DataFrame({"user_id": [1, 2, 3], "event_time": times, "created": [pd.NaT, times[1], pd.NaT], "v": [1.0, 2.0, 3.0]})
    table = _conform(frame)
    assert table.column("event_time").cast("int64").to_pylist() == [-2, 1, 1_700_000_000_000_000]
    assert table.column("created").cast("int64").to_pylist() == [None, 1, None]
