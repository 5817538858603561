"""Entity frames in: key and time conversion.

Keys must already have the group's kind of dtype (an int key is never matched
against strings or floats); times are naive UTC or tz-aware, kept to the
microsecond the offline store stores.
"""

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.definitions.pandas_types import to_pandas_column
from feature_platform.errors import EntityFrameError

__all__ = ["entity_key_array", "entity_times", "to_pandas_column"]

_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}
# What pandas infers for columns that may hold times; numbers (seconds? nanoseconds?) are refused.
TIME_KINDS = ("datetime64", "datetime", "date", "string", "empty")


def entity_key_array(values: pd.Series, column: str, dtype: pa.DataType, group: str) -> pa.Array:
    """The entity frame's key column as an Arrow array of the group's key type, or `EntityFrameError`."""
    try:
        array = pa.array(values, from_pandas=True)
    except OverflowError:
        raise EntityFrameError(f"entity frame column '{column}' holds integers outside the 64-bit range") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        raise EntityFrameError(
            f"entity frame column '{column}' (dtype {values.dtype}) holds values of mixed types; "
            f"feature group '{group}' keys it as {dtype}"
        ) from None
    source = array.type
    if pa.types.is_dictionary(source):
        array, source = array.dictionary_decode(), source.value_type
    compatible = (
        source == dtype
        or (pa.types.is_integer(source) and pa.types.is_integer(dtype))
        or (_is_string(source) and _is_string(dtype))
        or (pa.types.is_null(source) and len(array) == 0)
    )
    if not compatible:
        raise EntityFrameError(
            f"entity frame column '{column}' has dtype {values.dtype} ({source}), but feature group '{group}' "
            f"keys it as {dtype}: convert the column (join keys of different types never match)"
        )
    if array.null_count:
        raise EntityFrameError(f"entity frame column '{column}': {array.null_count} row(s) have no join key value")
    try:
        return array.cast(dtype, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise EntityFrameError(f"entity frame column '{column}' does not fit the key type {dtype} of '{group}': {exc}") from None


def _is_string(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def entity_times(values: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch (UTC) of each row's time: rounded down, and rounded up.

    A stored event time (whole microseconds) is `<= t` iff it is `<= floor(t)`,
    and `>= t - ttl` iff it is `>= ceil(t) - ttl`: nanosecond times stay exact.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    if not (pd.api.types.is_datetime64_any_dtype(values.dtype)):
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind not in TIME_KINDS:
            numeric = kind in ("integer", "floating", "mixed-integer", "mixed-integer-float", "integer-na", "decimal", "boolean")
            advice = (
                "numbers have no unit: convert them, e.g. pd.to_datetime(df[column], unit='s', utc=True)"
                if numeric else "pass datetimes or ISO 8601 strings"
            )
            raise EntityFrameError(f"entity frame time column '{column}' holds {kind} values (dtype {values.dtype}), not datetimes; {advice}")
        try:
            # Naive values are UTC; strings with different offsets become the instants they name.
            values = pd.to_datetime(values, utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise EntityFrameError(f"entity frame time column '{column}' is not made of datetimes ({exc})") from None
    if values.isna().any():
        raise EntityFrameError(f"entity frame time column '{column}': {int(values.isna().sum())} row(s) have no time")
    array = pa.array(values, from_pandas=True)
    if not pa.types.is_timestamp(array.type):
        raise EntityFrameError(f"entity frame time column '{column}' has dtype {values.dtype}, not a datetime")
    # Arrow stores tz-aware times as UTC instants and naive ones as UTC wall time: the integers are UTC either way.
    raw = array.cast(pa.int64()).to_numpy(zero_copy_only=False)
    unit = array.type.unit
    if unit == "ns":
        return np.floor_divide(raw, 1_000), -np.floor_divide(-raw, 1_000)
    micros = raw * _MICROS_PER_UNIT[unit]
    return micros, micros
