"""An existing Delta or Parquet table, read in place (nothing is copied), like Feast's "query existing data".

    events = TableSource("events", uri="s3://lake/events", format="delta", time_column="ts",
                         partitions=DailyPartitions(start="2024-01-01"))

The time filter is pushed down to the scan (Delta's and Parquet's statistics skip
the files outside the window). S3 credentials and endpoint come from the environment.
"""

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import ClassVar

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from feature_platform.errors import DefinitionError, SourceError
from feature_platform.sources.existing import ExistingSource
from feature_platform.sources.landing import s3_filesystem
from feature_platform.sources.windows import utc


@dataclass(frozen=True)
class TableSource(ExistingSource):
    """The Delta table (`format="delta"`) or Parquet dataset (`"parquet"`, a folder, hive-partitioned or not) at `uri`."""

    _: KW_ONLY
    uri: str = ""
    format: str = "delta"
    kind: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.uri:
            raise DefinitionError(f"{self.label}: give uri, the table's folder or s3:// prefix")
        if self.format not in ("delta", "parquet"):
            raise DefinitionError(f"{self.label}: format must be 'delta' or 'parquet', got {self.format!r}")

    def where(self) -> str:
        return f"{self.format} table {self.uri}"

    def _dataset(self) -> pds.Dataset:
        try:
            if self.format == "delta":
                return DeltaTable(self.uri).to_pyarrow_dataset()  # delta-rs reads AWS_* from the environment
            remote = s3_filesystem(self.uri)
            if remote is not None:
                return pds.dataset(remote[1], format="parquet", partitioning="hive", filesystem=remote[0])
            return pds.dataset(self.uri, format="parquet", partitioning="hive")
        except TableNotFoundError:
            raise SourceError(f"{self.label}: there is no Delta table at {self.uri}") from None
        except (DeltaError, OSError, pa.ArrowInvalid) as error:
            raise SourceError(f"{self.label}: cannot open {self.where()}: {str(error).splitlines()[0]}") from None

    def read_window(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        dataset = self._dataset()
        if start is None or end is None:
            return dataset.to_table().to_pandas()
        if self.time_column not in dataset.schema.names:
            raise SourceError(f"{self.label} has no time column '{self.time_column}'; columns: {dataset.schema.names}")
        kind = dataset.schema.field(self.time_column).type
        if pa.types.is_timestamp(kind) and kind.tz is None:
            low, high = utc(start).replace(tzinfo=None), utc(end).replace(tzinfo=None)  # naive times are UTC
        else:
            low, high = utc(start), utc(end)
        column = pds.field(self.time_column)
        condition = (column >= pa.scalar(low, type=kind)) & (column < pa.scalar(high, type=kind)) if pa.types.is_timestamp(kind) else None
        return dataset.to_table(filter=condition).to_pandas()
