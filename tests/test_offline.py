"""The Delta offline store: idempotent partition writes, appends, time travel, concurrency."""

import multiprocessing
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import user_rows

from feature_platform import FeatureGroup, FeatureStore
from feature_platform.offline.store import OfflineStore


def test_rewriting_a_partition_replaces_it_without_duplicates(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2, 3]))
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2, 3], txn_count=10))
    rows = store.read_group("user_stats").sort_values("user_id")
    assert rows["user_id"].tolist() == [1, 2, 3]
    assert rows["txn_count"].tolist() == [10, 11, 12]


def test_writing_one_partition_leaves_the_others_alone(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2]))
    store.write_partition("user_stats", "2024-05-02", user_rows("2024-05-02", [3]))
    store.write_partition("user_stats", "2024-05-02", user_rows("2024-05-02", [4]))
    rows = store.read_group("user_stats").sort_values("user_id")
    assert rows["user_id"].tolist() == [1, 2, 4]


def test_append_accepts_rows_across_partitions(store: FeatureStore, user_stats: FeatureGroup) -> None:
    frame = pd.concat([user_rows("2024-05-01", [1]), user_rows("2024-05-03", [2]), user_rows("2024-05-05", [3])])
    result = store.ingest("user_stats", frame)
    assert result.rows == 3
    assert [d.isoformat() for d in store.offline.partitions(user_stats)] == ["2024-05-01", "2024-05-03", "2024-05-05"]


def test_read_range_prunes_to_the_requested_event_times(store: FeatureStore) -> None:
    store.ingest("user_stats", pd.concat([user_rows(f"2024-05-0{d}", [d]) for d in range(1, 6)]))
    rows = store.read_group("user_stats", start="2024-05-02", end="2024-05-04")
    assert sorted(rows["user_id"]) == [2, 3]


def test_read_returns_the_group_columns_with_utc_event_times(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1]))
    rows = store.read_group("user_stats")
    assert list(rows.columns) == ["user_id", "event_time", "txn_count", "amount_mean", "segment"]
    assert rows["event_time"].iloc[0] == pd.Timestamp("2024-05-01 12:00", tz="UTC")


def test_time_travel_by_version_reads_the_table_as_it_was(store: FeatureStore) -> None:
    first = store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1]))
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2]))
    assert store.read_group("user_stats", as_of=first.version)["user_id"].tolist() == [1]
    assert sorted(store.read_group("user_stats")["user_id"]) == [1, 2]


def test_time_travel_by_timestamp_reads_the_version_current_then(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1]))
    time.sleep(0.05)
    between = pd.Timestamp.now(tz="UTC")
    time.sleep(0.05)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2, 3]))
    assert store.read_group("user_stats", as_of=between)["user_id"].tolist() == [1]
    assert store.read_group("user_stats", as_of=between.isoformat())["user_id"].tolist() == [1]


def test_history_lists_versions_newest_first_with_the_partition_written(store: FeatureStore) -> None:
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1]), commit_metadata={"dagster_run_id": "r1"})
    store.write_partition("user_stats", "2024-05-02", user_rows("2024-05-02", [1]))
    history = store.history("user_stats")
    assert [h["version"] for h in history] == [1, 0]
    assert [h["partition_key"] for h in history] == ["2024-05-02", "2024-05-01"]
    assert history[1]["dagster_run_id"] == "r1"


def test_write_result_reports_the_committed_version_and_rows(store: FeatureStore) -> None:
    result = store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2]))
    assert (result.rows, result.version, result.partition_key) == (2, 0, "2024-05-01")
    assert result.uri.endswith("/test/user_stats/v1")


def test_each_group_version_is_its_own_table(tmp_path: Path, user_stats: FeatureGroup) -> None:
    from dataclasses import replace

    v2 = replace(user_stats, version=2)
    offline = OfflineStore(str(tmp_path))
    offline.write_partition(user_stats, "2024-05-01", user_rows("2024-05-01", [1]))
    offline.write_partition(v2, "2024-05-01", user_rows("2024-05-01", [7, 8]))
    assert offline.read(user_stats).num_rows == 1
    assert offline.read(v2).num_rows == 2


def _write_partitions(root: str, group: FeatureGroup, days: list[str]) -> None:
    offline = OfflineStore(root, project="test")
    for day in days:
        offline.write_partition(group, day, user_rows(day, [1, 2, 3]))


def test_two_processes_writing_different_partitions_all_commit(tmp_path: Path, user_stats: FeatureGroup) -> None:
    days = [f"2024-05-{d:02d}" for d in range(1, 13)]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_partitions, args=(str(tmp_path), user_stats, days[i::2])) for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    rows = OfflineStore(str(tmp_path), project="test").read(user_stats).to_pandas()
    assert len(rows) == 36
    assert rows.groupby(rows["event_time"].dt.date).size().tolist() == [3] * 12


def test_a_snapshot_keeps_reading_its_version_after_a_later_write(store: FeatureStore, user_stats: FeatureGroup) -> None:
    first = store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", [1, 2]))
    snapshot = store.offline.snapshot(user_stats, first.version)
    store.ingest("user_stats", user_rows("2024-05-01", [3]))  # a second write into the same partition
    latest = store.offline.snapshot(user_stats, store.offline.version(user_stats))
    assert snapshot.scanner(["user_id"], None, None).to_table().column("user_id").to_pylist() == [1, 2]
    assert sorted(latest.scanner(["user_id"], None, None).to_table().column("user_id").to_pylist()) == [1, 2, 3]
    # Only the later version can hold (keys, event time) ties across writes.
    assert snapshot.single_write and not latest.single_write
