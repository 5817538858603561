"""Stream entries to typed events, and the reason each rejected entry goes to the dead-letter stream.

An entry is `(entry id, {field: value})` with bytes or text values: join keys,
`event_time` (epoch milliseconds or ISO 8601, naive = UTC) and the group's
fields. Time bounds are taken against the entry id's time (when the stream
received the event), not the clock of whoever reads it, so the online and the
offline consumers, a replay and a backfill all accept and reject the same entries.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from feature_platform.definitions.aggregations import EVENT_ID, StreamFeatureGroup
from feature_platform.definitions.contract import MAX_KEY_BYTES

Entry = tuple[Any, dict[Any, Any]]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


def entry_millis(entry_id: str) -> int:
    """The time (epoch ms) a Redis stream entry id `<ms>-<seq>` was assigned."""
    return int(entry_id.split("-", 1)[0])


class _Refused(ValueError):
    """A value that parses but breaks a bound; its message is safe to log (it holds no value)."""


def _integer(value: str) -> int:
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise _Refused("outside the 64-bit range")
    return number


def _float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise _Refused("not a finite number")
    return number


def _event_time(value: str) -> int:
    """Microseconds since the epoch of epoch milliseconds or an ISO 8601 time."""
    if value.lstrip("-").isdigit():
        return _integer(value) * 1000
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _string(value: str) -> str:
    if len(value.encode()) > MAX_KEY_BYTES:
        raise _Refused(f"longer than {MAX_KEY_BYTES} bytes")
    return value


def _parser(dtype: pa.DataType) -> tuple[Callable[[str], Any], str]:
    if pa.types.is_integer(dtype):
        return _integer, "an integer"
    if pa.types.is_floating(dtype):
        return _float, "a number"
    if pa.types.is_boolean(dtype):
        return {"true": True, "false": False, "1": True, "0": False}.__getitem__, "true or false"
    return _string, "text"


def parse_entries(group: StreamFeatureGroup, entries: Sequence[Entry]) -> ParsedEvents:
    """Typed events of the valid entries, in entry order, and a `DeadLetter` for every other one."""
    columns = {**group.key_types, group.event_time: None, **group.field_types}
    names = {name: name.encode() for name in columns}
    parsed: dict[str, list[Any]] = {name: [] for name in columns}
    ids: list[str] = []
    dead: list[DeadLetter] = []
    future_us = group.max_future // timedelta(microseconds=1)
    horizon_us = group.largest_window // timedelta(microseconds=1)
    for entry_id, fields in entries:
        entry = _text(entry_id)
        row, reason = _parse_row(fields, columns, names, group.event_time)
        if reason is None:
            arrival_us = entry_millis(entry) * 1000
            event_us = row[group.event_time]
            if event_us > arrival_us + future_us:
                reason = f"event_time is more than {group.max_future} after the stream received it (max_future)"
            elif event_us < arrival_us - horizon_us:
                reason = f"event_time is older than the largest window ({group.largest_window}) when the stream received it"
        if reason is not None:
            dead.append(DeadLetter(entry, reason, {_text(k): _text(v) for k, v in fields.items()}))
            continue
        ids.append(entry)
        for name in columns:
            parsed[name].append(row[name])
    schema = group.schema
    arrays = {name: pa.array(parsed[name], type=schema.field(name).type if name != group.event_time else pa.int64()) for name in columns}
    arrays[group.event_time] = arrays[group.event_time].cast(pa.timestamp("us", tz="UTC"))
    table = pa.table({**{k: arrays[k] for k in group.join_keys}, group.event_time: arrays[group.event_time],
                      EVENT_ID: pa.array(ids, pa.string()), **{f: arrays[f] for f in group.fields}})
    return ParsedEvents(table, dead)


def _parse_row(
    fields: dict[Any, Any], columns: dict[str, pa.DataType | None], names: dict[str, bytes], event_time: str
) -> tuple[dict[str, Any], str | None]:
    row: dict[str, Any] = {}
    for name, dtype in columns.items():
        raw = fields.get(names[name], fields.get(name))
        if raw is None:
            return row, f"missing field '{name}'"
        try:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            row[name] = _event_time(text) if dtype is None else _parser(dtype)[0](text)
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            expected = "epoch milliseconds or an ISO 8601 time" if dtype is None else _parser(dtype)[1]
            detail = f" ({exc})" if isinstance(exc, _Refused) else ""
            return row, f"field '{name}' is not {expected}{detail}"
    return row, None

