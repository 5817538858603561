"""The join index: a table version's rows sorted for point-in-time lookups, kept beside the table.

Maintenance (or `build_join_index`) builds it for the current version; joins of
that version read it, and joins of any other version go without. These tests try
to make it give a wrong answer: new writes, old versions, a damaged file, ties on
every sort column, composite string keys, a file outside the request's window.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform import Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.offline import join_index
from feature_platform.offline.maintenance import maintain_table
from tests.retrieval_fixtures import make_store, user_rows


def index_files(store: FeatureStore, group: str) -> list[Path]:
    return sorted((Path(store.offline.table_uri(store.group(group))) / join_index.FOLDER).glob(f"*{join_index.ROWS}"))


def entities(*rows: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [r[0] for r in rows], "event_time": pd.to_datetime([r[1] for r in rows], format="ISO8601")})


def written_store(tmp_path: Path) -> FeatureStore:
    """`user_stats` (ttl 2 days): users 1 and 2 on May 1 noon, user 1 again on May 3 noon."""
    store = make_store(tmp_path)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (3, 10.0, "a"), 2: (5, 20.0, "b")}))
    store.write_partition("user_stats", "2024-05-03", user_rows("2024-05-03", {1: (4, 12.0, "c")}))
    return store


EVERY_FILE = entities((1, "2024-05-01 12:00"), (2, "2024-05-02"), (1, "2024-05-03 12:00"), (9, "2024-05-03"))


def test_joins_build_no_index_and_give_the_same_rows_with_one(tmp_path: Path):
    store = written_store(tmp_path)
    without = store.get_historical_features(EVERY_FILE, ["user_stats:txn_count", "user_stats:segment"])
    assert index_files(store, "user_stats") == []
    assert store.build_join_index("user_stats") == 3
    assert len(index_files(store, "user_stats")) == 1
    indexed = store.get_historical_features(EVERY_FILE, ["user_stats:txn_count", "user_stats:segment"])
    assert without["txn_count"].tolist() == indexed["txn_count"].tolist() == [3, 5, 4, pd.NA]
    assert indexed["segment"].tolist() == ["a", "b", "c", None]


def test_with_an_index_files_outside_the_window_are_still_not_read(tmp_path: Path):
    store = written_store(tmp_path)
    store.build_join_index("user_stats")
    for file in (Path(store.offline.table_uri(store.group("user_stats"))) / "_partition=2024-05-01").glob("*.parquet"):
        file.write_bytes(b"not parquet")
    # May 3 13:00 minus the 2-day ttl is after every May 1 row (noon): only the May 3 file holds a winner.
    result = store.get_historical_features(entities((1, "2024-05-03 13:00"), (2, "2024-05-03 13:00")), ["user_stats:txn_count"])
    assert result["txn_count"].tolist() == [4, pd.NA]


def test_a_write_after_the_index_was_built_is_seen_and_old_versions_keep_their_rows(tmp_path: Path):
    store = written_store(tmp_path)
    store.build_join_index("user_stats")
    before = store.offline.version(store.group("user_stats"))
    store.write_partition("user_stats", "2024-05-03", user_rows("2024-05-03", {1: (40, 1.0, "x"), 2: (50, 2.0, "y")}))
    assert store.get_historical_features(EVERY_FILE, ["user_stats:txn_count"])["txn_count"].tolist() == [3, 5, 40, pd.NA]
    store.build_join_index("user_stats")
    assert store.get_historical_features(EVERY_FILE, ["user_stats:txn_count"])["txn_count"].tolist() == [3, 5, 40, pd.NA]
    then = store.get_historical_features(EVERY_FILE, ["user_stats:txn_count"], as_of={"user_stats": before})
    assert then["txn_count"].tolist() == [3, 5, 4, pd.NA]


@pytest.mark.parametrize("damaged", [join_index.ROWS, join_index.KEYS])
def test_a_damaged_index_file_is_dropped_and_the_join_stays_right(tmp_path: Path, damaged: str):
    store = written_store(tmp_path)
    store.build_join_index("user_stats")
    [rows] = index_files(store, "user_stats")
    index = rows.with_name(rows.name.removesuffix(join_index.ROWS) + damaged)
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    result = store.get_historical_features(EVERY_FILE, ["user_stats:txn_count"])
    assert result["txn_count"].tolist() == [3, 5, 4, pd.NA]
    assert index_files(store, "user_stats") == []


def test_only_the_newest_index_files_are_kept(tmp_path: Path):
    store = written_store(tmp_path)
    for count in range(4):
        store.write_partition("user_stats", "2024-05-03", user_rows("2024-05-03", {1: (count, 1.0, "x")}))
        store.build_join_index("user_stats")
        assert store.get_historical_features(EVERY_FILE, ["user_stats:txn_count"])["txn_count"].tolist()[2] == count
    assert len(index_files(store, "user_stats")) == join_index.KEPT


def test_maintenance_indexes_the_version_it_leaves(tmp_path: Path):
    store = written_store(tmp_path)
    result = maintain_table(store.offline, store.group("user_stats"))
    assert result.join_index_rows == 3
    [index] = index_files(store, "user_stats")
    assert index.name.startswith(f"v{result.version_after}-")
    assert store.get_historical_features(EVERY_FILE, ["user_stats:txn_count"])["txn_count"].tolist() == [3, 5, 4, pd.NA]


def test_ties_on_composite_string_keys_go_to_the_created_time_then_the_later_write(tmp_path: Path):
    account = Entity("account", join_keys={"account_id": "int64", "region": "string"})
    group = FeatureGroup("accounts", entities=[account], features=[Feature("score", "int64")], created_time="created")
    store = FeatureStore(groups=[group], offline_root=tmp_path, project="test")
    store.apply()
    noon, one = pd.Timestamp("2024-05-01 12:00"), pd.Timestamp("2024-05-01 13:00")
    rows = pd.DataFrame({
        "account_id": [1, 1, 1, 2], "region": ["a:b", "a:b", "a", "a:b"], "event_time": [noon] * 4,
        "created": [None, one, None, None], "score": [10, 11, 12, 13],
    })
    store.ingest("accounts", rows)
    store.ingest("accounts", rows.iloc[[0, 2]].assign(score=[20, 22]))  # exact ties: the later write wins
    assert store.build_join_index("accounts") == 6
    frame = pd.DataFrame({"account_id": [1, 1, 2, 2], "region": ["a:b", "a", "a:b", "a"], "event_time": [noon] * 4})
    result = store.get_historical_features(frame, ["accounts:score"])
    assert result["score"].tolist() == [11, 22, 13, pd.NA]
    assert len(index_files(store, "accounts")) == 1


rows_to_sort = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.one_of(st.none(), st.integers(0, 2)), st.integers(0, 2)), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(rows=rows_to_sort, string_keys=st.booleans())
def test_the_index_order_is_keys_then_event_then_created_missing_first_then_write_then_stored_order(rows, string_keys):
    keys = [f"k{k}" if string_keys else k for k, _, _, _ in rows]
    narrow = pa.table({
        "key": pa.array(keys, pa.string() if string_keys else pa.int64()),
        "event": pa.array([e for _, e, _, _ in rows], pa.timestamp("us", tz="UTC")),
        "created": pa.array([c for _, _, c, _ in rows], pa.timestamp("us", tz="UTC")),
        "written": pa.array([w for _, _, _, w in rows], pa.timestamp("us", tz="UTC")),
    })
    ordered = join_index._order(narrow, ["key"], "event", ["created", "written"])
    expected = sorted(range(len(rows)), key=lambda i: (keys[i], rows[i][1], -1 if rows[i][2] is None else rows[i][2], rows[i][3], i))
    assert ordered.column("__rid").to_pylist() == expected
    assert ordered.column("key").to_pylist() == [keys[i] for i in expected]
    assert ordered.column("__event").to_pylist() == [rows[i][1] for i in expected]


def test_a_lookup_includes_both_bounds_and_finds_nothing_before_a_keys_first_row_or_past_its_ttl():
    index = join_index.JoinIndex(
        codes=pa.table({"user_id": [1, 2], "__code": [0, 1]}), starts=np.array([0, 2, 3]),
        events=np.array([10, 20, 5]), rows=np.array([2, 0, 1]), files=["f"], file_rows=[3],
    )
    keys = pa.table({"user_id": [1, 1, 1, 1, 2, 3]})
    upper, lower = np.array([20, 19, 25, 9, 100, 100]), np.array([20, 10, 21, 0, 5, 0])
    entity_rows, positions = index.lookup(keys, upper, lower)
    assert entity_rows.tolist() == [0, 1, 4] and positions.tolist() == [0, 2, 1]
