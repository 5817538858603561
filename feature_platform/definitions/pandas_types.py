"""Stored Arrow columns as pandas, the same way on every read path (offline, online, training datasets).

Integers and booleans stay exact: a column without missing values keeps its
numpy dtype (`int64`, `bool`), one with missing values becomes the nullable
`Int64` / `boolean` (never `float64`, where 2**53 + 1 would round).
"""

import numpy as np
import pandas as pd
import pyarrow as pa


def to_pandas_column(array: pa.Array | pa.ChunkedArray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """One column for a pandas frame: nullable `Int64`/`boolean` only where values are missing."""
    dtype = array.type
    if array.null_count and (pa.types.is_integer(dtype) or pa.types.is_boolean(dtype)):
        return pd.Series(array.to_pandas(types_mapper=nullable_types)).array
    return array.to_numpy(zero_copy_only=False) if not pa.types.is_timestamp(dtype) else array.to_pandas().array


def table_to_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a pandas frame of `to_pandas_column` columns (a RangeIndex, names kept in order)."""
    return pd.DataFrame({name: to_pandas_column(table.column(name)) for name in table.column_names}, index=pd.RangeIndex(table.num_rows))


def nullable_types(dtype: pa.DataType) -> object:
    """A `types_mapper` for `to_pandas`: integers as nullable `Int64` (and kin), bools as `boolean`."""
    if pa.types.is_boolean(dtype):
        return pd.BooleanDtype()
    if pa.types.is_integer(dtype):
        return pd.api.types.pandas_dtype(str(dtype).replace("int", "Int").replace("uInt", "UInt"))
    return None
