"""On-demand transformations: the one code path that offline retrieval and online serving share.

Both paths hand `OnDemandPlan.run` the retrieved features as `Column`s (Arrow
arrays offline, decoded Python values online; each converts to the other the
same way) and the request inputs as given. From those one function,
`transformation_input`, builds what the transformation's mode takes:

- `"pandas"`: a DataFrame; ints are always `Int64`, bools `boolean` (missing is
  `pd.NA`), floats `float64` (missing is NaN), strings `object` (missing None);
- `"python"`: a dict of column name to a list of Python values (missing is None);
- `"row"`: one dict of Python values per row (missing is None).

Outputs are converted to their declared types by the same code on both paths,
so a definition gives the same values and dtypes offline and online.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.definitions.concepts import OnDemandTransformation
from feature_platform.definitions.pandas_types import nullable_types
from feature_platform.errors import EntityFrameError, FeaturePlatformError


class Column:
    """One column of a transformation's input or output, as Arrow or Python values, converted (once) on demand.

    Python values are what `to_pylist` gives, with None for missing and UTC
    `datetime`s for timestamps; the online store decodes values to exactly these.
    """

    def __init__(self, arrow_type: pa.DataType | None, *, array: pa.Array | None = None, values: list[Any] | None = None) -> None:
        self.type = arrow_type
        self._array = array
        self._values = values

    def arrow(self) -> pa.Array:
        if self._array is None:
            self._array = pa.array(self._values, type=self.type)  # an undeclared request input's type is inferred
        return self._array

    def python(self) -> list[Any]:
        if self._values is None:
            assert self._array is not None
            values = self._array.to_pylist()
            if pa.types.is_timestamp(self._array.type):
                values = [None if v is None else v.astimezone(timezone.utc) for v in values]
            self._values = values
        return self._values


def _request_column(transformation: OnDemandTransformation, name: str, convert: Callable[[Any], Any] | None, values: Sequence[Any]) -> Column:
    """A request-time input (`Series.tolist()` offline, the request's list online), of its declared type if any."""
    declared = transformation.request_types[name]
    try:
        return Column(declared, values=list(map(convert or _plain, values)))
    except (TypeError, ValueError, OverflowError) as exc:
        wanted = f"the declared {declared}" if declared is not None else "plain values"
        raise EntityFrameError(
            f"on-demand transformation '{transformation.name}': request input '{name}' does not convert to {wanted}: {_short(exc)}"
        ) from None


def transformation_input(transformation: OnDemandTransformation, columns: Mapping[str, Column], rows: int) -> Any:
    """The input of `transformation` in its mode, built from the columns the same way offline and online."""
    if transformation.mode == "pandas":
        data = {name: column.arrow().to_pandas(types_mapper=nullable_types) for name, column in columns.items()}
        return pd.DataFrame(data, index=pd.RangeIndex(rows))
    lists = {name: column.python() for name, column in columns.items()}
    if transformation.mode == "python":
        return lists
    names = list(lists)
    return [dict(zip(names, values)) for values in zip(*lists.values())] if names else [{} for _ in range(rows)]


@dataclass(frozen=True)
class _Step:
    """One transformation with its conversions looked up once."""

    transformation: OnDemandTransformation
    requests: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    outputs: tuple[tuple[str, pa.DataType, Callable[[Any], Any]], ...]


class OnDemandPlan:
    """The transformations of a request, prepared once (online: once per request shape)."""

    def __init__(self, transformations: Sequence[OnDemandTransformation]) -> None:
        self.steps = tuple(
            _Step(
                t,
                tuple((n, None if d is None else _converter(d)) for n, d in t.request_types.items()),
                tuple((o.name, o.arrow_type, _converter(o.arrow_type)) for o in t.outputs),
            )
            for t in transformations
        )

    def run(self, features: Mapping[str, Column], requests: Mapping[str, Sequence[Any]], rows: int) -> dict[str, Column]:
        """The declared outputs of each transformation, in order, converted to their declared types.

        `features` are the retrieved features under their bare names; `requests`
        the request-time columns as Python lists. Each transformation also sees
        the outputs of the ones before it.
        """
        available = dict(features)
        produced: dict[str, Column] = {}
        for step in self.steps:
            transformation = step.transformation
            missing = [c for c in transformation.inputs if c not in available] + [n for n, _ in step.requests if n not in requests]
            if missing:
                raise EntityFrameError(
                    f"on-demand transformation '{transformation.name}' needs columns {missing}; "
                    "request-time inputs must be passed with the entity rows"
                )
            columns = {c: available[c] for c in (transformation.inputs or list(available))}
            for name, convert in step.requests:
                columns[name] = _request_column(transformation, name, convert, requests[name])
            outputs = _outputs(transformation, transformation_input(transformation, columns, rows))
            for name, arrow, convert in step.outputs:
                available[name] = produced[name] = _output_column(transformation, name, arrow, convert, outputs[name], rows)
        return produced


def _outputs(transformation: OnDemandTransformation, given: Any) -> dict[str, Any]:
    """Call the transformation; its declared outputs by name (a list of values per output in row mode)."""
    mode = transformation.mode
    if mode == "row":
        results = [_call(transformation, row) for row in given]
        for result in results:
            _check_kind(transformation, result, dict, "a dict per row")
        return {o.name: [_field(transformation, r, o.name) for r in results] for o in transformation.outputs}
    result = _call(transformation, given)
    _check_kind(transformation, result, pd.DataFrame if mode == "pandas" else dict, "a DataFrame" if mode == "pandas" else "a dict of column lists")
    return {o.name: _field(transformation, result, o.name) for o in transformation.outputs}


def _call(transformation: OnDemandTransformation, given: Any) -> Any:
    try:
        return transformation.function(given)
    except FeaturePlatformError:
        raise
    except Exception as exc:  # the user's code on these rows, e.g. text where a number was expected
        raise EntityFrameError(f"on-demand transformation '{transformation.name}' failed: {type(exc).__name__}: {_short(exc)}") from exc


def _check_kind(transformation: OnDemandTransformation, result: Any, kind: type, what: str) -> None:
    if not isinstance(result, kind) and not (kind is dict and isinstance(result, Mapping)):
        raise FeaturePlatformError(
            f"on-demand transformation '{transformation.name}' (mode '{transformation.mode}') returned "
            f"{type(result).__name__}, not {what}"
        )


def _field(transformation: OnDemandTransformation, result: Any, name: str) -> Any:
    if name not in result:
        raise FeaturePlatformError(f"on-demand transformation '{transformation.name}' did not return its declared output '{name}'")
    return result[name]


def _output_column(
    transformation: OnDemandTransformation, name: str, arrow: pa.DataType, convert: Callable[[Any], Any], values: Any, rows: int
) -> Column:
    """One output of its declared type: NaN becomes missing; a value that does not fit is an error."""
    try:
        if transformation.mode == "pandas":
            array = pa.array(values.reset_index(drop=True) if isinstance(values, pd.Series) else values, from_pandas=True)
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            column = Column(arrow, array=pa.nulls(len(array), arrow) if pa.types.is_null(array.type) else array.cast(arrow))
            count = len(array)
        else:
            converted = list(map(convert, values))
            column, count = Column(arrow, values=converted), len(converted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError) as exc:
        raise FeaturePlatformError(
            f"on-demand transformation '{transformation.name}': output '{name}' does not fit its declared type {arrow}: {_short(exc)}"
        ) from None
    if count != rows:
        raise FeaturePlatformError(f"on-demand transformation '{transformation.name}': output '{name}' has {count} values for {rows} rows")
    return column


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """A request value as plain Python: numpy scalars unwrapped, every kind of missing as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if _missing(value) else value


def _converter(arrow: pa.DataType) -> Callable[[Any], Any]:
    """Python value → the Python value of `arrow` (None for missing); refuses what does not fit."""
    if pa.types.is_floating(arrow):
        return _to_float
    if pa.types.is_integer(arrow):
        return _to_int
    if pa.types.is_boolean(arrow):
        return _to_bool
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return _to_str
    if pa.types.is_timestamp(arrow):
        return _to_timestamp
    if pa.types.is_date(arrow):
        return _to_date
    return _plain


def _to_float(value: Any) -> float | None:
    if type(value) is float:
        return None if value != value else value
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    result = float(value)
    return None if math.isnan(result) else result


def _to_int(value: Any) -> int | None:
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    if not -(2**63) <= value < 2**63:
        raise OverflowError(f"{value} is outside the 64-bit range")
    return value


def _to_bool(value: Any) -> bool | None:
    value = _plain(value)
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"{value!r} is not a bool")


def _to_str(value: Any) -> str | None:
    value = _plain(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{value!r} is not a string")


def _to_timestamp(value: Any) -> datetime | None:
    value = _plain(value)
    if value is None:
        return None
    if not isinstance(value, (datetime, str)):
        raise TypeError(f"{value!r} is not a time")
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.floor("us").to_pydatetime().astimezone(timezone.utc)


def _to_date(value: Any) -> date | None:
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{value!r} is not a date")
    return value
