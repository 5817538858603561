"""Parquet files of a conformed table under its Delta table, written partition by partition in bounded chunks.

`write_deltalake` keeps every partition's file open until its commit (3.7x the frame's
size at 10M rows over 90 days). Here each day's rows are taken, written and dropped in
turn, and the caller commits the files' add actions, with the statistics readers prune
by, in one Delta transaction: readers see all the files or none.
"""

import json
import os
import math
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction

PARTITION = "_partition"
# Rows taken and encoded at a time: what a write adds to memory is about this many rows, not the table.
CHUNK_ROWS = 1 << 20
WRITERS = min(4, os.cpu_count() or 1)
# Rows per file at most, so that no file (and no upload buffer) grows with the frame.
FILE_ROWS = 1 << 22
# Strings longer than this get a prefix as their minimum and no maximum (Delta keeps stats short).
STRING_STATS_CHARS = 32
EPOCH = date(1970, 1, 1)


def table_filesystem(uri: str, storage_options: dict[str, str] | None) -> pafs.FileSystem:
    """The table's folder as a pyarrow filesystem: a local folder, else delta-rs's own storage (same credentials as commits)."""
    if "://" not in uri or uri.startswith("file://"):
        local = pafs.LocalFileSystem()
        path = str(Path(uri.removeprefix("file://")).resolve())
        local.create_dir(path, recursive=True)
        return pafs.SubTreeFileSystem(path, local)
    return pafs.PyFileSystem(DeltaStorageHandler(uri, storage_options or None))


def write_files(fs: pafs.FileSystem, table: pa.Table) -> list[AddAction]:
    """Write `table`'s rows (with a `_partition` date column) as Parquet files, one day at a time; their add actions.

    On any failure the files already written are deleted (they were never committed) and the error re-raised.
    """
    data = table.drop_columns([PARTITION])
    opened: list[str] = []

    def write(partition: tuple[date, Iterator[pa.Table]]) -> list[AddAction]:
        return list(_write_partition(fs, partition[0], data.schema, partition[1], opened))

    # Encoding releases the GIL: WRITERS days at a time, each holding one chunk, keep the cores busy.
    pool = ThreadPoolExecutor(WRITERS)
    try:
        return [action for actions in pool.map(write, _partitions(table, data)) for action in actions]
    except BaseException:
        pool.shutdown(cancel_futures=True)
        delete_files(fs, opened)
        raise
    finally:
        pool.shutdown()


def delete_files(fs: pafs.FileSystem, paths: list[str]) -> None:
    """Remove files that were never committed (best effort: a leftover is only an orphan `vacuum` removes)."""
    for path in paths:
        try:
            fs.delete_file(path)
        except OSError:
            pass


