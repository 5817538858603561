"""The offline store: one Delta table per feature group and version, with time travel.

Tables live at `<root>/<project>/<group>/v<version>`, partitioned by the UTC day
of event time (`_partition`). Writing a partition replaces exactly that
partition in one atomic Delta commit; commits that lose a race are retried.
"""

import hashlib
import numbers
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.schema import Field, Schema
from deltalake.transaction import AddAction, Transaction, create_table_with_add_actions

from feature_platform.definitions.concepts import DailyPartitions, FeatureGroup, check_name
from feature_platform.definitions.contract import UTC_MICROS, conform, utc_timestamp
from feature_platform.errors import ArgumentError, ContractError, DefinitionError, StorageError
from feature_platform.offline import join_index
from feature_platform.offline.files import delete_files, table_filesystem, write_files
from feature_platform.offline.storage import filesystem, plain_local_folder, table_dataset

COMMIT_ATTEMPTS = 8
# An idempotent append looks for its rows among this many latest commits (a retry comes soon after).
IDEMPOTENCY_WINDOW = 64
IDEMPOTENCY_KEY = "content_sha256"
BeforeCommit = Callable[[pa.Table], None]


@dataclass(frozen=True)
class WriteResult:
    """What one write committed: rows, the new Delta version and where."""

    group: str
    rows: int
    version: int | None  # None: nothing committed and no table yet (an empty ingest)
    uri: str
    partition_key: str | None = None


def _content_key(group: FeatureGroup, table: pa.Table) -> str:
    """A digest of the rows of a conformed table without their write time: equal rows, equal key."""
    sink = pa.BufferOutputStream()
    rows = table.drop_columns(["_written_at"]).combine_chunks()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    digest = hashlib.sha256(f"{group.name}:v{group.version}:".encode())
    digest.update(sink.getvalue())
    return digest.hexdigest()


