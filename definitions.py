"""The code location: the demo repository's definitions, composed."""

import dagster as dg

import assets
import resources
import sensors
from feature_platform.orchestration import build_definitions

defs = dg.Definitions.merge(
    build_definitions(assets.feature_groups, assets.feature_views, assets.raw_sources, assets.training_datasets),
    dg.Definitions(resources=resources.resources, sensors=sensors.sensors),
)
