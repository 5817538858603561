"""The maintenance job: compact and vacuum every feature group's table, weekly.

Versions referenced by training dataset manifests are protected; where the
manifests live (and how they are read) is the `protected_versions` hook, a
function from the configured store to `{group: {versions}}`.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.offline.maintenance import DEFAULT_RETENTION, maintain_table, manifest_versions
from feature_platform.orchestration.assets import group_key, versioned
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.orchestration.retries import TRANSIENT_RETRY
from feature_platform.store import FeatureStore

ProtectedVersions = Callable[[FeatureStore], Mapping[str, set[int]]]


def training_dataset_versions(store: FeatureStore) -> Mapping[str, set[int]]:
    """Versions of each group that the project's stored training datasets were built from."""
    return manifest_versions(store.list_training_datasets())


class MaintenanceConfig(dg.Config):
    retention_hours: int = int(DEFAULT_RETENTION.total_seconds() // 3600)
    compact: bool = True


def maintenance_job(
    groups: Sequence[FeatureGroup], *, protected_versions: ProtectedVersions = training_dataset_versions
) -> dg.JobDefinition:
    """One op per group: compact small files, vacuum versions older than the retention, keep protected ones."""

    def group_op(group: FeatureGroup) -> dg.OpDefinition:
        @dg.op(name="maintain_" + "_".join(versioned(group)), retry_policy=TRANSIENT_RETRY, tags={"feature_group": group.name})
        def _maintain(context: dg.OpExecutionContext, config: MaintenanceConfig, feature_platform_store: FeatureStoreResource) -> None:
            store = feature_platform_store.build_store(groups)
            protected = protected_versions(store).get(group.name, set())
            result = maintain_table(
                store.offline, group, protected_versions=protected,
                retention=timedelta(hours=config.retention_hours), compact=config.compact,
            )
            if result is None:
                context.log.info(f"{group.name}: no table yet, nothing to maintain")
                return
            context.log.info(f"{group.name}: {result.as_dict()}")
            # Shown on the feature group's asset page, next to its materializations.
            context.log_event(dg.AssetObservation(asset_key=group_key(group), metadata={"maintenance": result.as_dict()}))

        return _maintain

    ops = [group_op(g) for g in groups]

    @dg.job(name="maintain_feature_tables", description=__doc__.splitlines()[0], tags={"kind": "maintenance"})
    def _job() -> None:
        for op in ops:
            op()

    return _job


def maintenance_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Sundays at 03:00 UTC, away from the daily runs."""
    return dg.ScheduleDefinition(name="maintain_feature_tables_weekly", job=job, cron_schedule="0 3 * * 0", execution_timezone="UTC")
