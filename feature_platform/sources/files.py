"""Files by glob, local or on S3: Parquet, CSV or JSON lines, read where they are.

    customers = FileSource("customers", path="data/customers/*.csv")
    clicks = FileSource("clicks", path="s3://landing/clicks/{day}/*.jsonl", partitions=DailyPartitions(start="2024-05-01"))

With `{day}` in the path only the needed days' files are read (a day without a file
is missing); without it every matching file is read and the rows filtered by time.
The format comes from `format=` or the files' suffix (`.parquet`, `.csv`, `.json`/`.jsonl`).
"""

import fnmatch
import glob as globbing
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import ClassVar

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.json as pjson
import pyarrow.parquet as pq

from feature_platform.errors import DefinitionError, SourceError
from feature_platform.sources.existing import ExistingSource
from feature_platform.sources.landing import s3_filesystem
from feature_platform.sources.windows import days_label, needed_days

FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}


@dataclass(frozen=True)
class FileSource(ExistingSource):
    """The files matching `path` (a glob, local or `s3://`, `{day}` for one folder or name per day)."""

    _: KW_ONLY
    path: str = ""
    format: str | None = None
    kind: ClassVar[str] = "file"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise DefinitionError(f"{self.label}: give path, a glob such as data/orders/*.csv")
        if self.format is not None and self.format not in ("parquet", "csv", "json"):
            raise DefinitionError(f"{self.label}: format must be 'parquet', 'csv' or 'json', got {self.format!r}")
        if "{day}" in self.path and self.partitions is None:
            raise DefinitionError(f"{self.label}: a path with {{day}} needs daily partitions=DailyPartitions(...)")

    def where(self) -> str:
        return f"files {self.path}"

    def _matches(self, pattern: str) -> list[str]:
        remote = s3_filesystem(pattern)
        if remote is None:
            return sorted(globbing.glob(pattern, recursive=True))
        fs, bucket_path = remote
        fixed = bucket_path.split("*")[0].rsplit("/", 1)[0]
        infos = fs.get_file_info(pafs.FileSelector(fixed, recursive=True, allow_not_found=True))
        return sorted(f"s3://{i.path}" for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, bucket_path))

    def _read_file(self, path: str) -> pa.Table:
        suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
        kind = self.format or FORMATS.get(suffix)
        if kind is None:
            raise SourceError(f"{self.label}: cannot tell the format of {path}; give format='parquet', 'csv' or 'json'")
        remote = s3_filesystem(path)
        opened = remote[0].open_input_file(remote[1]) if remote else path
        try:
            if kind == "parquet":
                return pq.read_table(opened)
            if kind == "csv":
                return pcsv.read_csv(opened)
            return pjson.read_json(opened)
        except (pa.ArrowInvalid, OSError) as error:
            raise SourceError(f"{self.label}: cannot read {path} as {kind}: {error}") from None

    def read_window(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        if "{day}" in self.path and start is not None and end is not None:
            assert self.partitions is not None
            files, missing = [], []
            for day in needed_days(self.partitions, start, end):
                found = self._matches(self.path.replace("{day}", day.isoformat()))
                files += found
                if not found:
                    missing.append(day)
            if missing:
                raise SourceError(f"{self.label} has no file for {days_label(missing)} ({self.path}): land those days first")
        else:
            files = self._matches(self.path.replace("{day}", "*"))
            if not files:
                raise SourceError(f"{self.label}: no file matches {self.path}")
        tables = [self._read_file(f) for f in files]
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()
