"""Partition writes as Parquet files committed in one Delta transaction: atomicity, exact ranges, statistics."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from reliability_fixtures import day, events, frame, make_store, table_state, tmpfs

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, StorageError
from feature_platform.offline import files


def data_files(store: FeatureStore, group: FeatureGroup = events) -> set[str]:
    """Parquet files on disk under the group's table, relative to it."""
    root = Path(store.offline.table_uri(group))
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


def committed_files(store: FeatureStore, group: FeatureGroup = events) -> set[str]:
    """Files of the table's current version, relative to it."""
    root = Path(store.offline.table_uri(group)).resolve()
    return {str(Path(uri.removeprefix("file://")).relative_to(root)) for uri in DeltaTable(str(root)).file_uris()}


def per_day(store: FeatureStore, as_of: int | None = None) -> dict[str, set[str]]:
    """Writers stored in each day."""
    table = store.offline.read(events, as_of=as_of, columns=["_partition", "writer"])
    out: dict[str, set[str]] = {}
    for partition, writer in zip(table.column("_partition").to_pylist(), table.column("writer").to_pylist()):
        out.setdefault(partition.isoformat(), set()).add(writer)
    return out


def test_disk_full_in_the_middle_of_a_multi_partition_write_leaves_the_table_and_the_disk_as_they_were(tmp_path: Path) -> None:
    """Proves: when a real 4 MiB filesystem fills up after some days' files of a 6-day write are written, the write
    fails with a StorageError, the table reads as its previous version, the files already written are deleted
    (a write that fits then succeeds), and nothing of the failed write is ever visible."""
    with tmpfs(tmp_path / "disk", size="4m") as disk:
        store = make_store(disk)
        store.offline.write_partitions(events, day(0), day(5), pd.concat([frame(day(d), 50, writer="before") for d in range(6)]))
        before = table_state(store)
        big = pd.concat([frame(day(d), 60_000, writer="too-big") for d in range(6)])

        with pytest.raises(StorageError) as raised:
            store.offline.write_partitions(events, day(0), day(5), big)

        assert "No space left on device" in str(raised.value) and f"still at version {before[0]}" in str(raised.value)
        assert table_state(store) == before
        assert data_files(store) == committed_files(store)
        store.offline.write_partitions(events, day(1), day(2), pd.concat([frame(day(d), 20_000, writer="after") for d in (1, 2)]))
        assert per_day(store) == {day(0): {"before"}, day(1): {"after"}, day(2): {"after"}, day(3): {"before"},
                                  day(4): {"before"}, day(5): {"before"}}
        assert per_day(store, as_of=before[0]) == {day(d): {"before"} for d in range(6)}


