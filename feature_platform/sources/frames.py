"""The frames a compute function takes and returns: pandas, Polars or Arrow, or a SQL statement DuckDB runs.

Sources are read as pandas; `as_frames` hands them to the compute function in the kind
its group asks for (`FeatureGroup(frames="polars")`), and `to_pandas` takes back whatever
it returns. A compute given as SQL runs in DuckDB over the inputs, each a view named after
its source, with `$start` and `$end` bound to the run's window (NULL when unpartitioned).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from feature_platform.errors import ComputeError, import_extra

FRAME_KINDS = ("pandas", "polars", "arrow")


def to_pandas(frame: Any, *, what: str) -> pd.DataFrame:
    """A pandas frame from a pandas, Polars or Arrow frame; anything else is an error naming `what`."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(frame, pa.Table):
        return frame.to_pandas()
    if type(frame).__module__.split(".")[0] == "polars" and hasattr(frame, "to_arrow"):
        return frame.to_arrow().to_pandas()
    raise TypeError(f"{what} returned {type(frame).__name__}, not a pandas, Polars or Arrow frame")


def as_frames(inputs: Mapping[str, pd.DataFrame], kind: str) -> dict[str, Any]:
    """The inputs as frames of `kind` ("pandas", "polars" or "arrow")."""
    if kind == "pandas":
        return dict(inputs)
    tables = {name: pa.Table.from_pandas(frame, preserve_index=False) for name, frame in inputs.items()}
    if kind == "arrow":
        return tables
    polars = import_extra("polars", "polars", "a compute function on Polars frames")
    return {name: polars.from_arrow(table) for name, table in tables.items()}


def run_sql(statement: str, inputs: Mapping[str, pd.DataFrame], start: datetime | None, end: datetime | None, *, group: str) -> pd.DataFrame:
    """Run a group's SQL compute in DuckDB over its inputs (a view per source name)."""
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        for name, frame in inputs.items():
            connection.register(name, frame)
        parameters = {k: v for k, v in {"start": start, "end": end}.items() if f"${k}" in statement}
        return connection.execute(statement, parameters).df()
    except duckdb.Error as error:
        raise ComputeError(f"feature group '{group}': its SQL compute failed in DuckDB: {error}") from None
    finally:
        connection.close()
