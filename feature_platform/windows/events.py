"""Stream entries to typed events, and the reason each rejected entry goes to the dead-letter stream.

An entry is `(entry id, fields)`, the fields a flat `[name, value, ...]` list as
Redis sends them (or a mapping), with bytes or text values: join keys,
`event_time` (epoch milliseconds or ISO 8601, naive = UTC) and the group's
fields. Columns are parsed with Arrow casts; a column that does not cast
whole is parsed value by value with the same cast, so whether an entry is
accepted never depends on the other entries of its batch. Time bounds are
taken against the entry id's time (when the stream received the event), not
the clock of whoever reads it: the online and offline consumers, a replay and
a backfill all accept and reject the same entries.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.definitions.aggregations import EVENT_ID, StreamFeatureGroup
from feature_platform.definitions.contract import MAX_KEY_BYTES

Entry = tuple[Any, dict[Any, Any]]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Epoch milliseconds whose microseconds still fit a 64-bit integer.
MAX_MILLIS = (2**63 - 1) // 1000
UTC_MICROS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class DeadLetter:
    """A rejected entry: its id, why, and its fields as received."""

    entry_id: str
    reason: str
    fields: dict[str, str]


@dataclass(frozen=True)
class ParsedEvents:
    """The accepted events as a table (keys, event time, event id, fields) and the rejected entries."""

    table: pa.Table
    dead: list[DeadLetter]


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _cast(values: pa.Array, dtype: pa.DataType) -> pa.Array | None:
    try:
        return pc.cast(pc.cast(values, pa.string()), dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _iso_micros(value: Any) -> int | None:
    try:
        moment = datetime.fromisoformat(_text(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _column(raw: list[Any], dtype: pa.DataType | None) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Typed values of one column (`dtype` None: event time as int64 µs), which rows lack it and which failed to parse."""
    target = pa.int64() if dtype is None else dtype
    binary = pa.array(raw, pa.binary())
    missing = binary.is_null().to_numpy(zero_copy_only=False)
    whole = _cast(binary, target)
    if whole is not None and whole.null_count == binary.null_count:
        typed, failed = whole, np.zeros(len(raw), dtype=bool)
    else:
        parsed: list[Any] = []
        for value in raw:
            one = None if value is None else _cast(pa.array([value], pa.binary()), target)
            parsed.append(None if one is None or one.null_count else one[0].as_py())
        typed = pa.array(parsed, target)
        failed = typed.is_null().to_numpy(zero_copy_only=False) & ~missing
    if dtype is not None:
        return typed, missing, failed
    # Event time: whole numbers are epoch milliseconds; anything else must be an ISO 8601 time.
    millis = typed.to_numpy(zero_copy_only=False)
    micros = np.zeros(len(raw), dtype=np.int64)
    ok = ~typed.is_null().to_numpy(zero_copy_only=False)
    in_range = ok & (np.abs(np.where(ok, millis, 0).astype(np.float64)) <= MAX_MILLIS)
    micros[in_range] = np.asarray(millis[in_range], dtype=np.int64) * 1000
    failed = ok & ~in_range
    for row in np.flatnonzero(~ok & ~missing):
        value = _iso_micros(raw[row])
        if value is None:
            failed[row] = True
        else:
            micros[row] = value
    return pa.array(micros, pa.int64()), missing, failed


def _describe(dtype: pa.DataType | None) -> str:
    if dtype is None:
        return "epoch milliseconds or an ISO 8601 time"
    if pa.types.is_integer(dtype):
        return f"an integer ({dtype})"
    return "a number" if pa.types.is_floating(dtype) else "text"


def _as_mapping(fields: Any) -> dict[Any, Any]:
    if isinstance(fields, dict):
        return fields
    return dict(zip(fields[0::2], fields[1::2]))


