"""How typed Arrow columns become pandas columns, the same for every reader (offline, online, transformations)."""

import numpy as np
import pandas as pd
import pyarrow as pa


def nullable_types(dtype: pa.DataType) -> object:
    """A `types_mapper` for `to_pandas`: integers as nullable `Int64` (and kin), bools as `boolean`."""
    if pa.types.is_boolean(dtype):
        return pd.BooleanDtype()
    if pa.types.is_integer(dtype):
        return pd.api.types.pandas_dtype(str(dtype).replace("uint", "UInt").replace("int", "Int"))
    return None


def to_pandas_column(array: pa.Array | pa.ChunkedArray) -> pd.Series | np.ndarray:
    """A feature column for an output frame: integers stay integers (nullable `Int64` only where missing)."""
    dtype = array.type
    if array.null_count and (pa.types.is_integer(dtype) or pa.types.is_boolean(dtype)):
        return pd.Series(array.to_pandas(types_mapper=nullable_types)).array
    return array.to_numpy(zero_copy_only=False) if not pa.types.is_timestamp(dtype) else array.to_pandas().array
