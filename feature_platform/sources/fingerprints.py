"""What has landed in a raw source's folder or S3 prefix, one fingerprint per day.

Raw files follow `feature_platform.sources.landing`' layout, `<root>/<source>/<YYYY-MM-DD>/*.parquet`,
where `root` is a local folder or `s3://bucket/prefix`. A day's fingerprint
hashes the names, sizes and modification stamps (S3: ETags) of its files, so a
new file, a replaced file and a removed file all change it. Sensors keep the
fingerprints in their cursor and launch runs for the days whose fingerprint changed.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from feature_platform.errors import import_extra


@dataclass(frozen=True)
class LandedFile:
    """One raw file: its day folder, name and a stamp that changes when its content does."""

    day: str
    name: str
    size: int
    stamp: str


def _is_day(name: str) -> bool:
    try:
        return date.fromisoformat(name).isoformat() == name
    except ValueError:
        return False


def _is_data_file(name: str) -> bool:
    """Parquet files only; writers' hidden or temporary files (`.x`, `_x`) are not data yet."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def list_landed(root: str, source: str) -> list[LandedFile]:
    """Every data file of `source` under `root` (a folder or `s3://bucket/prefix`)."""
    if root.startswith("s3://"):
        return _list_s3(root, source)
    base = Path(root) / source
    if not base.is_dir():
        return []
    files = []
    for folder in base.iterdir():
        if not folder.is_dir() or not _is_day(folder.name):
            continue
        for path in folder.iterdir():
            if path.is_file() and _is_data_file(path.name):
                stat = path.stat()
                files.append(LandedFile(folder.name, path.name, stat.st_size, str(stat.st_mtime_ns)))
    return files


def _list_s3(root: str, source: str) -> list[LandedFile]:
    boto3 = import_extra("boto3", "s3", "S3 landing folders")  # credentials and endpoint come from the environment

    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    base = f"{prefix.strip('/')}/{source}/" if prefix.strip("/") else f"{source}/"
    files = []
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=base):
        for item in page.get("Contents", []):
            day, _, name = item["Key"][len(base) :].partition("/")
            if _is_day(day) and "/" not in name and _is_data_file(name):
                files.append(LandedFile(day, name, int(item["Size"]), item["ETag"].strip('"')))
    return files


def day_fingerprints(files: Iterable[LandedFile]) -> dict[str, str]:
    """`{day: fingerprint}` over the files of each day."""
    by_day: dict[str, list[LandedFile]] = {}
    for file in files:
        by_day.setdefault(file.day, []).append(file)
    fingerprints = {}
    for day, day_files in by_day.items():
        digest = hashlib.sha256()
        for file in sorted(day_files, key=lambda f: f.name):
            digest.update(f"{file.name}\0{file.size}\0{file.stamp}\n".encode())
        fingerprints[day] = digest.hexdigest()[:16]
    return dict(sorted(fingerprints.items()))


def changed_days(seen: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Days that are new or whose fingerprint differs from `seen`, ascending."""
    return sorted(day for day, fingerprint in current.items() if seen.get(day) != fingerprint)


def load_cursor(cursor: str | None) -> dict[str, str]:
    return dict(json.loads(cursor)) if cursor else {}


def dump_cursor(fingerprints: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(fingerprints.items())), separators=(",", ":"))
