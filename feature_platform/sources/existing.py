"""The base of sources over data that already exists (SQL tables, files, Delta or Parquet tables).

Each kind says how to read the rows of a time window (pushing the filter down
where it can); the base keeps exactly `[start, end)` of the time column (as UTC),
and refuses a needed day without rows unless `allow_empty_days`: a missing day
is an error naming the source and the days, never an empty frame by accident.
"""

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import ClassVar

import pandas as pd

from feature_platform.definitions.concepts import DailyPartitions, check_name
from feature_platform.errors import DefinitionError, SourceError
from feature_platform.sources.windows import check_days, in_window, needed_days


@dataclass(frozen=True)
class ExistingSource:
    """A named source over existing data; daily `partitions` of its `time_column`, or None to read it whole."""

    name: str
    _: KW_ONLY
    partitions: DailyPartitions | None = None
    time_column: str = "event_time"
    allow_empty_days: bool = False
    description: str = ""
    owner: str = ""
    kind: ClassVar[str] = "source"

    def __post_init__(self) -> None:
        check_name(f"{self.kind} source", self.name)
        if self.partitions is not None and not isinstance(self.partitions, DailyPartitions):
            raise DefinitionError(f"{self.kind} source '{self.name}': partitions must be DailyPartitions(...) or None")
        check_name(f"{self.kind} source '{self.name}' time column", self.time_column)

    @property
    def label(self) -> str:
        return f"{self.kind} source '{self.name}'"

    def where(self) -> str:
        """Where the data is, for error messages (never a secret)."""
        raise NotImplementedError

    def read_window(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """Rows with `start <= time_column < end` (at least those), or every row when both are None."""
        raise NotImplementedError

    def read(self, raw_root: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """The rows of `[start, end)`, or all rows of an unpartitioned source (`raw_root` is for landing sources)."""
        if self.partitions is None or start is None or end is None:
            frame = self.read_window(None, None)
            if frame.empty and not self.allow_empty_days:
                raise SourceError(f"{self.label} has no rows ({self.where()}): load it first, or set allow_empty_days=True")
            return frame
        days = needed_days(self.partitions, start, end)
        if not days:
            raise SourceError(f"{self.label}: the days {start.date()}..{end.date()} are outside its partitions (from {self.partitions.start})")
        frame = in_window(self.read_window(start, end), self.time_column, start, end, source=self.name)
        if self.allow_empty_days:
            return frame
        return check_days(frame, self.time_column, days, kind=f"{self.kind} source", name=self.name, where=self.where())