def _partitions(table: pa.Table, data: pa.Table) -> Iterator[tuple[date, Iterator[pa.Table]]]:
    """Each day of `table` with its rows of `data`, in chunks of at most CHUNK_ROWS, in frame order within a day."""
    days = table.column(PARTITION).cast(pa.int32()).to_numpy()
    if not len(days):
        return
    if (days[1:] >= days[:-1]).all():  # already in day order (one day, or a sorted frame): zero-copy slices
        order = None
        ordered = days
    else:
        order = pc.sort_indices(table.column(PARTITION)).to_numpy()  # stable: frame order within each day
        ordered = days[order]
    bounds = [0, *(np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist(), len(days)]
    for start, end in zip(bounds[:-1], bounds[1:]):
        yield EPOCH + timedelta(days=int(ordered[start])), _chunks(data, order, start, end)


def _chunks(data: pa.Table, order: np.ndarray | None, start: int, end: int) -> Iterator[pa.Table]:
    for first in range(start, end, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS, end)
        yield data.slice(first, last - first) if order is None else data.take(order[first:last])


def _write_partition(
    fs: pafs.FileSystem, day: date, schema: pa.Schema, chunks: Iterator[pa.Table], opened: list[str]
) -> Iterator[AddAction]:
    """The files of one day, each of at most FILE_ROWS rows; every file's path goes to `opened` before it is written."""
    writer: _FileWriter | None = None
    try:
        for chunk in chunks:
            while chunk.num_rows:
                if writer is None:
                    path = _file_path(day)
                    opened.append(path)
                    writer = _FileWriter(fs, path, day, schema)
                room = FILE_ROWS - writer.rows
                writer.write(chunk.slice(0, room))
                chunk = chunk.slice(room)
                if writer.rows == FILE_ROWS:
                    yield writer.close()
                    writer = None
        if writer is not None:
            yield writer.close()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise


def _file_path(day: date) -> str:
    return f"{PARTITION}={day.isoformat()}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"


class _FileWriter:
    """One Parquet file being written, and the statistics of the rows written to it."""

    def __init__(self, fs: pafs.FileSystem, path: str, day: date, schema: pa.Schema) -> None:
        self.day, self.path = day.isoformat(), path
        fs.create_dir(f"{PARTITION}={self.day}", recursive=True)
        self.stream = fs.open_output_stream(self.path)
        self.writer = pq.ParquetWriter(self.stream, schema, compression="snappy", use_dictionary=_dictionary_columns(schema))
        self.rows = 0
        self.stats = {field.name: _ColumnStats() for field in schema if _has_min_max(field.type)}
        self.nulls = {field.name: 0 for field in schema if not pa.types.is_nested(field.type)}

    def write(self, chunk: pa.Table) -> None:
        self.writer.write_table(chunk, row_group_size=CHUNK_ROWS)
        self.rows += chunk.num_rows
        for name in self.nulls:
            self.nulls[name] += chunk.column(name).null_count
        for name, stats in self.stats.items():
            stats.update(chunk.column(name))

    def discard(self) -> None:
        """Give up on the file after a failure (the caller deletes it)."""
        for close in (self.writer.close, self.stream.close):
            try:
                close()
            except (OSError, pa.ArrowException):
                pass

    def close(self) -> AddAction:
        self.writer.close()
        size = self.stream.tell()
        self.stream.close()
        minimum = {n: v for n, s in self.stats.items() if (v := _json_value(s.low, low=True)) is not None}
        maximum = {n: v for n, s in self.stats.items() if (v := _json_value(s.high, low=False)) is not None}
        stats = {"numRecords": self.rows, "minValues": minimum, "maxValues": maximum, "nullCount": self.nulls}
        return AddAction(
            self.path, size, {PARTITION: self.day}, int(time.time() * 1000), True, json.dumps(stats, separators=(",", ":"), ensure_ascii=False)
        )


class _ColumnStats:
    """Running minimum and maximum of a column over the chunks of one file (nulls and NaN skipped)."""

    def __init__(self) -> None:
        self.low: Any = None
        self.high: Any = None

    def update(self, values: pa.ChunkedArray) -> None:
        result = pc.min_max(values)
        low, high = result["min"].as_py(), result["max"].as_py()
        if low is None or (isinstance(low, float) and math.isnan(low)):
            return
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: not floats or event times, which rarely repeat (trying costs 20% of the encoding)."""
    return [f.name for f in schema if f.name == "_written_at" or not (pa.types.is_floating(f.type) or pa.types.is_timestamp(f.type))]


def _has_min_max(arrow: pa.DataType) -> bool:
    return any(check(arrow) for check in (
        pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_string,
        pa.types.is_date32, pa.types.is_timestamp,
    ))


def _json_value(value: Any, *, low: bool) -> Any:
    """A statistic as the Delta log writes it, or None to leave it out; never narrower than the true bound.

    Times keep milliseconds (floored; delta-rs widens a maximum by 1 ms when it reads one) and a long
    string is cut to a short bound. Infinite floats have no JSON form: left out, as delta-rs does (its
    reader then skips the file for filters on that column; no reader here filters on features).
    """
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= STRING_STATS_CHARS else value[:STRING_STATS_CHARS] if low else _upper_bound(value)
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _upper_bound(value: str) -> str:
    """A string of at most STRING_STATS_CHARS characters greater than `value` (same prefix, one character up).

    A missing maximum would not do: delta-rs reads it as a null bound and skips the file for filters on the column.
    """
    for i in range(STRING_STATS_CHARS - 1, -1, -1):
        code = ord(value[i]) + 1
        code = 0xE000 if 0xD800 <= code <= 0xDFFF else code  # surrogates are not characters
        if code <= 0x10FFFF:
            return value[:i] + chr(code)
    return value
