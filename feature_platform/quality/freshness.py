"""Freshness of a daily feature group: is the newest partition as recent as its schedule allows?

The daily schedule materializes day `d` after it closes, at `d + 1 day`; the
group's `freshness` is how long that may take. So at time `now` the table must
hold the partition `(now - freshness).date() - 1 day`, or the group is stale.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.offline.store import OfflineStore


@dataclass(frozen=True)
class FreshnessStatus:
    """The newest stored partition of a group and the one its schedule expects by now."""

    group: str
    fresh: bool
    last_partition: str | None
    expected_partition: str | None
    checked_at: datetime

    def summary(self) -> str:
        if self.fresh:
            return f"feature group '{self.group}' is fresh (newest partition {self.last_partition})"
        return (
            f"feature group '{self.group}' is stale: newest partition {self.last_partition or 'none'}, "
            f"expected {self.expected_partition} by {self.checked_at.isoformat(timespec='minutes')}"
        )


def expected_partition(group: FeatureGroup, now: datetime) -> date | None:
    """The newest partition the schedule must have committed by `now` (None if nothing is due yet)."""
    if group.partitions is None or group.freshness is None:
        return None
    due = (now - group.freshness).date() - timedelta(days=1)
    if group.partitions.end is not None:
        due = min(due, group.partitions.end - timedelta(days=1))
    return due if due >= group.partitions.start else None


def check_freshness(offline: OfflineStore, group: FeatureGroup, now: datetime | None = None) -> FreshnessStatus | None:
    """The group's freshness at `now` (default: the current time); None when not watched or nothing is due yet."""
    now = now or datetime.now(timezone.utc)
    expected = expected_partition(group, now)
    if expected is None:
        return None
    days = offline.partitions(group)
    last = days[-1] if days else None
    return FreshnessStatus(
        group=group.name,
        fresh=last is not None and last >= expected,
        last_partition=last.isoformat() if last else None,
        expected_partition=expected.isoformat(),
        checked_at=now,
    )
