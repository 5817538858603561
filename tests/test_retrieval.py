"""`get_historical_features`: semantics on hand-made examples and an error for each kind of bad request."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from feature_platform import EntityFrameError, FeaturePlatformError, FeatureReferenceError
from feature_platform.definitions.on_demand import Column, OnDemandPlan
from tests.retrieval_fixtures import amount_ratio, make_store, merchant_rows, risk_view, user_rows


@pytest.fixture
def store(tmp_path: Path):
    """Users 1 and 2 on May 1 and 3 (noon), merchant 7 on May 1 and 2 (midnight)."""
    store = make_store(tmp_path)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (3, 10.0, "a"), 2: (5, 20.0, "b")}))
    store.write_partition("user_stats", "2024-05-03", user_rows("2024-05-03", {1: (4, 12.0, "c")}))
    store.write_partition("merchant_stats", "2024-05-01", merchant_rows("2024-05-01", {7: (100, 0.01)}))
    store.write_partition("merchant_stats", "2024-05-02", merchant_rows("2024-05-02", {7: (120, 0.02)}))
    return store


def entities(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "merchant_id", "event_time"]).assign(
        event_time=lambda f: pd.to_datetime(f["event_time"], format="ISO8601")
    )


def test_each_row_gets_the_latest_values_known_at_its_time(store):
    frame = entities((1, 7, "2024-05-01 11:59:59"), (1, 7, "2024-05-01 12:00:00"), (1, 7, "2024-05-03 12:00:00"))
    result = store.get_historical_features(frame, ["user_stats:txn_count", "user_stats:segment"])
    assert result["txn_count"].tolist() == [pd.NA, 3, 4]
    assert result["segment"].tolist() == [None, "a", "c"]


def test_ttl_lower_bound_is_inclusive_and_older_rows_expire(store):
    frame = entities((2, 7, "2024-05-03 12:00:00"), (2, 7, "2024-05-03 12:00:00.000001"))
    result = store.get_historical_features(frame, ["user_stats:txn_count"])
    assert result["txn_count"].tolist() == [5, pd.NA]


def test_nanosecond_entity_times_keep_both_bounds_exact(store):
    frame = entities((1, 7, "2024-05-01 12:00:00.000000999"), (2, 7, "2024-05-03 12:00:00.000000001"))
    result = store.get_historical_features(frame, ["user_stats:txn_count"])
    # 12:00:00.000000999 is after the row at 12:00; 2 days before 12:00:00.000000001 is after it.
    assert result["txn_count"].tolist() == [3, pd.NA]


def test_entity_columns_order_index_and_duplicates_pass_through(store):
    frame = entities((2, 7, "2024-05-02"), (1, 7, "2024-05-02"), (2, 7, "2024-05-02")).assign(label=[True, False, True])
    frame.index = [30, 10, 20]
    result = store.get_historical_features(frame, ["user_stats:amount_mean"])
    pd.testing.assert_frame_equal(result[frame.columns], frame)
    assert result["amount_mean"].tolist() == [20.0, 10.0, 20.0]


def test_integer_features_stay_int64_when_every_row_has_a_value(store):
    result = store.get_historical_features(entities((1, 7, "2024-05-02"), (2, 7, "2024-05-02")), ["user_stats:txn_count"])
    assert result["txn_count"].dtype == "int64"
    missing = store.get_historical_features(entities((1, 7, "2024-05-02"), (9, 7, "2024-05-02")), ["user_stats:txn_count"])
    assert missing["txn_count"].dtype == "Int64"
    assert missing["txn_count"].tolist() == [3, pd.NA]


def test_tz_aware_times_are_converted_to_utc(store):
    frame = entities((1, 7, "2024-05-01 13:59:00"), (1, 7, "2024-05-01 14:00:00"))
    frame["event_time"] = frame["event_time"].dt.tz_localize("Europe/Berlin")  # 11:59 and 12:00 UTC
    assert store.get_historical_features(frame, ["user_stats:txn_count"])["txn_count"].tolist() == [pd.NA, 3]


def test_groups_of_different_entities_join_on_their_own_keys(store):
    frame = entities((1, 7, "2024-05-02 06:00"), (2, 8, "2024-05-02 06:00"))
    result = store.get_historical_features(frame, ["user_stats:amount_mean", "merchant_stats:fraud_rate"])
    assert result["amount_mean"].tolist() == [10.0, 20.0]
    assert result["fraud_rate"].tolist()[0] == 0.02 and pd.isna(result["fraud_rate"].tolist()[1])


def test_full_feature_names_prefix_the_group(store):
    result = store.get_historical_features(
        entities((1, 7, "2024-05-02")), ["user_stats:txn_count", "merchant_stats:txn_count"], full_feature_names=True
    )
    assert result[["user_stats__txn_count", "merchant_stats__txn_count"]].iloc[0].tolist() == [3, 120]


def test_custom_timestamp_column(store):
    frame = entities((1, 7, "2024-05-02")).rename(columns={"event_time": "requested_at"})
    result = store.get_historical_features(frame, ["user_stats:txn_count"], timestamp_column="requested_at")
    assert result["txn_count"].tolist() == [3]


def test_as_of_a_time_reads_the_tables_as_they_were(store):
    before = pd.Timestamp.now(tz="UTC")
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (99, 99.0, "z")}))
    frame = entities((1, 7, "2024-05-02"))
    assert store.get_historical_features(frame, ["user_stats:txn_count"])["txn_count"].tolist() == [99]
    assert store.get_historical_features(frame, ["user_stats:txn_count"], as_of=before)["txn_count"].tolist() == [3]


def test_as_of_delta_versions_per_group(store):
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (99, 99.0, "z")}))
    frame = entities((1, 7, "2024-05-02"))
    result = store.get_historical_features(
        frame, ["user_stats:txn_count", "merchant_stats:fraud_rate"], as_of={"user_stats": 0, "merchant_stats": 0}
    )
    assert result[["txn_count", "fraud_rate"]].iloc[0].tolist() == [3, 0.01]


def test_as_of_versions_must_cover_every_group_read(store):
    with pytest.raises(FeaturePlatformError, match=r"no Delta version for group\(s\) \['merchant_stats'\]"):
        store.get_historical_features(
            entities((1, 7, "2024-05-02")), ["user_stats:txn_count", "merchant_stats:fraud_rate"], as_of={"user_stats": 0}
        )


def test_files_outside_the_time_window_are_not_read(store):
    # Damage user_stats' May 1 file: a request that can see May 1 fails, one that cannot never opens it.
    folder = Path(store.offline.table_uri(store.group("user_stats"))) / "_partition=2024-05-01"
    for file in folder.glob("*.parquet"):
        file.write_bytes(b"not parquet")
    # May 3 13:00 minus the 2-day ttl is May 1 13:00, after every May 1 row (noon).
    later = entities((1, 7, "2024-05-03 13:00"))
    assert store.get_historical_features(later, ["user_stats:txn_count"])["txn_count"].tolist() == [4]
    with pytest.raises(pa.ArrowInvalid, match="_partition=2024-05-01"):
        store.get_historical_features(entities((1, 7, "2024-05-02")), ["user_stats:txn_count"])


def test_file_statistics_in_milliseconds_never_hide_a_row_of_the_same_millisecond(tmp_path: Path):
    # Delta keeps a file's min/max event time to the millisecond: 12:00:00.000999 is recorded as 12:00:00.000.
    store = make_store(tmp_path)
    row = user_rows("2024-05-05", {5: (9, 1.0, "z")}).assign(event_time=pd.Timestamp("2024-05-05 12:00:00.000999"))
    store.write_partition("user_stats", "2024-05-05", row)
    # Before the row; at it; exactly its ttl (2 days) later, inclusive; one microsecond past the ttl.
    # One request each: a request reads the files of its rows' whole time range.
    for time, expected in [("2024-05-05 12:00:00.000998", pd.NA), ("2024-05-05 12:00:00.000999", 9),
                           ("2024-05-07 12:00:00.000999", 9), ("2024-05-07 12:00:00.001", pd.NA)]:
        result = store.get_historical_features(entities((5, 7, time)), ["user_stats:txn_count"])
        assert result["txn_count"].tolist() == [expected], time


def test_on_demand_features_run_the_shared_transformation(store):
    frame = entities((1, 7, "2024-05-02"), (9, 7, "2024-05-02")).assign(amount=[25.0, 5.0])
    result = store.get_historical_features(frame, "risk")
    assert result.columns.tolist() == [*frame.columns, "amount_mean", "segment", "fraud_rate", "amount_ratio"]
    assert result["amount_ratio"].iloc[0] == 2.5 and pd.isna(result["amount_ratio"].iloc[1])
    # The online path hands the same function the same Arrow inputs: identical values.
    features = {"amount_mean": Column(pa.float64(), values=[10.0, None])}
    online = OnDemandPlan(risk_view.on_demand).run(features, {"amount": [25.0, 5.0]}, 2)
    assert online["amount_ratio"].python() == [2.5, None]


def test_unknown_feature_names_the_known_groups(store):
    with pytest.raises(FeatureReferenceError, match=r"unknown feature group 'users'.*\['merchant_stats', 'user_stats'\]"):
        store.get_historical_features(entities((1, 7, "2024-05-02")), ["users:txn_count"])


def test_ambiguous_bare_feature_names_the_candidates(store):
    with pytest.raises(FeatureReferenceError, match=r"'txn_count' is ambiguous.*'merchant_stats:txn_count', 'user_stats:txn_count'"):
        store.get_historical_features(entities((1, 7, "2024-05-02")), ["txn_count"])


def test_output_name_collision_needs_full_feature_names(store):
    with pytest.raises(FeatureReferenceError, match="full_feature_names=True"):
        store.get_historical_features(entities((1, 7, "2024-05-02")), ["user_stats:txn_count", "merchant_stats:txn_count"])


def test_output_name_already_in_the_entity_frame_is_refused(store):
    frame = entities((1, 7, "2024-05-02")).assign(segment="x")
    with pytest.raises(EntityFrameError, match=r"\['segment'\] already exist in the entity frame"):
        store.get_historical_features(frame, ["user_stats:segment"])


def test_missing_join_key_column_names_the_group(store):
    frame = entities((1, 7, "2024-05-02")).drop(columns=["merchant_id"])
    with pytest.raises(EntityFrameError, match=r"lacks join key column\(s\) \['merchant_id'\] of feature group 'merchant_stats'"):
        store.get_historical_features(frame, ["merchant_stats:fraud_rate"])


def test_missing_time_column_says_how_to_name_it(store):
    frame = entities((1, 7, "2024-05-02")).drop(columns=["event_time"])
    with pytest.raises(EntityFrameError, match="no time column 'event_time'; pass timestamp_column="):
        store.get_historical_features(frame, ["user_stats:txn_count"])


def test_string_keys_for_an_int_key_are_a_dtype_mismatch(store):
    frame = entities((1, 7, "2024-05-02")).assign(user_id=["1"])
    with pytest.raises(EntityFrameError, match=r"column 'user_id' has dtype object \(string\), but feature group 'user_stats' keys it as int64"):
        store.get_historical_features(frame, ["user_stats:txn_count"])


def test_float_keys_for_an_int_key_are_a_dtype_mismatch(store):
    frame = entities((1, 7, "2024-05-02")).assign(user_id=[1.0])
    with pytest.raises(EntityFrameError, match="column 'user_id' has dtype float64"):
        store.get_historical_features(frame, ["user_stats:txn_count"])


def test_null_times_are_refused(store):
    frame = entities((1, 7, "2024-05-02"), (2, 7, None))
    with pytest.raises(EntityFrameError, match=r"time column 'event_time': 1 row\(s\) have no time"):
        store.get_historical_features(frame, ["user_stats:txn_count"])


def test_missing_request_column_of_an_on_demand_feature(store):
    with pytest.raises(EntityFrameError, match=r"request-time column\(s\) \['amount'\]"):
        store.get_historical_features(entities((1, 7, "2024-05-02")), "risk")


def test_a_group_never_written_gives_nulls(tmp_path):
    store = make_store(tmp_path)
    result = store.get_historical_features(entities((1, 7, "2024-05-02")), ["merchant_stats:txn_count"])
    assert result["txn_count"].tolist() == [pd.NA]


def test_an_empty_entity_frame_gives_an_empty_result(store):
    frame = entities((1, 7, "2024-05-02")).iloc[:0]
    result = store.get_historical_features(frame, ["user_stats:txn_count"])
    assert len(result) == 0 and "txn_count" in result.columns


def test_as_of_a_time_before_the_first_write_gives_nulls(tmp_path):
    store = make_store(tmp_path)
    before = pd.Timestamp.now(tz="UTC")
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (3, 10.0, "a")}))
    frame = entities((1, 7, "2024-05-02"))
    assert store.get_historical_features(frame, ["user_stats:txn_count"], as_of=before)["txn_count"].tolist() == [pd.NA]


def test_as_of_one_version_number_is_ambiguous(store):
    with pytest.raises(FeaturePlatformError, match="one version number is ambiguous across groups"):
        store.get_historical_features(entities((1, 7, "2024-05-02")), ["user_stats:txn_count"], as_of=0)
