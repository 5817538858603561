"""Table maintenance: compact small files, vacuum old versions (never a protected one), index the current one.

Daily partition overwrites leave one or more small files per day and a
tombstone for every replaced file. `maintain_table` rewrites small files into
larger ones (`optimize.compact`) and deletes the files of versions older than
the retention, except the files of `protected_versions` (the Delta versions
training dataset manifests still read; deltalake's `keep_versions`), then
builds the join index of the version left (`join_index`), so the point-in-time
joins that follow are lookups.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import PostCommitHookProperties

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.offline.store import OfflineStore

DEFAULT_RETENTION = timedelta(days=7)
# Maintenance never deletes Delta log files: a protected version must stay loadable, not just its data files.
KEEP_LOGS = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)


@dataclass(frozen=True)
class MaintenanceResult:
    """What one maintenance pass did to a group's table."""

    group: str
    version_before: int
    version_after: int
    files_compacted: int
    files_written: int
    files_vacuumed: int
    protected_versions: tuple[int, ...]
    retention_hours: int
    join_index_rows: int | None  # None: a table it cannot index (remote)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def maintain_table(
    offline: OfflineStore,
    group: FeatureGroup,
    *,
    protected_versions: Iterable[int] = (),
    retention: timedelta = DEFAULT_RETENTION,
    compact: bool = True,
) -> MaintenanceResult | None:
    """Compact and vacuum `group`'s table, keeping every file of `protected_versions`, and index the
    version left; None if no table."""
    try:
        table = DeltaTable(offline.table_uri(group), storage_options=offline.storage_options or None)
    except TableNotFoundError:
        return None
    before = table.version()
    protected = tuple(sorted({int(v) for v in protected_versions if 0 <= int(v) <= before}))
    removed = added = 0
    if compact:
        metrics = table.optimize.compact(post_commithook_properties=KEEP_LOGS)
        removed, added = int(metrics.get("numFilesRemoved", 0)), int(metrics.get("numFilesAdded", 0))
        table = DeltaTable(offline.table_uri(group), storage_options=offline.storage_options or None)
    hours = int(retention.total_seconds() // 3600)
    vacuumed = table.vacuum(
        retention_hours=hours,
        dry_run=False,
        enforce_retention_duration=False,
        keep_versions=list(protected),
        post_commithook_properties=KEEP_LOGS,
    )
    indexed = offline.build_join_index(group)
    return MaintenanceResult(group.name, before, table.version(), removed, added, len(vacuumed), protected, hours, indexed)


def manifest_versions(manifests: Iterable[Mapping[str, Any]]) -> dict[str, set[int]]:
    """Delta versions per group that training dataset manifests reference.

    A manifest (see `training.py`) lists them as `{"group_versions": {"<group>": <version>, ...}}`.
    """
    versions: dict[str, set[int]] = {}
    for manifest in manifests:
        for group, version in (manifest.get("group_versions") or {}).items():
            if version is not None:
                versions.setdefault(group, set()).add(int(version))
    return versions

