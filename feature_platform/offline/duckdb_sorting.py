"""DuckDB connections for the big sorts of point-in-time joins, with bounded memory (they spill beyond it)."""

import os
import tempfile
from pathlib import Path

import duckdb

# DuckDB spills a sort beyond this; override with the variable.
MEMORY_ENV = "FEATURE_PLATFORM_DUCKDB_MEMORY"
DEFAULT_MEMORY_LIMIT = "512MB"


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh connection: closing it hands its sort memory back before the next group's join."""
    return duckdb.connect(config={
        "preserve_insertion_order": False,
        "memory_limit": os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_LIMIT),
        "temp_directory": str(Path(tempfile.gettempdir()) / "feature_platform_duckdb"),
    })


def quote(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'
