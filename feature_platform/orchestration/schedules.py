"""A daily schedule per partitioned feature group."""

import dagster as dg

from feature_platform.concepts import FeatureGroup
from feature_platform.orchestration.assets import group_key


def group_job_name(group: FeatureGroup) -> str:
    return f"materialize_{group.name}"


def group_schedule(group: FeatureGroup) -> dg.ScheduleDefinition:
    """Materializes the group's newest partition once a day, after the day has closed."""
    job = dg.define_asset_job(group_job_name(group), selection=dg.AssetSelection.assets(group_key(group)))
    return dg.build_schedule_from_partitioned_job(job, name=f"{group.name}_daily")
