"""The Dagster layer: one factory turns feature definitions into assets, checks and schedules.

Only this package imports `dagster`; the library works without it.
"""

import importlib.util
import warnings
from collections.abc import Sequence

from feature_platform.errors import import_extra

import_extra("dagster", "dagster", "the Dagster layer (feature_platform.orchestration)")

import dagster as dg  # noqa: E402

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.definitions.references import Catalog
from feature_platform.online.endpoint import check_environment
from feature_platform.orchestration.alerting import AlertSinksResource, alert_sensor
from feature_platform.orchestration.assets import feature_group_asset, group_key, raw_source_asset
from feature_platform.orchestration.automation import AUTOMATION_SENSOR, follow_feature_groups
from feature_platform.orchestration.drift import drift_asset
from feature_platform.orchestration.maintenance import maintenance_job, maintenance_schedule
from feature_platform.orchestration.online import online_sync_asset
from feature_platform.orchestration.resources import ALERTS_RESOURCE, STORE_RESOURCE, FeatureStoreResource
from feature_platform.orchestration.retries import TRANSIENT_RETRY, permanent_failures
from feature_platform.orchestration.schedules import group_schedule, source_schedule
from feature_platform.orchestration.sensors import landing_sensors
from feature_platform.orchestration.streaming import stream_asset_spec, stream_sensor
from feature_platform.orchestration.training import training_dataset_asset
from feature_platform.retrieval.datasets import TrainingDatasetDefinition
from feature_platform.sources.kinds import AssetSource, RawSource, Source

__all__ = [
    "ALERTS_RESOURCE",
    "AUTOMATION_SENSOR",
    "STORE_RESOURCE",
    "TRANSIENT_RETRY",
    "AlertSinksResource",
    "FeatureStoreResource",
    "alert_sensor",
    "build_definitions",
    "permanent_failures",
]


def build_definitions(
    groups: Sequence[FeatureGroup],
    views: Sequence[FeatureView] = (),
    sources: Sequence[Source] = (),
    training_datasets: Sequence[TrainingDatasetDefinition] = (),
    *,
    automation_sensor: bool = True,
) -> dg.Definitions:
    """Assets, checks, schedules and landing sensors for these definitions (resources come from `resources/`).

    The result merges into any code location with `dg.Definitions.merge`: its automation sensor
    targets only these assets (`automation_sensor=False` leaves it out) and its resource keys
    are `feature_platform_store` and `feature_platform_alerts`. In production (`FEATURE_PLATFORM_ENV`)
    with online groups and no Redis URL, loading fails here, at start-up.
    """
    Catalog(groups, views)  # fails early on clashing names or bad references
    if any(g.online and g.compute for g in groups):
        check_environment()
    by_name = {s.name: s for s in sources}
    assets = [raw_source_asset(s) for s in sources if not isinstance(s, AssetSource)]
    assets += [feature_group_asset(g, groups=groups, views=views, sources=by_name) for g in groups if g.compute]
    assets += [
        online_sync_asset(g, groups=groups, views=views, sources=sources) for g in groups if g.compute and g.online
    ]
    assets += [training_dataset_asset(t, groups=groups, views=views, sources=by_name) for t in training_datasets]
    drifting = [g for g in groups if g.compute and g.partitions is not None and g.drift is not None]
    if drifting and importlib.util.find_spec("evidently") is None:
        # Without the extra a drift asset could only fail; the pipeline runs and says what it left out.
        warnings.warn(f"drift monitoring of {[g.name for g in drifting]} is left out: pip install 'feature-platform[drift]'", stacklevel=2)
        drifting = []
    assets += [drift_asset(g) for g in drifting]
    schedules = [group_schedule(g) for g in groups if g.compute and g.partitions is not None]
    landing = [s for s in sources if isinstance(s, RawSource)]
    schedules += [source_schedule(s) for s in landing if s.produce is not None and s.partitions is not None]
    streams = [g for g in groups if isinstance(g, StreamFeatureGroup)]
    assets += [stream_asset_spec(g) for g in streams]
    maintenance = maintenance_job(groups)
    schedules.append(maintenance_schedule(maintenance))
    sensors = [*landing_sensors(landing, groups), *(stream_sensor(g) for g in streams)]
    defs = dg.Definitions(assets=assets, jobs=[maintenance], schedules=schedules, sensors=sensors)
    return follow_feature_groups(defs, [group_key(g) for g in groups if g.compute], sensor=automation_sensor)
