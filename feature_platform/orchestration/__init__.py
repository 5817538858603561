"""The Dagster layer: one factory turns feature definitions into assets, checks and schedules.

Only this package imports `dagster`; the library works without it.
"""

from collections.abc import Sequence

import dagster as dg

from feature_platform.concepts import FeatureGroup, FeatureView
from feature_platform.datasets import TrainingDatasetDefinition
from feature_platform.orchestration.assets import feature_group_asset, raw_source_asset
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.orchestration.schedules import group_schedule
from feature_platform.orchestration.training import training_dataset_asset
from feature_platform.registry import Registry
from feature_platform.sources import RawSource

__all__ = ["FeatureStoreResource", "build_definitions"]


def build_definitions(
    groups: Sequence[FeatureGroup],
    views: Sequence[FeatureView] = (),
    sources: Sequence[RawSource] = (),
    training_datasets: Sequence[TrainingDatasetDefinition] = (),
) -> dg.Definitions:
    """Assets, checks and schedules for these definitions (resources come from `resources/`)."""
    Registry(groups, views)  # fails early on clashing names or bad references
    by_name = {s.name: s for s in sources}
    assets = [raw_source_asset(s) for s in sources]
    assets += [feature_group_asset(g, groups=groups, views=views, sources=by_name) for g in groups if g.compute]
    assets += [training_dataset_asset(t, groups=groups, views=views, sources=by_name) for t in training_datasets]
    schedules = [group_schedule(g) for g in groups if g.compute and g.partitions is not None]
    return dg.Definitions(assets=assets, schedules=schedules)
