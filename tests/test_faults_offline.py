"""Faults on the offline store, injected for real: SIGKILL mid-write, racing writers, a full disk, a read-only disk."""

import os
import signal
from pathlib import Path

import pyarrow.compute as pc
import pytest
from reliability_fixtures import (
    day,
    events,
    frame,
    make_store,
    remount_read_only,
    start_worker,
    table_state,
    tmpfs,
    wait_for_new_file,
    worker_result,
)

from feature_platform import StorageError

BIG = 1_000_000  # rows: about a second of writing, so that the kill lands while data files are written


def partition_summary(store, key: str) -> tuple[int, int, set[str]]:
    """Rows, distinct users and writers stored in one partition."""
    table = store.offline.read(events, start=key, end=f"{key}T23:59:59.999999", columns=["user_id", "writer"])
    return table.num_rows, len(pc.unique(table.column("user_id"))), set(pc.unique(table.column("writer")).to_pylist())


def test_sigkill_during_partition_write_leaves_table_whole_and_rerun_stores_one_copy(tmp_path: Path) -> None:
    """Proves: a writer killed with SIGKILL while writing a partition's data files leaves the table
    exactly as it was (or, had the commit landed, fully written); writing the partition again
    then holds exactly one copy of every row."""
    store = make_store(tmp_path)
    store.write_partition("events", day(1), frame(day(1), 10, writer="before"))
    before = table_state(store)
    table_dir = Path(store.offline.table_uri(events))
    known = {p for p in table_dir.rglob("*") if p.is_file()}

    worker = start_worker("write", tmp_path, day(1), day(1), BIG, "killed")
    wait_for_new_file(table_dir, known, worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)

    assert worker.returncode == -signal.SIGKILL
    version, rows = table_state(store)
    if version == before[0]:
        assert (version, rows) == before
    else:  # the commit won the race with the kill: then all of it is there
        assert version == before[0] + 1
        assert partition_summary(store, day(1)) == (BIG, BIG, {"killed"})

    result = store.write_partition("events", day(1), frame(day(1), BIG, writer="rerun"))
    assert result.rows == BIG
    assert partition_summary(store, day(1)) == (BIG, BIG, {"rerun"})


def test_two_processes_backfilling_overlapping_ranges_leave_one_copy_per_partition(tmp_path: Path) -> None:
    """Proves: two processes that start together on an empty root, each overwriting an overlapping range of
    partitions twice, both succeed (lost commit races are retried), and no table version, the final one or
    any before it, ever holds two copies of a partition's rows or a mix of two writers."""
    rows_per_day = 2_000
    go = tmp_path / "go"
    first = start_worker("write", tmp_path, day(0), day(3), rows_per_day, "A", 2, go)
    second = start_worker("write", tmp_path, day(2), day(5), rows_per_day, "B", 2, go)
    go.touch()
    results = [worker_result(first), worker_result(second)]

    assert [r["ok"] for r in results] == [True, True], results
    store = make_store(tmp_path)
    writes = [h for h in store.history("events") if h.get("partition_key")]  # the first one created the table
    assert len(writes) == 4
    for version in sorted(h["version"] for h in writes):
        table = store.offline.read(events, as_of=version, columns=["_partition", "user_id", "writer"])
        per_day = table.group_by("_partition").aggregate(
            [("user_id", "count"), ("user_id", "count_distinct"), ("writer", "count_distinct")]
        )
        for row in per_day.to_pylist():
            assert (row["user_id_count"], row["user_id_count_distinct"], row["writer_count_distinct"]) == (
                rows_per_day, rows_per_day, 1,
            ), (version, row)
    summaries = [partition_summary(store, day(offset)) for offset in range(6)]
    assert all(s[:2] == (rows_per_day, rows_per_day) for s in summaries), summaries
    assert summaries[0][2] == {"A"} and summaries[5][2] == {"B"}


def test_disk_full_fails_clearly_and_keeps_the_table_readable(tmp_path: Path) -> None:
    """Proves: when the offline root's filesystem fills up mid-write (a real 2 MiB tmpfs), the write fails with a
    StorageError naming the group and the cause, and the table still reads as its last version."""
    with tmpfs(tmp_path / "disk", size="2m") as disk:
        store = make_store(disk)
        store.write_partition("events", day(1), frame(day(1), 100, writer="before"))
        before = table_state(store)

        with pytest.raises(StorageError) as raised:
            store.write_partition("events", day(1), frame(day(1), 300_000, writer="too-big"))

        message = str(raised.value)
        assert "feature group 'events'" in message and "No space left on device" in message
        assert f"still at version {before[0]}" in message
        assert table_state(store) == before


def test_file_size_quota_fails_clearly_and_keeps_the_table_readable(tmp_path: Path) -> None:
    """Proves: a writer process whose file-size quota (RLIMIT_FSIZE) runs out mid-write gets a StorageError
    naming the cause, and the table still reads as its last version."""
    store = make_store(tmp_path)
    store.write_partition("events", day(1), frame(day(1), 100, writer="before"))
    before = table_state(store)

    result = worker_result(start_worker("write", tmp_path, day(1), day(1), 300_000, "quota", 1, "", 1_000_000))

    assert result["ok"] is False
    assert result["error"] == "StorageError"
    assert "feature group 'events'" in result["message"] and "File too large" in result["message"]
    assert table_state(store) == before


def test_read_only_offline_root_fails_clearly_and_keeps_the_table_readable(tmp_path: Path) -> None:
    """Proves: writing to an offline root that has become read-only (a tmpfs remounted ro) fails with a
    StorageError naming the group and the cause; the table still reads as its last version."""
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        store = make_store(disk)
        store.write_partition("events", day(1), frame(day(1), 100, writer="before"))
        before = table_state(store)
        remount_read_only(disk)

        with pytest.raises(StorageError) as raised:
            store.write_partition("events", day(2), frame(day(2), 100, writer="refused"))
        with pytest.raises(StorageError):
            store.ingest("events", frame(day(3), 100, writer="refused"))

        assert "feature group 'events'" in str(raised.value) and "Read-only file system" in str(raised.value)
        assert table_state(store) == before


def test_readers_during_repeated_overwrites_always_see_one_whole_copy(tmp_path: Path) -> None:
    """Proves: while another process overwrites a partition again and again, every read of it returns exactly
    one whole copy (never a half-written, empty or doubled partition): readers only ever see committed versions."""
    rows = 20_000
    store = make_store(tmp_path)
    store.write_partition("events", day(1), frame(day(1), rows, writer="first"))
    worker = start_worker("write", tmp_path, day(1), day(1), rows, "again", 6)

    seen = []
    while worker.poll() is None:
        count, users, writers = partition_summary(store, day(1))
        seen.append((count, users, tuple(sorted(writers))))
    result = worker_result(worker)

    assert result["ok"] and len(result["versions"]) == 6
    assert {(count, users) for count, users, _ in seen} == {(rows, rows)}
    assert {writers for _, _, writers in seen} <= {("first",), ("again",)}
    assert seen[0][2] == ("first",) and seen[-1][2] == ("again",)  # the reads spanned the overwrites
    assert partition_summary(store, day(1)) == (rows, rows, {"again"})
