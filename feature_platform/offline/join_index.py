"""A table version's rows sorted by (join keys, event time, created time, write time), kept beside the table.

With it a point-in-time lookup is a binary search per entity row in its key's run
of rows instead of a sort of every stored row: the last row of the key with
`event_time <= t` wins, ties already ordered by created time (a missing one
first) and then by write time. The file is named by a fingerprint of the version's
files, so it can only ever describe the data it was built from; a damaged one is
dropped. Building it costs a sort of every stored row, so joins never build it:
table maintenance does, or `OfflineStore.build_join_index` after a write, and the
joins of that version use it. Only local tables read as plain Parquet files have
one (see `Snapshot`).
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.ipc as ipc

from feature_platform.offline import duckdb_sorting

FOLDER = "_fp_index"  # a leading underscore: Delta readers and vacuum leave the folder alone
KEPT = 2  # index files kept per table: the newest versions are the ones read again
FORMAT = "2"
ROWS, KEYS = ".rows.arrow", ".keys.arrow"  # an index is two files: its sorted rows, and each key's first row


@dataclass(frozen=True)
class JoinIndex:
    """Stored rows in (keys, event, created, written) order: `rows[i]` is the position of the i-th in `files` order.

    `codes` lists each distinct key once with `__code`, its run `starts[c]:starts[c + 1]` of the sorted rows.
    """

    codes: pa.Table
    starts: np.ndarray
    events: np.ndarray
    rows: np.ndarray
    files: list[str]
    file_rows: list[int]

    def lookup(self, keys: pa.Table, upper: np.ndarray, lower: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(entity rows, stored row positions) of the winners: the last row of the key with `lower <= event <= upper`."""
        entity_rows, code = self._codes(keys.cast(self.codes.select(keys.column_names).schema))
        first, lo, hi = self.starts[code], self.starts[code].copy(), self.starts[code + 1]
        t = upper[entity_rows]
        # Binary search in each key's run for the first event after t; the row before it is the candidate.
        while (active := lo < hi).any():
            mid = (lo + hi) >> 1
            before = self.events[np.where(active, mid, 0)] <= t
            lo = np.where(active & before, mid + 1, lo)
            hi = np.where(active & ~before, mid, hi)
        last = lo - 1
        won = last >= first
        if lower is not None:
            won &= self.events[np.where(won, last, 0)] >= lower[entity_rows]
        return entity_rows[won], self.rows[last[won]]

    def _codes(self, keys: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(entity rows whose keys are stored, their key's code)."""
        if keys.num_columns == 1 and pa.types.is_integer(keys.schema.types[0]):
            # One integer key: the distinct keys are sorted, so a binary search finds each. Searching in key
            # order keeps memory access local, here and in the event search after it (2-3x faster).
            stored = self.codes.column(0).to_numpy()
            wanted = keys.column(0).to_numpy()
            order = np.argsort(wanted)
            code = np.minimum(np.searchsorted(stored, wanted[order]), max(len(stored) - 1, 0))
            found = stored[code] == wanted[order] if len(stored) else np.zeros(len(order), dtype=bool)
            return order[found], code[found]
        entity = keys.append_column("__row", pa.array(np.arange(keys.num_rows, dtype=np.int64)))
        found = entity.join(self.codes, keys=keys.column_names, join_type="inner")
        return found.column("__row").to_numpy(), found.column("__code").to_numpy()

    def files_holding(self, positions: np.ndarray) -> tuple[list[str], np.ndarray, int]:
        """The files that hold rows at `positions` (in index order), those rows' positions among just these
        files, and how many rows the files hold: what a scan of only these files needs."""
        offsets = np.concatenate([[0], np.cumsum(self.file_rows, dtype=np.int64)])
        file_numbers = np.searchsorted(offsets, positions, side="right") - 1
        holding = np.unique(file_numbers)
        kept_rows = np.asarray(self.file_rows, dtype=np.int64)[holding]
        kept_offsets = np.zeros(len(self.files), dtype=np.int64)
        kept_offsets[holding] = np.concatenate([[0], np.cumsum(kept_rows)[:-1]])
        moved = positions - offsets[file_numbers] + kept_offsets[file_numbers]
        return [self.files[n] for n in holding], moved, int(kept_rows.sum())


def load(dataset: pds.Dataset, folder: str, version: int, keys: Sequence[str], event_time: str,
         ties: Sequence[str]) -> JoinIndex | None:
    """The index of this dataset (one Delta version's files) from `folder`; None if it has none (a damaged one is removed)."""
    path = _path(dataset, folder, version, keys, event_time, ties)
    if not path.exists():
        return None
    try:
        return _read(path, keys)
    except (pa.ArrowInvalid, OSError, KeyError, ValueError):
        path.unlink(missing_ok=True)  # damaged or cut short: joins go without it until it is built again
        _keys_path(path).unlink(missing_ok=True)
        return None


def build(dataset: pds.Dataset, folder: str, version: int, keys: Sequence[str], event_time: str,
          ties: Sequence[str]) -> JoinIndex:
    """Sort every stored row of this dataset, save the index in `folder` and return it."""
    path = _path(dataset, folder, version, keys, event_time, ties)
    index_table, rows_per_file = _build(dataset, keys, event_time, ties)
    _write(path, index_table, keys, list(rows_per_file), list(rows_per_file.values()))
    return _read(path, keys)


def _path(dataset: pds.Dataset, folder: str, version: int, keys: Sequence[str], event_time: str, ties: Sequence[str]) -> Path:
    files = sorted(f.path for f in dataset.get_fragments())
    text = json.dumps([FORMAT, version, files, list(keys), event_time, list(ties)])
    return Path(folder) / f"v{version}-{hashlib.sha256(text.encode()).hexdigest()[:24]}{ROWS}"


def _build(dataset: pds.Dataset, keys: Sequence[str], event_time: str, ties: Sequence[str]) -> tuple[pa.Table, dict[str, int]]:
    """Every stored row's keys and event time in index order, with its position (`__rid`); the rows of each file,
    in the order positions count them."""
    columns = [*keys, event_time, *ties]
    rows = {f.path: 0 for f in dataset.get_fragments()}
    batches = []
    for tagged in dataset.scanner(columns=columns).scan_batches():
        rows[tagged.fragment.path] += tagged.record_batch.num_rows
        batches.append(tagged.record_batch)
    narrow = pa.Table.from_batches(batches, schema=pa.schema([dataset.schema.field(c) for c in columns]))
    return _order(narrow, keys, event_time, ties), rows


def _order(narrow: pa.Table, keys: Sequence[str], event_time: str, ties: Sequence[str]) -> pa.Table:
    """The keys, `__event` (microseconds) and `__rid` (position) of every row, ordered by keys, event, the tie
    columns (a missing value first), then stored order.

    DuckDB sorts on (keys, event) in parallel; the runs of rows tied on those are then sorted in numpy.
    """
    q = duckdb_sorting.quote
    table = narrow.select([*keys, event_time]).append_column("__rid", pa.array(np.arange(narrow.num_rows, dtype=np.int64)))
    connection = duckdb_sorting.connect()
    try:
        connection.register("narrow", table)
        sorted_by = ", ".join(q(c) for c in [*keys, event_time])
        sql = f"SELECT {', '.join(q(k) for k in keys)}, epoch_us({q(event_time)}) AS __event, __rid FROM narrow ORDER BY {sorted_by}"
        ordered = connection.sql(sql).to_arrow_table()
    finally:
        connection.close()
    ordered = ordered.cast(pa.schema([*(narrow.schema.field(k) for k in keys), pa.field("__event", pa.int64()),
                                      pa.field("__rid", pa.int64())])).combine_chunks()
    count = ordered.num_rows
    same = _equal_to_next(ordered.select([*keys, "__event"]))
    if not same.any():
        return ordered
    member = np.zeros(count, dtype=bool)
    member[:-1] |= same
    member[1:] |= same
    members = np.flatnonzero(member)
    run = np.cumsum(~np.concatenate([[False], same])[members])  # a member starts a run unless tied to the one before
    order = ordered.column("__rid").to_numpy().copy()
    rows = order[members]
    tie_values = [_micros(narrow.column(c).take(pa.array(rows))) for c in ties]
    order[members] = rows[np.lexsort((rows, *reversed(tie_values), run))]
    # A run shares its keys and event, so only the positions change.
    return ordered.set_column(ordered.schema.get_field_index("__rid"), "__rid", pa.array(order))


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """Microseconds since the epoch; a missing time sorts first."""
    return column.cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()


def _keys_path(rows_path: Path) -> Path:
    return rows_path.with_name(rows_path.name.removesuffix(ROWS) + KEYS)


def _write(path: Path, table: pa.Table, keys: Sequence[str], files: list[str], file_rows: list[int]) -> None:
    """Write the keys file, then the rows file (each a temporary file renamed, so a reader sees whole files or
    none), then drop all but the newest `KEPT` indexes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    starts = _starts(table.select(list(keys)))
    first_rows = table.select(list(keys)).take(pa.array(starts)).append_column("__start", pa.array(starts))
    metadata = {b"files": json.dumps(files).encode(), b"file_rows": json.dumps(file_rows).encode()}
    rows = table.select(["__event", "__rid"]).replace_schema_metadata(metadata)
    for target, content in ((_keys_path(path), first_rows), (path, rows)):
        content = content.combine_chunks()
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as sink, ipc.new_file(sink, content.schema) as writer:
                writer.write_table(content, max_chunksize=max(content.num_rows, 1))
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
    older = sorted(path.parent.glob(f"*{ROWS}"), key=lambda p: p.stat().st_mtime, reverse=True)[KEPT:]
    for stale in older:
        stale.unlink(missing_ok=True)
        _keys_path(stale).unlink(missing_ok=True)


def _starts(keys: pa.Table) -> np.ndarray:
    """The first row of each run of equal keys in a table sorted by them."""
    if keys.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(~_equal_to_next(keys)) + 1]).astype(np.int64)


def _equal_to_next(table: pa.Table) -> np.ndarray:
    """For each row but the last: whether the next row has the same values in every column."""
    count = table.num_rows
    same = np.ones(max(count - 1, 0), dtype=bool)
    for column in table.columns:
        if pa.types.is_integer(column.type):
            values = column.combine_chunks().to_numpy()
            same &= values[1:] == values[:-1]
        else:
            same &= pc.equal(column.slice(1), column.slice(0, count - 1)).to_numpy(zero_copy_only=False)
    return same


def _read(path: Path, keys: Sequence[str]) -> JoinIndex:
    """The index in `path` and its keys file, memory-mapped; ValueError when the two do not fit together."""
    with pa.memory_map(str(path)) as source:
        table = ipc.open_file(source).read_all()
    with pa.memory_map(str(_keys_path(path))) as source:
        first_rows = ipc.open_file(source).read_all()
    metadata = table.schema.metadata
    files, file_rows = json.loads(metadata[b"files"]), json.loads(metadata[b"file_rows"])
    starts = np.append(first_rows.column("__start").combine_chunks().to_numpy(), table.num_rows).astype(np.int64)
    if sum(file_rows) != table.num_rows or (len(starts) > 1 and (starts[0] != 0 or not (np.diff(starts) > 0).all())):
        raise ValueError(f"index {path} does not fit its keys file or the files it names")
    codes = first_rows.select(list(keys)).append_column("__code", pa.array(np.arange(first_rows.num_rows, dtype=np.int64)))
    return JoinIndex(
        codes=codes,
        starts=starts,
        events=table.column("__event").combine_chunks().to_numpy(),
        rows=table.column("__rid").combine_chunks().to_numpy(),
        files=files,
        file_rows=file_rows,
    )
