"""The JSON form of feature values, both ways: one documented encoding per dtype, strict RFC 8259 out.

| dtype | JSON |
| --- | --- |
| integers | number; a push also takes a string of decimal digits (for clients whose numbers stop at 2**53) |
| floats | number; NaN and infinities as the strings "NaN", "Infinity", "-Infinity" |
| bool | true / false |
| string | string |
| binary | base64 string (RFC 4648, padded) |
| timestamp | ISO 8601 string; answers are UTC with an offset, a push without an offset means UTC |
| date | "YYYY-MM-DD" |
| decimal | string of the number ("12.34"); a push also takes a JSON integer |
| list, struct | array, object of the element or field encodings |
| map | array of [key, value] pairs |
| missing | null |
"""

import base64
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.errors import ContractError

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
DECIMAL_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
# Floats hold every integer only below 2**53; an integral float beyond that may already be rounded.
EXACT_FLOAT_INTEGER = 2**53


def dumps(content: Any) -> bytes:
    """`content` as strict JSON (ASCII, no NaN or Infinity literals), values encoded as the table above says."""
    try:
        text = json.dumps(content, allow_nan=False, separators=(",", ":"), default=_encode)
    except ValueError:  # a non-finite float somewhere: rare, so only then walk the content
        text = json.dumps(_finite(content), allow_nan=False, separators=(",", ":"), default=_encode)
    return text.encode()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value is pd.NaT:
            return None
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _finite(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def table_from_json(group: FeatureGroup, rows: Mapping[str, list[Any]]) -> pa.Table:
    """Push rows given as JSON columns, converted to `group`'s stored types (refused with `ContractError`)."""
    schema = group.schema
    declared = set(group.input_columns)
    unknown = [name for name in rows if name not in declared]
    if unknown:
        raise ContractError(group.name, unknown[0], "unexpected column", f"not declared in the group: {unknown}")
    lengths = {name: len(values) for name, values in rows.items()}
    if len(set(lengths.values())) > 1:
        raise ContractError(group.name, None, "column lengths", f"every column needs the same length, got {lengths}")
    arrays = [column_from_json(group.name, name, values, schema.field(name).type) for name, values in rows.items()]
    return pa.table(arrays, names=list(rows))


def column_from_json(group_name: str, column: str, values: list[Any], arrow: pa.DataType) -> pa.Array:
    """One JSON column as an Arrow array of type `arrow`, or `ContractError` naming the column and the encoding."""
    convert = _converter(arrow)
    try:
        converted = [None if v is None else convert(v) for v in values]
        if pa.types.is_floating(arrow):  # Arrow converts Python floats to float64 only
            return pa.array(converted, type=pa.float64()).cast(arrow)
        return pa.array(converted, type=arrow)
    except (ValueError, TypeError, OverflowError, pa.ArrowException) as exc:
        detail = str(exc) if isinstance(exc, _Refused) else f"{type(exc).__name__}: {exc}"
        raise ContractError(group_name, column, "JSON value", f"{detail}; {arrow} is sent as {describe(arrow)}") from None


class _Refused(ValueError):
    """A JSON value that is not the encoding of its column's dtype."""


def describe(arrow: pa.DataType) -> str:
    """The JSON encoding of values of `arrow`, in words (for error messages)."""
    if pa.types.is_integer(arrow):
        return "a JSON integer or a string of decimal digits"
    if pa.types.is_floating(arrow):
        return 'a JSON number, or "NaN", "Infinity", "-Infinity"'
    if pa.types.is_boolean(arrow):
        return "true or false"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "a string of valid Unicode"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "a base64 string"
    if pa.types.is_timestamp(arrow):
        return 'an ISO 8601 string such as "2024-05-01T12:00:00Z" (no offset means UTC)'
    if pa.types.is_date(arrow):
        return 'a "YYYY-MM-DD" string'
    if pa.types.is_decimal(arrow):
        return 'a string of the decimal number such as "12.34" (or a JSON integer)'
    if pa.types.is_dictionary(arrow):
        return describe(arrow.value_type)
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return f"an array of ({describe(arrow.value_type)})"
    if pa.types.is_map(arrow):
        return f"an array of [key, value] pairs, keys as ({describe(arrow.key_type)}), values as ({describe(arrow.item_type)})"
    if pa.types.is_struct(arrow):
        return "an object with fields " + ", ".join(f"{f.name}: {describe(f.type)}" for f in arrow)
    return "nothing: this dtype cannot be sent over HTTP"


def _converter(arrow: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_integer(arrow):
        return _integer
    if pa.types.is_floating(arrow):
        return _float
    if pa.types.is_boolean(arrow):
        return _expect(bool, "true or false")
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return _text
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return _binary
    if pa.types.is_timestamp(arrow):
        return _timestamp
    if pa.types.is_date(arrow):
        return _date
    if pa.types.is_decimal(arrow):
        return _decimal
    if pa.types.is_dictionary(arrow):
        return _converter(arrow.value_type)
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return _list(_converter(arrow.value_type))
    if pa.types.is_map(arrow):
        return _map(_converter(arrow.key_type), _converter(arrow.item_type))
    if pa.types.is_struct(arrow):
        return _struct({f.name: _converter(f.type) for f in arrow})
    raise _Refused(f"values of {arrow} cannot be sent over HTTP")


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def _expect(kind: type, words: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise _Refused(f"expected {words}, got a JSON {_kind(value)}")
        return value

    return convert


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _Refused(f"expected a string, got a JSON {_kind(value)}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _Refused("a string that is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _integer(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and DECIMAL_INTEGER.fullmatch(value):
        return int(value)
    if type(value) is float and value.is_integer() and abs(value) < EXACT_FLOAT_INTEGER:
        return int(value)
    if type(value) is float and value.is_integer():
        raise _Refused("a number past 2**53, where JSON numbers lose digits; send it as a string of digits")
    raise _Refused(f"expected an integer, got a JSON {_kind(value)}")


def _float(value: Any) -> float:
    if type(value) in (int, float):
        return float(value)
    if type(value) is str and value in NON_FINITE:
        return NON_FINITE[value]
    raise _Refused(f"expected a number, got a JSON {_kind(value)}")


def _binary(value: Any) -> bytes:
    if type(value) is not str:
        raise _Refused(f"expected a base64 string, got a JSON {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise _Refused("not valid base64") from None


def _timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise _Refused(f"expected an ISO 8601 string, got a JSON {_kind(value)} (a number has no unit)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Refused("a string that is not an ISO 8601 time") from None
    # The instant in UTC: a column of mixed offsets is not read alike by every converter downstream.
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _date(value: Any) -> date:
    if type(value) is not str:
        raise _Refused(f"expected a date string, got a JSON {_kind(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Refused("a string that is not a YYYY-MM-DD date") from None


def _decimal(value: Any) -> Decimal:
    if type(value) is int:
        return Decimal(value)
    if type(value) is str:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _Refused("a string that is not a decimal number") from None
        if number.is_finite():
            return number
    raise _Refused(f"expected a decimal number as a string, got a JSON {_kind(value)} (JSON numbers lose decimal digits)")


def _map(key: Callable[[Any], Any], item: Callable[[Any], Any]) -> Callable[[Any], list[tuple[Any, Any]]]:
    def convert(value: Any) -> list[tuple[Any, Any]]:
        if type(value) is not list or not all(type(pair) is list and len(pair) == 2 for pair in value):
            raise _Refused(f"expected an array of [key, value] pairs, got a JSON {_kind(value)}")
        return [(key(k), None if v is None else item(v)) for k, v in value]

    return convert


def _list(element: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def convert(value: Any) -> list[Any]:
        if type(value) is not list:
            raise _Refused(f"expected an array, got a JSON {_kind(value)}")
        return [None if v is None else element(v) for v in value]

    return convert


def _struct(fields: dict[str, Callable[[Any], Any]]) -> Callable[[Any], dict[str, Any]]:
    def convert(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise _Refused(f"expected an object, got a JSON {_kind(value)}")
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise _Refused(f"unknown fields {unknown[:5]}; fields are {list(fields)}")
        return {k: None if value.get(k) is None else fields[k](value[k]) for k in fields}

    return convert
