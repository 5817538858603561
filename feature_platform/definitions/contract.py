"""The contract check every write passes: a frame in, an Arrow table of the group's schema out.

Checks columns, dtypes (safe casts only), non-null keys and event times,
event times inside the partition and unique (keys, event time, created time).
Naive timestamps are taken as UTC. Any violation raises `ContractError`
naming the group, the column and the rule, before anything is written.
"""

import math
import numbers
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.definitions.concepts import RESERVED_COLUMNS, FeatureGroup
from feature_platform.errors import ArgumentError, ContractError

UTC_MICROS = pa.timestamp("us", tz="UTC")
# Keys become Redis keys and feature values Redis hash fields: bound them so one bad row cannot bloat either.
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1024 * 1024


def utc_timestamp(value: object) -> pd.Timestamp:
    """A UTC `pandas.Timestamp`; naive values are taken as UTC; numbers are refused (they have no unit)."""
    if isinstance(value, (numbers.Number, np.number, np.bool_)):
        raise ArgumentError(
            f"{value!r} is a number, not a point in time (seconds? nanoseconds?); use a datetime, an ISO 8601 string, "
            "or convert it with pandas.Timestamp(value, unit='s')"
        )
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{value!r} is not a point in time; use a datetime or an ISO 8601 string") from None
    if pd.isna(ts):
        raise ArgumentError(f"a point in time is missing (got {value!r})")
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def _column_to_arrow(group: FeatureGroup, name: str, values: object) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        # Describe the problem, never the values: they may be sensitive and messages end up in logs.
        raise ContractError(group.name, name, "dtype", _unconvertible(values, exc)) from None


def _unconvertible(values: object, exc: Exception) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return "strings that are not valid UTF-8 (lone surrogates)"
    if isinstance(exc, OverflowError):
        return "integers outside the 64-bit range"
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))] if hasattr(values, "__iter__") else []
    kinds = sorted({type(v).__name__ for v in present})
    if len(kinds) > 1:
        return f"values of mixed types {kinds}; a column must hold one type"
    return f"values of an unsupported type {kinds or type(values).__name__}"


def _cast(group: FeatureGroup, name: str, array: pa.Array, target: pa.DataType) -> pa.Array:
    source = array.type
    if pa.types.is_dictionary(source):
        array, source = array.cast(source.value_type), source.value_type
    if source == target:
        return array
    if pa.types.is_null(source):
        return pa.nulls(len(array), target)
    allowed = (
        (pa.types.is_integer(target) and pa.types.is_integer(source))
        or (pa.types.is_floating(target) and (pa.types.is_floating(source) or pa.types.is_integer(source)))
        or (pa.types.is_integer(target) and pa.types.is_floating(source))
        or (pa.types.is_string(target) and (pa.types.is_large_string(source) or pa.types.is_string_view(source)))
        or (pa.types.is_timestamp(target) and pa.types.is_timestamp(source))
        or (pa.types.is_date(target) and pa.types.is_date(source))
        or (pa.types.is_boolean(target) and pa.types.is_boolean(source))
    )
    if not allowed:
        raise ContractError(group.name, name, "dtype", f"expected {target}, got {source}")
    if pa.types.is_timestamp(target):
        if source.tz is None:
            array = pc.assume_timezone(array, "UTC")
        # Delta stores microseconds: finer times are floored (also before 1970, as lookups floor them),
        # where a plain cast would truncate towards 1970.
        if source.unit == "ns" and target.unit == "us":
            return _floor_to_micros(array, target)
        return array.cast(target, safe=False)
    if pa.types.is_integer(target) and pa.types.is_floating(source):
        finite = pc.drop_null(array)
        if len(finite) and not pc.all(pc.equal(pc.floor(finite), finite)).as_py():
            raise ContractError(group.name, name, "dtype", f"expected {target}, got non-integral {source} values")
        # From 2**53 on a float no longer holds every integer: the value may already have been rounded
        # (pandas turns int columns with nulls into float64), so refuse rather than store a wrong number.
        if len(finite) and pc.max(pc.abs(finite)).as_py() >= 2**53:
            raise ContractError(
                group.name, name, "dtype",
                f"expected {target}, got {source} values of 2**53 or more that may have lost precision; "
                "pass integers with a nullable integer dtype such as pandas 'Int64'",
            )
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ContractError(group.name, name, "dtype", f"cannot cast {source} to {target} safely ({exc})") from None