def _plain(exc: Exception) -> str:
    """An error's message without the terminal colour codes deltalake puts in it."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()


def _check_partition_range(group: FeatureGroup, first: date, last: date) -> None:
    partitions = group.partitions
    assert partitions is not None
    if first < partitions.start or (partitions.end is not None and last >= partitions.end):
        end = partitions.end.isoformat() if partitions.end else "open"
        raise ContractError(
            group.name, None, "partition key",
            f"{first.isoformat()}..{last.isoformat()} is outside the group's partitions "
            f"[{partitions.start.isoformat()}, {end})",
        )


class OfflineStore:
    """Delta Lake tables of feature groups under one root (a local path or `s3://bucket/prefix`)."""

    def __init__(self, root: str, *, project: str = "default", storage_options: dict[str, str] | None = None) -> None:
        self.root = str(root).rstrip("/")
        self.project = check_name("project", project)
        self.storage_options = dict(storage_options or {})

    def table_uri(self, group: FeatureGroup) -> str:
        return f"{self.root}/{self.project}/{group.name}/v{group.version}"

    def _table(self, group: FeatureGroup, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self.table_uri(group), version=version, storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None
        except OSError as exc:  # the storage itself refused (missing bucket, permissions, unreachable)
            raise StorageError(f"feature group '{group.name}': cannot open {self.table_uri(group)}: {_plain(exc)}") from None
        except DeltaError as exc:
            if version is not None:
                raise ArgumentError(f"feature group '{group.name}' has no version {version}: {_plain(exc)}") from None
            raise StorageError(f"feature group '{group.name}': cannot open {self.table_uri(group)}: {_plain(exc)}") from None

    def exists(self, group: FeatureGroup) -> bool:
        return self._table(group) is not None

    def version(self, group: FeatureGroup) -> int | None:
        """The table's current Delta version, or None before the first write."""
        table = self._table(group)
        return None if table is None else table.version()

    def write_partition(
        self,
        group: FeatureGroup,
        partition_key: str | None,
        df: Any,
        *,
        commit_metadata: dict[str, str] | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> WriteResult:
        """Replace one daily partition of `group` with `df` (idempotent).

        For a group without partitions, `partition_key=None` replaces the whole table.
        `before_commit` gets the conformed rows and may refuse them by raising (the quality gate).
        """
        if group.partitions is None:
            if partition_key is not None:
                raise ContractError(group.name, None, "partition key", f"the group is not partitioned, got {partition_key!r}")
            table = conform(group, df, written_at=datetime.now(timezone.utc))
            if before_commit is not None:
                before_commit(table)
            return self._commit(group, table, replace=None, partition_key=None, metadata=commit_metadata)
        if partition_key is None:
            raise ContractError(group.name, None, "partition key", "a partitioned group needs a partition key 'YYYY-MM-DD'")
        return self.write_partitions(group, partition_key, partition_key, df, commit_metadata=commit_metadata, before_commit=before_commit)

    def write_partitions(
        self,
        group: FeatureGroup,
        first_key: str,
        last_key: str,
        df: Any,
        *,
        commit_metadata: dict[str, str] | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> WriteResult:
        """Replace the daily partitions `first_key..last_key` (inclusive) with `df` in one atomic commit."""
        if group.partitions is None:
            raise ContractError(group.name, None, "partition key", "the group is not partitioned")
        try:
            start, end = DailyPartitions.window(first_key)[0], DailyPartitions.window(last_key)[1]
        except DefinitionError as exc:
            raise ContractError(group.name, None, "partition key", str(exc)) from None
        if end <= start:
            raise ContractError(group.name, None, "partition key", f"range {first_key}..{last_key} is empty")
        _check_partition_range(group, start.date(), (end - timedelta(days=1)).date())
        table = conform(group, df, window=(start, end), written_at=datetime.now(timezone.utc))
        if before_commit is not None:
            before_commit(table)
        first, last = start.date().isoformat(), (end - timedelta(days=1)).date().isoformat()
        key = first if first == last else f"{first}..{last}"
        return self._commit(group, table, replace=(first, last), partition_key=key, metadata=commit_metadata)

    def append(
        self,
        group: FeatureGroup,
        df: Any,
        *,
        commit_metadata: dict[str, str] | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> WriteResult:
        """Append rows that may span any partitions; later writes win exact time ties.

        An empty frame is checked like any other and then commits nothing.
        """
        table = conform(group, df, written_at=datetime.now(timezone.utc))
        if before_commit is not None:
            before_commit(table)
        return self.append_table(group, table, commit_metadata=commit_metadata)

    def append_table(
        self, group: FeatureGroup, table: pa.Table, *, commit_metadata: dict[str, str] | None = None, idempotent: bool = False
    ) -> WriteResult:
        """Append rows already conformed to the group's schema (`conform`); an empty table commits nothing.

        With `idempotent`, rows equal (but for their write time) to those of a recent idempotent
        append are not appended again, so a retried push stores its rows once.
        """
        if table.num_rows == 0:
            return WriteResult(group.name, 0, self.version(group), self.table_uri(group), None)
        metadata = dict(commit_metadata or {})
        if idempotent:
            key = _content_key(group, table)
            _, entries = self._history(group, limit=IDEMPOTENCY_WINDOW)
            for entry in entries:
                if entry.get(IDEMPOTENCY_KEY) == key:
                    return WriteResult(group.name, table.num_rows, int(entry["version"]), self.table_uri(group), None)
            metadata[IDEMPOTENCY_KEY] = key
        return self._commit(group, table, replace=None, partition_key=None, metadata=metadata, mode="append")

    def _commit(
        self,
        group: FeatureGroup,
        table: pa.Table,
        *,
        replace: tuple[str, str] | None,
        partition_key: str | None,
        metadata: dict[str, str] | None,
        mode: str = "overwrite",
    ) -> WriteResult:
        """Write `table`'s files day by day, then commit them in one Delta transaction.

        An overwrite replaces the days `replace` (first, last), or the whole table for None; it claims
        those days (an application transaction each) so that two overwrites of one day conflict and
        retry, even when neither saw a file there. Files of a write that never committed are deleted.
        """
        uri = self.table_uri(group)
        custom = {
            "feature_group": group.name,
            "group_version": str(group.version),
            "write_id": uuid.uuid4().hex,
            **(metadata or {}),
        }
        if partition_key:
            custom["partition_key"] = partition_key
        fs = table_filesystem(uri, self.storage_options)
        try:
            actions = write_files(fs, table)
        except OSError as exc:
            raise self._storage_error(group, f"writing {uri} failed and nothing was committed", exc) from None
        committed = False
        try:
            self._commit_files(group, table, actions, replace=replace, mode=mode, custom=custom)
            committed = True
        finally:
            if not committed and not self._has_commit(group, custom):
                delete_files(fs, [action.path for action in actions])
        version = self._committed_version(group, custom)
        return WriteResult(group.name, table.num_rows, version, uri, partition_key)

    def _commit_files(
        self, group: FeatureGroup, table: pa.Table, actions: list[AddAction], *,
        replace: tuple[str, str] | None, mode: str, custom: dict[str, str],
    ) -> None:
        uri = self.table_uri(group)
        for attempt in range(COMMIT_ATTEMPTS):
            existing = self._table(group)
            try:
                if existing is None:
                    # Create the table with this data only if nobody else does: a racing creator's blind
                    # commit would otherwise be retried as an append and duplicate rows. With mode "error"
                    # and no commit retries it fails instead, and the next attempt overwrites its days.
                    create_table_with_add_actions(
                        uri, Schema.from_arrow(table.schema), actions, mode="error", partition_by=["_partition"],
                        storage_options=self.storage_options or None,
                        commit_properties=CommitProperties(custom_metadata=custom, max_commit_retries=0),
                    )
                else:
                    _check_columns(group, existing, table)
                    claims = _claims(replace, existing.version() + 1) if mode == "overwrite" else []
                    existing.create_write_transaction(
                        actions, mode=mode, schema=existing.schema(), partition_by=["_partition"],
                        partition_filters=None if replace is None else [("_partition", ">=", replace[0]), ("_partition", "<=", replace[1])],
                        commit_properties=CommitProperties(custom_metadata=custom, app_transactions=claims),
                    )
                return
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
            except (DeltaError, OSError) as exc:
                racing_create = existing is None and "already exists" in str(exc).lower()
                if not racing_create or attempt == COMMIT_ATTEMPTS - 1:
                    raise self._storage_error(group, f"writing {uri} failed and nothing was committed", exc) from None
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))

    def _has_commit(self, group: FeatureGroup, custom: dict[str, str]) -> bool:
        """Whether a commit with this write id landed (a failure may be reported for a commit that did);
        True when that cannot be known, so its files are kept."""
        try:
            _, entries = self._history(group, limit=64)
        except StorageError:
            return True
        return any(entry.get("write_id") == custom["write_id"] for entry in entries)

    def _storage_error(self, group: FeatureGroup, what: str, cause: Exception) -> StorageError:
        try:
            table = self._table(group)
            state = "no table" if table is None else f"version {table.version()}"
        except StorageError:
            state = "its last version, which cannot be read right now"
        return StorageError(f"feature group '{group.name}': {what} (the table is still at {state}): {_plain(cause)}")

    def _committed_version(self, group: FeatureGroup, custom: dict[str, str]) -> int:
        """The version our commit got, found by its write id (other writers may have committed since)."""
        table, entries = self._history(group, limit=64)
        assert table is not None
        for entry in entries:
            if entry.get("write_id") == custom["write_id"]:
                return int(entry["version"])
        return table.version()

    def _history(self, group: FeatureGroup, limit: int | None = None) -> tuple[DeltaTable | None, list[dict[str, Any]]]:
        """The table and its commit history, numbered consistently.

        deltalake numbers history entries down from the loaded version but lists the
        newest commits in storage; a commit landing in between shifts every number by
        one (seen on S3 under concurrent writers). Re-read until no commit landed.
        """
        for _ in range(COMMIT_ATTEMPTS):
            table = self._table(group)
            if table is None:
                return None, []
            entries = table.history(limit)
            latest = self._table(group)
            if latest is not None and latest.version() == table.version():
                return table, entries
        return table, entries

    def read(
        self,
        group: FeatureGroup,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        as_of: int | datetime | str | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows with `start <= event_time < end`, read from the partitions that can hold them.

        `as_of` is a Delta version (int) or a time (the table as it was then).
        Returns an Arrow table of `columns` (default: the group's columns and `_written_at`).
        """
        names = columns or [*group.input_columns, "_written_at"]
        schema = pa.schema([group.schema.field(n) for n in names])
        return self.scanner(group, start=start, end=end, as_of=as_of, columns=names).to_table().cast(schema)

    def scanner(
        self,
        group: FeatureGroup,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        as_of: int | datetime | str | None = None,
        columns: list[str] | None = None,
        **options: Any,
    ) -> pds.Scanner:
        """A scanner over the rows `read` returns, to stream them in batches (in the same order).

        `options` go to `pyarrow.dataset.Dataset.scanner` (e.g. `batch_readahead` to bound memory).
        """
        names = columns or [*group.input_columns, "_written_at"]
        table = self._table(group) if as_of is None else self._table_at(group, self.resolve_version(group, as_of))
        if table is None:
            return pds.dataset(pa.schema([group.schema.field(n) for n in names]).empty_table()).scanner()
        return table_dataset(table, group.event_time).scanner(columns=names, filter=_window(group, start, end), **options)

    def _table_at(self, group: FeatureGroup, version: int | None) -> DeltaTable | None:
        if version is None:
            return None
        table = self._table(group, version)
        if table is None:
            raise StorageError(f"feature group '{group.name}': Delta version {version} vanished while it was read")
        return table

    def resolve_version(self, group: FeatureGroup, as_of: int | datetime | str | None = None) -> int | None:
        """The Delta version a read as of `as_of` sees, for every reader: a version number as given, now for None,
        and for a time the last commit at or before it.

        None means no table at that time (never written, or a time before its first commit): reads
        are then empty, exactly what a read at that time returned.
        """
        if isinstance(as_of, numbers.Integral) and not isinstance(as_of, (bool, np.bool_)):
            latest = self.version(group)
            if latest is None:
                raise ArgumentError(f"feature group '{group.name}' has no table yet, so no version {as_of}")
            if not 0 <= int(as_of) <= latest:
                raise ArgumentError(f"feature group '{group.name}' has no version {as_of}; versions are 0..{latest}")
            return int(as_of)
        if as_of is None:
            return self.version(group)
        when_ms = utc_timestamp(as_of).timestamp() * 1000  # the commit log keeps milliseconds
        table, entries = self._history(group)
        if table is None:
            return None
        commits = sorted((int(e["version"]), int(e["timestamp"])) for e in entries if "timestamp" in e)
        resolved, previous = None, None
        for version, millis in commits:
            # Commit times never go back (writers' clocks may disagree); equal ones all count as that time.
            effective = millis if previous is None else max(millis, previous)
            if effective > when_ms:
                break
            resolved, previous = version, effective
        if resolved is None and commits and commits[0][0] > 0:
            raise ArgumentError(
                f"feature group '{group.name}': the commit log before version {commits[0][0]} was cleaned up, "
                f"so the table as of {utc_timestamp(as_of).isoformat()} is unknown; read as of a later time or a version"
            )
        return resolved

    def snapshot(self, group: FeatureGroup, version: int) -> "Snapshot | None":
        """The table at one Delta version, opened once for several scans; None without a table."""
        table = self._table(group, version)
        if table is None:
            return None
        folder = plain_local_folder(table)
        return Snapshot(group, table_dataset(table, group.event_time), _single_write(table), version,
                        None if folder is None else f"{folder}/{join_index.FOLDER}")

    def build_join_index(self, group: FeatureGroup) -> int | None:
        """Sort the current version's rows for point-in-time joins and save that beside the table (see
        `join_index`); returns the rows indexed, None without a table or for one it cannot index (remote)."""
        version = self.version(group)
        snapshot = None if version is None else self.snapshot(group, version)
        index = None if snapshot is None else snapshot.join_index(build=True)
        return None if index is None else len(index.rows)

    def history(self, group: FeatureGroup) -> list[dict[str, Any]]:
        """Delta versions of the group's table, newest first: version, time, operation, metadata."""
        table, history = self._history(group)
        if table is None:
            return []
        entries = []
        for entry in history:
            entries.append(
                {
                    "version": entry.get("version"),
                    "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, timezone.utc) if "timestamp" in entry else None,
                    "operation": entry.get("operation"),
                    "parameters": entry.get("operationParameters", {}),
                    **{k: v for k, v in entry.items() if k in ("partition_key", "dagster_run_id", "feature_group")},
                }
            )
        return entries

    def stored_columns(self, group: FeatureGroup) -> dict[str, str] | None:
        """Column name -> Arrow type text of the group's table; None without a table."""
        table = self._table(group)
        if table is None:
            return None
        return {f.name: str(f.type) for f in table.to_pyarrow_dataset().schema}

    def add_features(self, group: FeatureGroup, names: list[str]) -> list[str]:
        """Add these features of `group` to its table as nullable columns (Delta schema evolution); returns those added.

        Columns already there are left alone, so an interrupted apply can run again; a commit
        that loses a race with another schema change is retried on the new table.
        """
        for attempt in range(COMMIT_ATTEMPTS):
            table = self._table(group)
            if table is None:
                return []
            present = {f.name: str(f.type) for f in table.to_pyarrow_dataset().schema}
            clashing = [f"{n} ({present[n]})" for n in names if n in present and present[n] != str(group.feature(n).arrow_type)]
            if clashing:
                raise StorageError(
                    f"feature group '{group.name}': the table {self.table_uri(group)} already has column(s) {clashing} of another "
                    "type (left by an apply that was interrupted or lost a race); name the new feature(s) differently or bump the version"
                )
            missing = [n for n in names if n not in present]
            if not missing:
                return []
            fields = Schema.from_arrow(pa.schema([pa.field(n, group.feature(n).arrow_type) for n in missing])).fields
            try:
                table.alter.add_columns([Field(f.name, f.type, nullable=True) for f in fields])
                return missing
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
            except (DeltaError, OSError) as exc:
                raise self._storage_error(group, f"adding feature(s) {missing} to {self.table_uri(group)} failed", exc) from None
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
        return []

    def delete_table(self, group: FeatureGroup) -> None:
        """Remove the group version's table and its files (retiring with the offline data)."""
        fs, path = filesystem(self.table_uri(group), self.storage_options)
        try:
            fs.delete_dir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"feature group '{group.name}': deleting {self.table_uri(group)} failed: {exc}") from None

    def last_commit_value(self, group: FeatureGroup, key: str) -> str | None:
        """Custom commit metadata `key` of the newest commit that has it (e.g. a stream consumer's watermark)."""
        for limit in (16, 1024, None):
            _, entries = self._history(group, limit=limit)
            for entry in entries:
                if entry.get(key) is not None:
                    return str(entry[key])
            if limit is None or len(entries) < limit:
                return None
        return None

    def partitions(self, group: FeatureGroup) -> list[date]:
        """Days that hold rows, ascending."""
        table = self._table(group)
        if table is None:
            return []
        days = table_dataset(table, group.event_time).to_table(columns=["_partition"]).column("_partition").unique()
        return sorted(d for d in days.to_pylist() if d is not None)


@dataclass(frozen=True)
class Snapshot:
    """One Delta version of a table: its files as a dataset, and whether each partition holds one write.

    `single_write` is True when, per file statistics, every partition's rows come
    from one write; then (keys, event time) is unique in the table (the contract
    refuses duplicates inside a write), so retrieval can skip write-order tie-breaks.
    """

    group: FeatureGroup
    dataset: pds.Dataset
    single_write: bool
    version: int
    index_folder: str | None  # where its join index lives (local tables read as plain Parquet only)

    @property
    def tie_columns(self) -> list[str]:
        """What orders rows with equal keys and event time: the created time (if the group has one), then the write time."""
        return [*([self.group.created_time] if self.group.created_time else []), "_written_at"]

    def scanner(self, columns: list[str], start: datetime | None, end: datetime | None, **options: Any) -> pds.Scanner:
        """The rows with `start <= event_time < end`, as `OfflineStore.scanner` (options go to pyarrow).

        Two scanners with the same window yield the same rows in the same order,
        so a row's position identifies it across them.
        """
        return self.dataset.scanner(columns=columns, filter=_window(self.group, start, end), **options)

    def subset(self, paths: list[str]) -> pds.Dataset:
        """The dataset of just these files, in this order (paths as the fragments give them)."""
        fragments = {f.path: f for f in self.dataset.get_fragments()}
        return pds.FileSystemDataset([fragments[p] for p in paths], self.dataset.schema, self.dataset.format, self.dataset.filesystem)

    def join_index(self, *, build: bool = False) -> "join_index.JoinIndex | None":
        """The version's rows sorted for point-in-time lookups, if saved (or `build`: sorted and saved now);
        None where there is none or there can be none."""
        if self.index_folder is None:
            return None
        group = self.group
        arguments = (self.dataset, self.index_folder, self.version, group.join_keys, group.event_time, self.tie_columns)
        return join_index.build(*arguments) if build else join_index.load(*arguments)

    def files(self, start: datetime | None, end: datetime | None) -> list[str]:
        """Paths (relative to the table) of the files whose partitions can hold rows of `[start, end)`,
        for engines that read the snapshot's files themselves (Spark)."""
        return [fragment.path for fragment in self.dataset.get_fragments(filter=_window(self.group, start, end))]


def _check_columns(group: FeatureGroup, existing: DeltaTable, table: pa.Table) -> None:
    """Every column written is stored with its type; stored columns not written (features an interrupted or
    concurrent apply added) read as null in these files."""
    stored = {f.name: f.type for f in existing.schema().fields}
    wrong = [f"{f.name} ({f.type})" for f in Schema.from_arrow(table.schema).fields if stored.get(f.name) != f.type]
    if wrong:
        raise StorageError(
            f"feature group '{group.name}': the table {existing.table_uri} has no column(s) {wrong} of that type; "
            "apply the group's definitions (or bump its version) before writing"
        )


def _claims(replace: tuple[str, str] | None, version: int) -> list[Transaction]:
    """The application transactions an overwrite claims: one per day of `replace`, or the whole table."""
    if replace is None:
        return [Transaction("feature_platform:table", version)]
    first, last = date.fromisoformat(replace[0]), date.fromisoformat(replace[1])
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [Transaction(f"feature_platform:_partition={day.isoformat()}", version) for day in days]


def _window(group: FeatureGroup, start: datetime | str | None, end: datetime | str | None) -> pds.Expression | None:
    """The filter `start <= event_time < end`, with the days it implies so whole partitions are skipped."""
    event_time = pds.field(group.event_time)
    condition = None
    # Stored times are whole microseconds: `t >= start` iff `t >= ceil(start)`, and `t < end` iff `t < ceil(end)`.
    if start is not None:
        lower = utc_timestamp(start).ceil("us")
        condition = (pds.field("_partition") >= pa.scalar(lower.date(), pa.date32())) & (event_time >= pa.scalar(lower, UTC_MICROS))
    if end is not None:
        upper = utc_timestamp(end).ceil("us")
        bound = (pds.field("_partition") <= pa.scalar(upper.date(), pa.date32())) & (event_time < pa.scalar(upper, UTC_MICROS))
        condition = bound if condition is None else condition & bound
    return condition


def _single_write(table: DeltaTable) -> bool:
    """Whether every partition's files have one `_written_at` (missing statistics: False)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    names = ("partition._partition", "min._written_at", "max._written_at")
    if not all(n in actions.column_names for n in names):
        return False
    written: dict[object, object] = {}
    for partition, low, high in zip(*(actions.column(n).to_pylist() for n in names)):
        if low is None or low != high or written.setdefault(partition, low) != low:
            return False
    return True
