"""On-demand transformations: the one code path that offline retrieval and online serving share."""

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from feature_platform.definitions.concepts import OnDemandTransformation
from feature_platform.errors import EntityFrameError, FeaturePlatformError


def apply_on_demand(transformations: Sequence[OnDemandTransformation], frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with the declared outputs of each transformation appended, cast to their dtypes.

    `frame` holds the retrieved features under their bare names plus the
    request-time columns; transformations run in order, each seeing the outputs
    of the ones before it.
    """
    for transformation in transformations:
        needed = [*transformation.inputs, *transformation.request_inputs]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise EntityFrameError(
                f"on-demand transformation '{transformation.name}' needs columns {missing}; "
                "request-time inputs must be passed with the entity rows"
            )
        result = transformation.function(frame)
        if not isinstance(result, pd.DataFrame):
            raise FeaturePlatformError(
                f"on-demand transformation '{transformation.name}' returned {type(result).__name__}, not a DataFrame"
            )
        frame = frame.copy()
        for output in transformation.outputs:
            if output.name not in result.columns:
                raise FeaturePlatformError(
                    f"on-demand transformation '{transformation.name}' did not return its declared output '{output.name}'"
                )
            values = pa.array(result[output.name].reset_index(drop=True), from_pandas=True)
            frame[output.name] = values.cast(output.arrow_type).to_pandas(types_mapper=_nullable_types).values
    return frame


def _nullable_types(arrow: pa.DataType) -> object:
    if pa.types.is_integer(arrow):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow):
        return pd.BooleanDtype()
    return None