def _floor_to_micros(array: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Nanosecond times floored to microseconds (numpy floor division: 5x faster than `floor_temporal`)."""
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([_floor_to_micros(chunk, target) for chunk in array.chunks], type=target)
    nanos = array.cast(pa.int64()).fill_null(0).to_numpy()
    return pa.array(nanos // 1000, mask=array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None).cast(target)


def _has_repeats(table: pa.Table, columns: list[str]) -> bool:
    """Whether two rows share the values of `columns`.

    Integer and time columns are first mixed into one 64-bit hash per row: all
    hashes distinct proves all rows distinct, and sorting one hash column is much cheaper
    than grouping by several columns. Otherwise (a repeated hash, other types)
    the exact grouping decides.
    """
    if all(pa.types.is_integer(t) or pa.types.is_timestamp(t) for t in table.select(columns).schema.types):
        mixed = np.zeros(table.num_rows, dtype=np.uint64)
        for name in columns:
            values = table.column(name).cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy().view(np.uint64)
            mixed = (mixed ^ values) * np.uint64(0x9E3779B97F4A7C15)
            mixed ^= mixed >> np.uint64(29)
        mixed.sort()  # numpy's vectorised sort beats Arrow's hash-based distinct count several times
        if not (mixed[1:] == mixed[:-1]).any():
            return False
    return table.select(columns).group_by(columns).aggregate([]).num_rows != table.num_rows


def _check_string_sizes(group: FeatureGroup, table: pa.Table) -> None:
    for field in table.schema:
        if not pa.types.is_string(field.type) or not table.num_rows:
            continue
        limit = MAX_KEY_BYTES if field.name in group.join_keys else MAX_VALUE_BYTES
        lengths = pc.binary_length(table.column(field.name))
        too_long = pc.sum(pc.greater(lengths, limit)).as_py()
        if too_long:
            raise ContractError(
                group.name, field.name, "value too large",
                f"{too_long} value(s) longer than {limit} bytes (longest: {pc.max(lengths).as_py()} bytes)",
            )


def _check_window(
    group: FeatureGroup, event_time: pa.ChunkedArray, window: tuple[datetime, datetime | None], rule: str, what: str
) -> None:
    """Every event time is in `[start, end)` (no upper bound for `end=None`), else `ContractError` with the count."""
    start, end = utc_timestamp(window[0]), None if window[1] is None else utc_timestamp(window[1])
    outside = pc.less(event_time, pa.scalar(start, UTC_MICROS))
    if end is not None:
        outside = pc.or_(outside, pc.greater_equal(event_time, pa.scalar(end, UTC_MICROS)))
    count = pc.sum(outside).as_py()
    if count:
        bounds = f"[{start.isoformat()}, {end.isoformat() if end is not None else 'open'})"
        raise ContractError(group.name, group.event_time, rule, f"{count} row(s) are outside {bounds}{what}")


def conform(
    group: FeatureGroup,
    df: "pd.DataFrame | pa.Table",
    *,
    window: tuple[datetime, datetime] | None = None,
    written_at: datetime,
) -> pa.Table:
    """Check `df` against `group`'s contract and return it as an Arrow table of `group.schema`.

    `window`, if given, is the `[start, end)` event-time window every row must fall in.
    `written_at` stamps the rows so that a later write wins exact ties.
    """
    if not isinstance(df, (pd.DataFrame, pa.Table)):
        raise ContractError(group.name, None, "type", f"expected a pandas DataFrame or pyarrow Table, got {type(df).__name__}")
    columns = [str(c) for c in df.columns] if isinstance(df, pd.DataFrame) else df.column_names
    if len(set(columns)) != len(columns):
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        raise ContractError(group.name, duplicated[0], "duplicate column", "the frame has this column twice")
    expected = group.input_columns
    missing = [c for c in expected if c not in columns]
    if missing:
        raise ContractError(group.name, missing[0], "missing column", f"required columns missing: {missing}")
    extra = [c for c in columns if c not in expected]
    if extra:
        reserved = [c for c in extra if c in RESERVED_COLUMNS]
        detail = f"reserved column names {reserved}" if reserved else f"not declared in the group: {extra}"
        raise ContractError(group.name, extra[0], "unexpected column", detail)

    schema = group.schema
    arrays = []
    for name in expected:
        # Arrow ignores a pandas index, so no reset_index (a copy of every column) is needed.
        arrays.append(_cast(group, name, _column_to_arrow(group, name, df[name]), schema.field(name).type))
    table = pa.table(arrays, names=expected)

    for name in [*group.join_keys, group.event_time]:
        nulls = table.column(name).null_count
        if nulls:
            rule = "null join key" if name != group.event_time else "null event time"
            raise ContractError(group.name, name, rule, f"{nulls} row(s) have no value")

    _check_string_sizes(group, table)
    event_time = table.column(group.event_time)
    if window is not None and table.num_rows:
        _check_window(group, event_time, window, "event outside partition", "")
    if group.partitions is not None and table.num_rows:
        # Every write path (partition writes, ingests, pushes) keeps rows inside the declared partitions.
        partitions = group.partitions
        first = datetime(partitions.start.year, partitions.start.month, partitions.start.day, tzinfo=timezone.utc)
        last = None if partitions.end is None else datetime(partitions.end.year, partitions.end.month, partitions.end.day, tzinfo=timezone.utc)
        _check_window(group, event_time, (first, last), "event outside partitions", " (the group's declared partitions)")

    unique_by = group.row_identity
    if table.num_rows and _has_repeats(table, unique_by):
        distinct = table.select(unique_by).group_by(unique_by).aggregate([]).num_rows
        if distinct != table.num_rows:
            raise ContractError(
                group.name, None, "duplicate rows",
                f"{table.num_rows - distinct} row(s) repeat the same {unique_by}",
            )

    # Casting a UTC timestamp to date32 floors to the UTC day, 4x faster than floor_temporal + cast.
    partition = event_time.cast(pa.date32())
    table = table.append_column(schema.field("_partition"), partition)
    table = table.append_column(schema.field("_written_at"), pa.repeat(pa.scalar(written_at, UTC_MICROS), table.num_rows))
    return table.cast(schema)
