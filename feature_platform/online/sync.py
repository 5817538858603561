"""Copying the freshest offline rows into the online store, reading one partition at a time.

Partitions are read day by day and reduced to the latest row per entity as
they come, so memory is bounded by one partition plus the entities, and Redis
receives one row per entity; its non-regressing write makes order irrelevant.
"""

import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

import pyarrow as pa

from feature_platform.definitions.concepts import DailyPartitions, FeatureGroup
from feature_platform.definitions.contract import utc_timestamp
from feature_platform.errors import FeatureReferenceError
from feature_platform.online.store import OnlineStore, latest_per_entity


class PartitionedReader(Protocol):
    """What sync reads from: the offline store's partition list and windowed reads."""

    def partitions(self, group: FeatureGroup) -> list[date]: ...

    def read(self, group: FeatureGroup, *, start: datetime | None = None, end: datetime | None = None) -> pa.Table: ...


# Entities held in memory before a write; bounds memory by this, not by source rows.
FLUSH_ROWS = 1_000_000


@dataclass(frozen=True)
class SyncReport:
    """What one sync did: rows read, written (newer than stored) and skipped (older), and how long it took."""

    group: str
    version: int
    rows_read: int
    rows_written: int
    rows_skipped: int
    seconds: float
    partitions: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _days(offline: PartitionedReader, group: FeatureGroup, start: datetime | None, end: datetime | None) -> list[date]:
    days = offline.partitions(group)
    if start is not None:
        days = [d for d in days if d >= start.date()]
    if end is not None:
        days = [d for d in days if datetime(d.year, d.month, d.day, tzinfo=timezone.utc) < end]
    return days


def sync_group(
    offline: PartitionedReader,
    online: OnlineStore,
    group: FeatureGroup,
    *,
    partition_key: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> SyncReport:
    """Write the latest offline row per entity of `group` (in one partition, a window, or all) to Redis."""
    if not group.online:
        raise FeatureReferenceError(f"feature group '{group.name}' is not online (online=False); nothing to sync")
    began = time.perf_counter()
    lower = None if start is None else utc_timestamp(start).to_pydatetime()
    upper = None if end is None else utc_timestamp(end).to_pydatetime()
    if partition_key is not None:
        lower, upper = DailyPartitions.window(partition_key)
    read = written = partitions = 0
    if group.partitions is None:
        windows: list[tuple[datetime | None, datetime | None]] = [(lower, upper)]
    else:
        windows = []
        for day in _days(offline, group, lower, upper):
            day_start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            day_end = day_start + timedelta(days=1)
            windows.append((max(day_start, lower) if lower else day_start, min(day_end, upper) if upper else day_end))
    pending: pa.Table | None = None
    for window_start, window_end in windows:
        table = offline.read(group, start=window_start, end=window_end)
        read += table.num_rows
        partitions += 1
        # Only the latest row per entity across partitions needs to reach Redis.
        pending = latest_per_entity(group, table if pending is None else pa.concat_tables([pending, table]))
        if pending.num_rows >= FLUSH_ROWS:
            written += online.write(group, pending).written
            pending = None
    if pending is not None:
        written += online.write(group, pending).written
    return SyncReport(
        group=group.name,
        version=group.version,
        rows_read=read,
        rows_written=written,
        rows_skipped=read - written,
        seconds=round(time.perf_counter() - began, 3),
        partitions=partitions,
    )