def _raw_columns(fields: list[Any], names: Sequence[str]) -> dict[str, list[Any]]:
    """Each named field's value per entry (None when absent).

    When every entry is a flat list with the same field names in the same
    order — what one producer sends — the columns are sliced out whole;
    otherwise each entry is looked up by name.
    """
    first = fields[0] if fields else None
    if isinstance(first, list) and set(map(type, fields)) == {list} and set(map(len, fields)) == {len(first)}:
        transposed = list(zip(*fields))
        sent = [transposed[p][0] for p in range(0, len(first), 2)]
        same = all(transposed[p].count(sent[p // 2]) == len(fields) for p in range(0, len(first), 2))
        if same and len(set(sent)) == len(sent):
            where = {(n.decode() if isinstance(n, bytes) else n): p + 1 for n, p in zip(sent, range(0, len(first), 2))}
            return {name: list(transposed[where[name]]) if name in where else [None] * len(fields) for name in names}
    mappings = [_as_mapping(f) for f in fields]
    return {name: [m.get(name.encode(), m.get(name)) for m in mappings] for name in names}


def _entry_ids(entries: Sequence[Entry]) -> pa.Array:
    """The entries' ids as a string array (ids come as text from `RedisStream.read`, as bytes from elsewhere)."""
    ids = [entry_id for entry_id, _ in entries]
    try:
        return pa.array(ids, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_text(entry_id) for entry_id in ids], pa.string())


def parse_entries(group: StreamFeatureGroup, entries: Sequence[Entry]) -> ParsedEvents:
    """Typed events of the valid entries, in entry order, and a `DeadLetter` for every other one.

    Checks run column by column on whole arrays; only rejected rows are visited one by one, and each keeps the
    first reason found (columns in order: keys, event time, fields; then the time bounds).
    """
    columns: dict[str, pa.DataType | None] = {**group.key_types, group.event_time: None, **group.field_types}
    rows = len(entries)
    ids = _entry_ids(entries)
    fields = [f for _, f in entries]
    reasons: dict[int, str] = {}
    arrays: dict[str, pa.Array] = {}
    values = _raw_columns(fields, list(columns))
    for name, dtype in columns.items():
        typed, missing, failed = _column(values[name], dtype)
        arrays[name] = typed
        for row in np.flatnonzero(missing | failed).tolist():
            reasons.setdefault(row, f"missing field '{name}'" if missing[row] else f"field '{name}' is not {_describe(dtype)}")
        if dtype is not None and pa.types.is_floating(dtype) and rows:
            finite = np.isfinite(typed.fill_null(0.0).to_numpy(zero_copy_only=False))
            for row in np.flatnonzero(~finite).tolist():
                reasons.setdefault(row, f"field '{name}' is not a finite number")
        if dtype is not None and pa.types.is_string(dtype) and rows:
            long = pc.fill_null(pc.greater(pc.binary_length(typed), MAX_KEY_BYTES), False).to_numpy(zero_copy_only=False)
            for row in np.flatnonzero(long).tolist():
                reasons.setdefault(row, f"field '{name}' is longer than {MAX_KEY_BYTES} bytes")
    if rows:
        millis = pc.list_element(pc.split_pattern(ids, "-", max_splits=1), 0)
        arrival = pc.cast(millis, pa.int64()).to_numpy() * 1000
        event = arrays[group.event_time].to_numpy(zero_copy_only=False)
        late = event < arrival - group.largest_window // timedelta(microseconds=1)
        early = event > arrival + group.max_future // timedelta(microseconds=1)
        for row in np.flatnonzero(early | late).tolist():
            reasons.setdefault(row, (
                f"event_time is more than {group.max_future} after the stream received it (max_future)" if early[row]
                else f"event_time is older than the largest window ({group.largest_window}) when the stream received it"
            ))
    table = pa.table(
        {
            **{k: arrays[k] for k in group.join_keys},
            group.event_time: arrays[group.event_time].cast(UTC_MICROS),
            EVENT_ID: ids,
            **{f: arrays[f] for f in group.fields},
        }
    )
    if reasons:
        keep = np.ones(rows, dtype=bool)
        keep[list(reasons)] = False
        table = table.filter(pa.array(keep))
    dead = [
        DeadLetter(ids[row].as_py(), reason, {_text(k): _text(v) for k, v in _as_mapping(fields[row]).items()})
        for row, reason in sorted(reasons.items())
    ]
    return ParsedEvents(table, dead)
