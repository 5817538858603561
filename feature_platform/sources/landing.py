"""Raw sources: the files feature groups are computed from.

A partitioned source keeps one folder of Parquet files per day,
`<root>/<source>/<YYYY-MM-DD>/*.parquet` (a landing layout that upstream
systems can write into); an unpartitioned one keeps `<root>/<source>/all/`.
`root` is a local folder or `s3://bucket/prefix` (credentials and endpoint
from the environment, as for the offline store).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from feature_platform.definitions.concepts import DailyPartitions, check_name
from feature_platform.errors import DefinitionError, SourceError
from feature_platform.sources.windows import missing_days_error, needed_days


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

    def read(self, raw_root: str | Path, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """The landed rows of `[start, end)` (all of an unpartitioned source): see `read_source`."""
        return read_source(raw_root, self, start, end)


def _day_folder(root: str | Path, source: RawSource, day: date | None) -> Path:
    return Path(root) / source.name / (day.isoformat() if day is not None else "all")


def s3_filesystem(root: str | Path) -> tuple[pafs.FileSystem, str] | None:
    """The S3 filesystem and bucket path of an `s3://` root, else None."""
    if not str(root).startswith("s3://"):
        return None
    bucket_path = str(root).removeprefix("s3://").rstrip("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options = {"endpoint_override": endpoint} if endpoint else {}
    return pafs.S3FileSystem(region=region, **options), bucket_path


def write_source(root: str | Path, source: RawSource, day: date | None, df: pd.DataFrame) -> str:
    """Replace the files of one day (or of an unpartitioned source) with `df`; returns the file."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    remote = s3_filesystem(root)
    if remote is not None:
        fs, base = remote
        folder = f"{base}/{source.name}/{day.isoformat() if day is not None else 'all'}"
        target = f"{folder}/part-0.parquet"
        pq.write_table(table, target, filesystem=fs)  # an S3 object appears whole or not at all
        for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
            if info.path.endswith(".parquet") and info.path != target:
                fs.delete_file(info.path)
        return f"s3://{target}"
    folder = _day_folder(root, source, day)
    folder.mkdir(parents=True, exist_ok=True)
    target_path = folder / "part-0.parquet"
    temporary = folder / ".part-0.parquet.tmp"
    pq.write_table(table, temporary)
    for stale in folder.glob("*.parquet"):
        if stale != target_path:
            stale.unlink()
    temporary.replace(target_path)
    return str(target_path)


def source_files(root: str | Path, source: RawSource, day: date | None) -> list[str]:
    """The Parquet files of one day (or of an unpartitioned source), sorted by name."""
    remote = s3_filesystem(root)
    if remote is None:
        return [str(p) for p in sorted(_day_folder(root, source, day).glob("*.parquet"))]
    fs, base = remote
    folder = f"{base}/{source.name}/{day.isoformat() if day is not None else 'all'}"
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    names = [i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")]
    return [f"s3://{n}" for n in sorted(n for n in names if not n.rsplit("/", 1)[-1].startswith((".", "_")))]


def read_source(root: str | Path, source: RawSource, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """All rows of the days `[start, end)` of a partitioned source, or of an unpartitioned one.

    Every day from the source's first partition on must have landed: a missing one is a `SourceError`.
    """
    fix = f"materialize raw/{source.name} for them, or land their Parquet files, before what reads it"
    if source.partitions is None:
        files = source_files(root, source, None)
        if not files:
            raise SourceError(f"raw source '{source.name}' has no data ({_day_folder(root, source, None)}): {fix}")
    else:
        if start is None or end is None:
            raise ValueError(f"raw source '{source.name}' is partitioned: give start and end")
        files, missing = [], []
        for day in needed_days(source.partitions, start, end):
            found = source_files(root, source, day)
            files += found
            if not found:
                missing.append(day)
        if missing:
            raise missing_days_error("raw source", source.name, missing, f"no Parquet files under {Path(str(root)) / source.name}/<day>/", fix)
        if not files:
            raise SourceError(f"raw source '{source.name}': the days {start.date()}..{end.date()} are outside its partitions (from {source.partitions.start})")
    remote = s3_filesystem(root)
    if remote is not None:
        return pds.dataset([f.removeprefix("s3://") for f in files], format="parquet", filesystem=remote[0]).to_table().to_pandas()
    return pds.dataset(files, format="parquet").to_table().to_pandas()