def test_a_failed_commit_deletes_the_written_files_and_leaves_the_table_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: when every file of a 3-day write is on disk but its commit fails, the files are deleted
    and the table and its history are those of the previous version."""
    store = make_store(tmp_path)
    store.offline.write_partitions(events, day(0), day(2), pd.concat([frame(day(d), 10, writer="before") for d in range(3)]))
    before, history = table_state(store), store.history("events")

    def refuse(self: DeltaTable, *args: object, **kwargs: object) -> None:
        raise OSError("the log store refused the commit")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refuse)
    with pytest.raises(StorageError, match="the log store refused the commit"):
        store.offline.write_partitions(events, day(0), day(2), pd.concat([frame(day(d), 10, writer="lost") for d in range(3)]))

    assert table_state(store) == before and store.history("events") == history
    assert data_files(store) == committed_files(store)


def test_a_partition_range_overwrite_replaces_exactly_those_days(tmp_path: Path) -> None:
    """Proves: overwriting days 1..3 with rows for days 1 and 2 only replaces days 1 and 2, empties day 3,
    leaves days 0 and 4 as they were, in one new version; the previous version still reads as it was."""
    store = make_store(tmp_path)
    first = store.offline.write_partitions(events, day(0), day(4), pd.concat([frame(day(d), 30, writer="old") for d in range(5)]))

    second = store.offline.write_partitions(events, day(1), day(3), pd.concat([frame(day(d), 7, writer="new") for d in (1, 2)]))

    assert second.version == first.version + 1
    assert per_day(store) == {day(0): {"old"}, day(1): {"new"}, day(2): {"new"}, day(4): {"old"}}
    counts = store.offline.read(events, columns=["_partition"]).group_by("_partition").aggregate([([], "count_all")])
    assert sorted((p.isoformat(), n) for p, n in zip(*(counts.column(c).to_pylist() for c in ("_partition", "count_all")))) == [
        (day(0), 30), (day(1), 7), (day(2), 7), (day(4), 30)
    ]
    assert per_day(store, as_of=first.version) == {day(d): {"old"} for d in range(5)}


def test_an_overwrite_that_loses_a_race_for_a_new_day_is_retried_and_stores_one_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: when another writer commits the same, previously empty, day between this write's snapshot and
    its commit (neither removes a file, so only the day's claim conflicts), this write is retried on the new
    table and the day holds exactly its rows: no two copies."""
    store, rival = make_store(tmp_path), make_store(tmp_path)
    store.write_partition("events", day(0), frame(day(0), 5, writer="first"))
    real = DeltaTable.create_write_transaction
    raced: list[int] = []

    def race_then_commit(self: DeltaTable, *args: object, **kwargs: object) -> None:
        if not raced:
            raced.append(self.version())
            rival.write_partition("events", day(1), frame(day(1), 40, writer="rival"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", race_then_commit)
    result = store.write_partition("events", day(1), frame(day(1), 40, writer="ours"))

    assert raced == [0] and result.version == 2
    assert per_day(store) == {day(0): {"first"}, day(1): {"ours"}}
    assert store.offline.read(events, start=day(1), columns=["user_id"]).num_rows == 40
    assert per_day(store, as_of=1) == {day(0): {"first"}, day(1): {"rival"}}


def test_an_append_committed_during_an_overwrite_of_its_day_keeps_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves (a decision): rows appended to a day (a push) while an overwrite of that day is between its snapshot
    and its commit are kept beside the overwrite's rows, as if appended right after it; nothing is lost or doubled."""
    store, pusher = make_store(tmp_path), make_store(tmp_path)
    store.write_partition("events", day(1), frame(day(1), 5, writer="first"))
    real = DeltaTable.create_write_transaction
    pushed: list[bool] = []

    def push_then_commit(self: DeltaTable, *args: object, **kwargs: object) -> None:
        if kwargs.get("mode") == "overwrite" and not pushed:
            pushed.append(True)
            late = frame(day(1), 1, writer="pushed")
            late["user_id"] = 99
            pusher.offline.append(events, late)
        real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", push_then_commit)
    store.write_partition("events", day(1), frame(day(1), 3, writer="ours"))

    rows = store.offline.read(events, columns=["user_id", "writer"]).to_pylist()
    assert sorted((r["writer"], r["user_id"]) for r in rows) == [("ours", 0), ("ours", 1), ("ours", 2), ("pushed", 99)]


def test_files_roll_over_and_chunks_keep_every_row_of_an_unsorted_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: with chunks of 7 rows and files of at most 10, a shuffled 3-day frame is stored as files of
    at most 10 rows, each holding one day, and reads back row for row."""
    monkeypatch.setattr(files, "CHUNK_ROWS", 7)
    monkeypatch.setattr(files, "FILE_ROWS", 10)
    store = make_store(tmp_path)
    rows = pd.concat([frame(day(d), 31, writer=f"w{d}") for d in range(3)]).sample(frac=1, random_state=3)

    store.offline.write_partitions(events, day(0), day(2), rows)

    actions = pa.table(DeltaTable(store.offline.table_uri(events)).get_add_actions(flatten=True)).to_pylist()
    assert sorted(a["num_records"] for a in actions) == [1] * 3 + [10] * 9
    stored = store.read_group("events").sort_values(["event_time", "user_id"]).reset_index(drop=True)
    expected = rows.sort_values(["event_time", "user_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)


stats_user = Entity("user", join_keys={"user_id": "int64"})
stats_group = FeatureGroup(
    "odd_values", entities=[stats_user], created_time="created",
    features=[Feature("score", "float64"), Feature("label", "string"), Feature("flag", "bool"), Feature("born", "date"),
              Feature("small", "int32"), Feature("tags", pa.list_(pa.string()))],
    partitions=DailyPartitions(start="2024-05-01"),
)


def odd_rows() -> pd.DataFrame:
    """Rows with NaN, infinities, nulls, long and non-ASCII strings, sub-millisecond times and a list column."""
    times = pd.to_datetime(["2024-05-01 00:00:00.000700", "2024-05-01 12:00:00.999999", "2024-05-02 23:59:59.999999",
                            "2024-05-02 00:00:00.000001", "2024-05-02 08:00:00.000000"], utc=True)
    return pd.DataFrame({
        "user_id": [1, 2, 3, 4, 5],
        "event_time": times,
        "created": [times[0], None, times[2], times[3], None],
        "score": [np.nan, np.inf, -2.0, 1.5, None],
        "label": ["z" * 40, "é" * 33, None, "a", "\U0010ffff" * 40],
        "flag": [True, None, False, True, True],
        "born": pd.to_datetime(["1960-01-01", "2024-02-29", None, "1970-01-01", "2000-01-01"]).date,
        "small": pd.array([1, None, -5, 7, 2], dtype="Int32"),
        "tags": [["a"], [], None, ["b", "c"], ["d"]],
    })


def test_file_statistics_bound_every_value_so_filters_on_any_column_find_every_row(tmp_path: Path) -> None:
    """Proves: each file's statistics count its rows and nulls exactly and its minima and maxima bound every value
    (NaN, long strings, sub-millisecond times), so a filter through the Delta dataset, which skips files by those
    statistics, returns exactly the rows a scan of all rows does. (Infinite floats have no JSON form and no
    statistics, as with delta-rs's writer; no reader filters on features.)"""
    store = FeatureStore(groups=[stats_group], offline_root=tmp_path, project="stats")
    store.apply()
    store.ingest("odd_values", odd_rows())
    table = DeltaTable(store.offline.table_uri(stats_group))
    for action in pa.table(table.get_add_actions(flatten=False)).to_pylist():
        rows = pq.read_table(Path(table.table_uri.removeprefix("file://")) / action["path"])
        assert action["num_records"] == rows.num_rows
        for name in ("event_time", "created", "score", "label", "flag", "born", "small"):
            values = pc.drop_null(rows.column(name))
            assert action["null_count"][name] == rows.column(name).null_count
            low, high = action["min"][name], action["max"][name]
            if name == "event_time":
                assert low == pc.min(values).as_py().replace(microsecond=pc.min(values).as_py().microsecond // 1000 * 1000)
            for value in values.to_pylist():
                if isinstance(value, float) and np.isnan(value):
                    continue
                # Times keep milliseconds: a maximum is floored, and readers widen it by 1 ms.
                widened = high + pd.Timedelta(milliseconds=1) if name in ("event_time", "created") else high
                assert low is None or low <= value, (name, low, value)
                assert high is None or value <= widened, (name, high, value)
    dataset = table.to_pyarrow_dataset()
    everything = dataset.to_table()
    filters = [
        pds.field("event_time") >= pa.scalar(pd.Timestamp("2024-05-02 23:59:59.9995", tz="UTC"), pa.timestamp("us", "UTC")),
        pds.field("event_time") <= pa.scalar(pd.Timestamp("2024-05-01 00:00:00.0007", tz="UTC"), pa.timestamp("us", "UTC")),
        pds.field("created") > pa.scalar(pd.Timestamp("2024-05-02 23:59:59.9991", tz="UTC"), pa.timestamp("us", "UTC")),
        pds.field("label") == "z" * 40, pds.field("label") > "é" * 32, pds.field("label") == "\U0010ffff" * 40,
        pds.field("score") == 1.5, pds.field("flag") == False, pds.field("born") < pa.scalar(pd.Timestamp("1961-01-01").date()),  # noqa: E712
        pds.field("small") == -5,
    ]
    for condition in filters:
        expected = everything.filter(condition).num_rows
        assert expected >= 1 and dataset.to_table(filter=condition).num_rows == expected, condition


def test_reads_pruned_by_event_time_statistics_skip_other_files_of_the_day_and_return_the_same_rows(tmp_path: Path) -> None:
    """Proves: two appends to one day (a morning and an evening) make two files; a read of the evening opens only
    the evening's file (pruned by its event-time statistics) and returns exactly the rows a full scan filtered
    in memory does, also at sub-millisecond edges."""
    store = make_store(tmp_path)
    morning = frame(day(0), 3_000, writer="morning")  # 00:00 .. 00:50
    evening = frame(day(0), 3_000, writer="evening")
    evening["event_time"] = evening["event_time"] + pd.Timedelta(hours=18, microseconds=700)
    store.ingest("events", morning)
    store.ingest("events", evening)
    version = store.offline.version(events)
    assert version is not None
    snapshot = store.offline.snapshot(events, version)
    assert snapshot is not None
    start = pd.Timestamp(f"{day(0)} 18:00:00.0005", tz="UTC")
    end = pd.Timestamp(f"{day(0)} 18:00:01.0008", tz="UTC")

    assert len(snapshot.files(None, None)) == 2 and len(snapshot.files(start, end)) == 1
    read = store.offline.read(events, start=start, end=end, columns=["user_id", "writer"])
    everything = store.offline.read(events, columns=["event_time", "user_id", "writer"])
    window = (pc.field("event_time") >= pa.scalar(start, pa.timestamp("us", "UTC"))) & (
        pc.field("event_time") < pa.scalar(end, pa.timestamp("us", "UTC")))
    expected = everything.filter(window)
    assert read.num_rows == expected.num_rows == 2
    assert sorted(read.column("user_id").to_pylist()) == sorted(expected.column("user_id").to_pylist()) == [0, 1]
    assert set(read.column("writer").to_pylist()) == {"evening"}
