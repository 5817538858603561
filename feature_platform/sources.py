"""Raw sources: the files feature groups are computed from.

A partitioned source keeps one folder of Parquet files per day,
`<root>/<source>/<YYYY-MM-DD>/*.parquet` (a landing layout that upstream
systems can write into); an unpartitioned one keeps `<root>/<source>/all/`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from feature_platform.concepts import DailyPartitions, check_name
from feature_platform.errors import DefinitionError


@dataclass(frozen=True)
class RawSource:
    """A named raw data set, daily partitioned or not.

    `produce(start, end) -> DataFrame`, when given, generates the rows of one
    partition (the demo's synthetic data); without it the files arrive from outside.
    """

    name: str
    partitions: DailyPartitions | None = field(default_factory=DailyPartitions)
    description: str = ""
    owner: str = ""
    produce: Callable[[datetime, datetime], pd.DataFrame] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_name("raw source", self.name)
        if self.partitions is not None and not isinstance(self.partitions, DailyPartitions):
            raise DefinitionError(f"raw source '{self.name}': partitions must be DailyPartitions(...) or None")


def _day_folder(root: str | Path, source: RawSource, day: date | None) -> Path:
    return Path(root) / source.name / (day.isoformat() if day is not None else "all")


def write_source(root: str | Path, source: RawSource, day: date | None, df: pd.DataFrame) -> Path:
    """Replace the files of one day (or of an unpartitioned source) with `df`; returns the file."""
    folder = _day_folder(root, source, day)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "part-0.parquet"
    temporary = folder / ".part-0.parquet.tmp"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), temporary)
    for stale in folder.glob("*.parquet"):
        if stale != target:
            stale.unlink()
    temporary.replace(target)
    return target


def source_files(root: str | Path, source: RawSource, day: date | None) -> list[Path]:
    """The Parquet files of one day (or of an unpartitioned source), sorted by name."""
    return sorted(_day_folder(root, source, day).glob("*.parquet"))


def read_source(root: str | Path, source: RawSource, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """All rows of the days `[start, end)` of a partitioned source, or of an unpartitioned one."""
    if source.partitions is None:
        files = source_files(root, source, None)
    else:
        if start is None or end is None:
            raise ValueError(f"raw source '{source.name}' is partitioned: give start and end")
        files = []
        day = start.date()
        while datetime(day.year, day.month, day.day, tzinfo=start.tzinfo) < end:
            files += source_files(root, source, day)
            day += timedelta(days=1)
    if not files:
        return pd.DataFrame()
    return pds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()

