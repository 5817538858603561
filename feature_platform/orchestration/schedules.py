"""Daily schedules: each partitioned feature group (and each raw source Dagster produces) runs its newest day.

A group's job selects the group's asset, which brings its asset checks along;
drift, online sync and other downstream assets follow by declarative
automation (see `automation.py`). Raw sources run at 00:15 UTC, feature groups
at 01:00 UTC, so a day's raw data has landed before its features are computed.
Schedules start stopped; turn them on in the UI (the state is kept by the instance).
"""

import dagster as dg

from feature_platform.concepts import FeatureGroup
from feature_platform.orchestration.assets import group_key, source_key
from feature_platform.orchestration.retries import TRANSIENT_RETRY
from feature_platform.sources import RawSource


def group_job_name(group: FeatureGroup) -> str:
    return f"materialize_{group.name}"


def group_schedule(group: FeatureGroup) -> dg.ScheduleDefinition:
    """Materializes the group's newest partition daily at 01:00 UTC, after the day has closed."""
    job = dg.define_asset_job(
        group_job_name(group),
        selection=dg.AssetSelection.assets(group_key(group)),
        description=f"Computes feature group '{group.name}' and runs its checks.",
        op_retry_policy=TRANSIENT_RETRY,
        tags={"feature_group": group.name},
    )
    return dg.build_schedule_from_partitioned_job(
        job, name=f"{group.name}_daily", hour_of_day=1, minute_of_hour=0
    )


def source_schedule(source: RawSource) -> dg.ScheduleDefinition:
    """Produces a raw source's newest partition daily at 00:15 UTC (sources Dagster generates)."""
    job = dg.define_asset_job(f"produce_{source.name}", selection=dg.AssetSelection.assets(source_key(source)))
    return dg.build_schedule_from_partitioned_job(job, name=f"{source.name}_daily", hour_of_day=0, minute_of_hour=15)
