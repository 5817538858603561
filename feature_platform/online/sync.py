"""Copying the offline store into the online store, so online equals historical retrieval at now.

Partitions are read day by day and reduced to the latest row per entity as
they come, so memory is bounded by one partition plus the entities. The days a
sync covers whole are re-synced: the values they provided online are replaced
by what they hold now, and entities they no longer hold get their latest row
from the other partitions, or are deleted (see `online.lineage`). Values from
elsewhere (a later partition, a push ahead of the offline store) are replaced
only by newer ones, so the order of syncs does not matter.
"""

import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.definitions.concepts import DailyPartitions, FeatureGroup
from feature_platform.definitions.contract import utc_timestamp
from feature_platform.errors import FeatureReferenceError
from feature_platform.online import lineage
from feature_platform.online.store import OnlineStore, WriteCount, latest_per_entity, now_micros


class PartitionedReader(Protocol):
    """What sync reads from: the offline store's partition list and windowed reads."""

    def partitions(self, group: FeatureGroup) -> list[date]: ...

    def read(self, group: FeatureGroup, *, start: datetime | None = None, end: datetime | None = None) -> pa.Table: ...


# Entities held in memory before a write; bounds memory by this, not by source rows.
FLUSH_ROWS = 1_000_000


@dataclass(frozen=True)
class SyncReport:
    """What one sync did.

    `rows_read` offline rows were read; `rows_superseded` of them were not offered
    because a later row of the same entity was read too; `rows_written` entity
    values were written (`entities_rederived` of them taken from other partitions
    for entities the synced ones no longer hold); `rows_older_than_online` were
    not written because Redis holds a newer value; `entities_removed` online values
    were deleted because the offline store no longer has the entity.
    """

    group: str
    version: int
    rows_read: int
    rows_superseded: int
    rows_written: int
    rows_older_than_online: int
    entities_rederived: int
    entities_removed: int
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


def resynced_sources(group: FeatureGroup, lower: datetime | None, upper: datetime | None) -> tuple[int, int] | None:
    """The sources a sync of `[lower, upper)` re-syncs: the days it covers whole (or the whole table)."""
    if group.partitions is None:
        return (lineage.TABLE, lineage.TABLE) if lower is None and upper is None else None
    first = lineage.FIRST_DAY
    if lower is not None:
        first = lineage.day_number(lower) + (0 if lower == _midnight(lower) else 1)
    last = lineage.LAST_DAY if upper is None else lineage.day_number(upper) - 1
    return (first, last) if first <= last else None


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def sync_group(
    offline: PartitionedReader,
    online: OnlineStore,
    group: FeatureGroup,
    *,
    partition_key: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> SyncReport:
    """Make the online values of `group` match the offline store for one partition, a window, or all."""
    if not group.online:
        raise FeatureReferenceError(f"feature group '{group.name}' is not online (online=False); nothing to sync")
    began = time.perf_counter()
    lower = None if start is None else utc_timestamp(start).to_pydatetime()
    upper = None if end is None else utc_timestamp(end).to_pydatetime()
    if partition_key is not None:
        lower, upper = DailyPartitions.window(partition_key)
    sources = resynced_sources(group, lower, upper)
    resync = None if sources is None else lineage.Resync(*sources, read_at_us=now_micros())
    windows = _windows(offline, group, lower, upper)
    read = 0
    whole: pa.Table | None = None  # latest rows of the re-synced days
    partial: pa.Table | None = None  # latest rows of days the window covers in part
    counts = WriteCount(0, 0)
    offered: set[bytes] = set()
    for window_start, window_end in windows:
        table = offline.read(group, start=window_start, end=window_end)
        read += table.num_rows
        if resync is not None and _covered(group, resync, window_start):
            whole = latest_per_entity(group, table if whole is None else pa.concat_tables([whole, table]))
            if whole.num_rows >= FLUSH_ROWS:
                counts += online.write(group, whole, resync=resync)
                offered.update(online.entity_members(group, whole))
                whole = None
        else:
            partial = latest_per_entity(group, table if partial is None else pa.concat_tables([partial, table]))
    if whole is not None:
        counts += online.write(group, whole, resync=resync)
        offered.update(online.entity_members(group, whole))
    superseded = read - counts.rows - (0 if partial is None else partial.num_rows)
    rederived = 0
    if resync is not None:
        orphans = set(online.sources_in(group, resync.first, resync.last)) - offered
        if orphans:
            elsewhere = _latest_elsewhere(offline, online, group, orphans, resync)
            rederived_count = online.write(group, elsewhere, resync=resync)
            rederived = rederived_count.written
            counts += WriteCount(0, rederived_count.written, rederived_count.older, 0)
            gone = sorted(orphans - set(online.entity_members(group, elsewhere)))
            counts += online.remove(group, gone, resync)
    if partial is not None:
        counts += online.write(group, partial)
    return SyncReport(
        group=group.name,
        version=group.version,
        rows_read=read,
        rows_superseded=superseded,
        rows_written=counts.written,
        rows_older_than_online=counts.older,
        entities_rederived=rederived,
        entities_removed=counts.removed,
        seconds=round(time.perf_counter() - began, 3),
        partitions=len(windows),
    )


def _windows(
    offline: PartitionedReader, group: FeatureGroup, lower: datetime | None, upper: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """The read windows of a sync: one per day holding rows (clipped to the bounds), or one for the table."""
    if group.partitions is None:
        return [(lower, upper)]
    windows: list[tuple[datetime | None, datetime | None]] = []
    for day in _days(offline, group, lower, upper):
        day_start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        day_end = day_start + timedelta(days=1)
        windows.append((max(day_start, lower) if lower else day_start, min(day_end, upper) if upper else day_end))
    return windows


def _covered(group: FeatureGroup, resync: lineage.Resync, window_start: datetime | None) -> bool:
    """Whether a read window is a whole re-synced day (or the whole table)."""
    if group.partitions is None or window_start is None:
        return True
    return window_start == _midnight(window_start) and resync.first <= lineage.day_number(window_start) <= resync.last


def _latest_elsewhere(
    offline: PartitionedReader, online: OnlineStore, group: FeatureGroup, members: set[bytes], resync: lineage.Resync
) -> pa.Table:
    """The latest row of each of these entities (index members) in the partitions outside the re-synced ones."""
    schema = pa.schema([group.schema.field(n) for n in [*group.input_columns, "_written_at"]])
    latest = schema.empty_table()
    if group.partitions is None:
        return latest
    keys = [lineage.member_key_values(m, online.cluster) for m in members]
    types = group.key_types
    for day in offline.partitions(group):
        if resync.first <= lineage.day_number(day) <= resync.last:
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        table = offline.read(group, start=start, end=start + timedelta(days=1))
        for position, name in enumerate(group.join_keys):
            arrow = types[name]
            if pa.types.is_integer(arrow) or pa.types.is_string(arrow) or pa.types.is_boolean(arrow):
                wanted = pa.array(sorted({k[position] for k in keys}), type=arrow)
                table = table.filter(pc.is_in(table.column(name), value_set=wanted))
        if table.num_rows == 0:
            continue
        exact = pa.array([m in members for m in online.entity_members(group, table)])
        latest = latest_per_entity(group, pa.concat_tables([latest, table.filter(exact)]))
    return latest
