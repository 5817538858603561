"""Daily schedules: each partitioned feature group (and each raw source Dagster produces) runs its newest day.

A group's job selects the group's asset, which brings its asset checks along;
drift, online sync and other downstream assets follow by declarative
automation (see `automation.py`). Raw sources run at 00:15 UTC, feature groups
at 01:00 UTC, so a day's raw data has landed before its features are computed.
Schedules start stopped; turn them on in the UI (the instance keeps the state).
(`build_schedule_from_partitioned_job` calls a deprecated Dagster API, hence our own.)
"""

from datetime import datetime, timedelta

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.orchestration.assets import group_key, source_key, versioned
from feature_platform.orchestration.retries import TRANSIENT_RETRY
from feature_platform.sources.landing import RawSource

GROUP_CRON = "0 1 * * *"
SOURCE_CRON = "15 0 * * *"


def group_job_name(group: FeatureGroup) -> str:
    return "materialize_" + "_".join(versioned(group))


def closed_day(scheduled: datetime) -> str:
    """The partition key of the day before the tick (UTC): the newest day that has closed."""
    return (scheduled - timedelta(days=1)).date().isoformat()


def _daily(name: str, cron: str, job: object, first_day: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, cron_schedule=cron, execution_timezone="UTC", job=job)  # type: ignore[arg-type]
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        day = closed_day(context.scheduled_execution_time)
        if day < first_day:
            return dg.SkipReason(f"{day} is before the first partition {first_day}")
        return dg.RunRequest(run_key=f"{name}:{day}", partition_key=day)

    return _schedule


def group_schedule(group: FeatureGroup) -> dg.ScheduleDefinition:
    """Materializes the group's newest partition daily at 01:00 UTC, after the day has closed."""
    assert group.partitions is not None
    job = dg.define_asset_job(
        group_job_name(group),
        selection=dg.AssetSelection.assets(group_key(group)),
        description=f"Computes feature group '{group.name}' and runs its checks.",
        op_retry_policy=TRANSIENT_RETRY,
        tags={"feature_group": group.name},
    )
    return _daily(f"{group.name}_daily", GROUP_CRON, job, group.partitions.start.isoformat())


def source_schedule(source: RawSource) -> dg.ScheduleDefinition:
    """Produces a raw source's newest partition daily at 00:15 UTC (sources Dagster generates)."""
    assert source.partitions is not None
    job = dg.define_asset_job(f"produce_{source.name}", selection=dg.AssetSelection.assets(source_key(source)))
    return _daily(f"{source.name}_daily", SOURCE_CRON, job, source.partitions.start.isoformat())
