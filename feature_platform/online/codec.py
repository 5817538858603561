"""How online rows are laid out in Redis: keys that never collide, values that compare cheaply.

Key: `fp:<project>:<group>:v<version>:` + msgpack of the typed join-key tuple
(on a Redis Cluster inside `{}`, a hash tag: see `online.cluster`).
Names are identifiers (no `:`) and msgpack is typed and length-prefixed, so
int 1 and str "1", or ("a:b", "c") and ("a", "b:c"), give different keys.
Value: a 24-byte big-endian header (event, created and write time in
microseconds) that the Redis script compares, the 4-byte id of the layout the
value was written with (see `records.layout_ids`), then msgpack of the features.
A reader decodes only the layouts its definitions know, so a value is never
read by position under another layout.
"""

import struct
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgpack
import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.errors import EntityFrameError

HEADER = struct.Struct(">qqq")
LAYOUT = struct.Struct(">I")
LAYOUT_END = HEADER.size + LAYOUT.size
# A missing created time sorts before every real one (the script compares int64s exactly).
NO_CREATED_TIME = -(2**63)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EPOCH_DAY = date(1970, 1, 1)


def key_prefix(project: str, group: FeatureGroup) -> bytes:
    """The namespace of one group version's keys."""
    return f"fp:{project}:{group.name}:v{group.version}:".encode()


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int_key(name: str) -> Callable[[Any], int]:
    def normalise(value: Any) -> int:
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            number = int(value)
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            number = int(value)
            if abs(number) >= 2**53:  # a float this large may already be another integer, rounded
                raise EntityFrameError(
                    f"entity key '{name}' is an integer key; the float {value!r} is past 2**53 and may have lost "
                    "digits: pass it as an integer"
                )
        else:
            raise EntityFrameError(f"entity key '{name}' is an integer key; got {type(value).__name__} {value!r}")
        if not INT64_MIN <= number <= INT64_MAX:
            raise EntityFrameError(f"entity key '{name}' is a 64-bit integer key; {number} is outside its range")
        return number

    return normalise


def _str_key(name: str) -> Callable[[Any], str]:
    def normalise(value: Any) -> str:
        if not isinstance(value, str):
            raise EntityFrameError(f"entity key '{name}' is a string key; got {type(value).__name__} {value!r}")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise EntityFrameError(f"entity key '{name}' is not valid UTF-8 text (it holds a lone surrogate)") from None
        return value

    return normalise


def _bool_key(name: str) -> Callable[[Any], bool]:
    def normalise(value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise EntityFrameError(f"entity key '{name}' is a boolean key; got {type(value).__name__} {value!r}")

    return normalise


def _temporal_key(name: str, arrow: pa.DataType) -> Callable[[Any], Any]:
    def normalise(value: Any) -> Any:
        if isinstance(value, (bool, int, float, np.number, np.bool_)):  # a number has no unit: refuse rather than guess
            raise EntityFrameError(f"entity key '{name}' expects {arrow} (a date or time, or an ISO 8601 string); got {type(value).__name__} {value!r}")
        try:
            if isinstance(value, str):
                value = date.fromisoformat(value) if pa.types.is_date(arrow) else _utc(pd.Timestamp(value))
            scalar = pa.scalar(value).cast(arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
            raise EntityFrameError(f"entity key '{name}' expects {arrow} (a date or time, or an ISO 8601 string); got {type(value).__name__} {value!r}") from None
        # Tag the type so a day number never equals an integer key value.
        return [str(arrow), scalar.cast(pa.int64()).as_py() if pa.types.is_timestamp(arrow) else scalar.value]

    return normalise


def _utc(timestamp: pd.Timestamp) -> pd.Timestamp:
    if pd.isna(timestamp):
        raise ValueError("not a time")
    return timestamp.tz_convert("UTC") if timestamp.tzinfo else timestamp.tz_localize("UTC")


def key_normaliser(name: str, arrow: pa.DataType) -> Callable[[Any], Any]:
    """A function that checks one join-key value against its declared type and returns its canonical form."""
    if pa.types.is_integer(arrow):
        return _int_key(name)
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return _str_key(name)
    if pa.types.is_boolean(arrow):
        return _bool_key(name)
    return _temporal_key(name, arrow)


def encode_keys(prefix: bytes, key_values: Sequence[Sequence[Any]], *, hash_tag: bool = False) -> list[bytes]:
    """Keys of the entities whose canonical join-key values are given column by column.

    With `hash_tag` (Redis Cluster) the entity part is wrapped in `{}`, so its
    hash slot depends on the entity alone and all groups of an entity share it.
    """
    pack = msgpack.packb
    if hash_tag:
        rows = ((value,) for value in key_values[0]) if len(key_values) == 1 else zip(*key_values)
        return [b"%s{%s}" % (prefix, pack(values)) for values in rows]
    if len(key_values) == 1:
        return [prefix + pack((value,)) for value in key_values[0]]
    return [prefix + pack(values) for values in zip(*key_values)]


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware or naive-UTC datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - EPOCH) // timedelta(microseconds=1)


def column_for_packing(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values msgpack can store: timestamps as microseconds, dates as day numbers."""
    arrow = column.type
    if pa.types.is_timestamp(arrow):
        return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    if pa.types.is_date(arrow):
        return column.cast(pa.date32()).cast(pa.int32()).to_pylist()
    return column.to_pylist()


def value_decoder(arrow: pa.DataType) -> Callable[[Any], Any] | None:
    """How a stored feature value is turned back into Python (None when stored as is)."""
    if pa.types.is_timestamp(arrow):
        return lambda v: None if v is None else EPOCH + timedelta(microseconds=v)
    if pa.types.is_date(arrow):
        return lambda v: None if v is None else EPOCH_DAY + timedelta(days=v)
    return None


def encode_values(
    event_us: Sequence[int],
    created_us: Sequence[int],
    written_us: Sequence[int],
    features: Sequence[Sequence[Any]],
    layout: int,
) -> list[bytes]:
    """Packed values: the comparable header, the layout id, then the feature values in the group's order."""
    header = HEADER.pack
    tag = LAYOUT.pack(layout)
    pack = msgpack.packb
    return [header(e, c, w) + tag + pack(row) for e, c, w, row in zip(event_us, created_us, written_us, zip(*features))]


def decode_header(raw: bytes) -> tuple[int, int, int]:
    """Event, created and write time (microseconds) of a stored value."""
    return HEADER.unpack_from(raw)


def decode_layout(raw: bytes) -> int:
    """The id of the layout a stored value was written with."""
    return LAYOUT.unpack_from(raw, HEADER.size)[0]


def decode_features(raw: bytes) -> list[Any]:
    """The feature values of a stored value, in the order of the layout it was written with."""
    return msgpack.unpackb(memoryview(raw)[LAYOUT_END:])
