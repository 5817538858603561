"""feature_platform: a feature store on Delta Lake and Redis, orchestrated by Dagster.

The library works without Dagster; `feature_platform.orchestration` is the Dagster layer.
"""

from feature_platform.concepts import (
    DailyPartitions,
    Entity,
    Feature,
    FeatureGroup,
    FeatureView,
    OnDemandTransformation,
)
from feature_platform.errors import (
    ArgumentError,
    ContractError,
    DefinitionError,
    EntityFrameError,
    FeaturePlatformError,
    FeatureReferenceError,
    StorageError,
)
from feature_platform.sources import RawSource
from feature_platform.store import FeatureStore

__all__ = [
    "ArgumentError",
    "ContractError",
    "DailyPartitions",
    "DefinitionError",
    "Entity",
    "EntityFrameError",
    "Feature",
    "FeatureGroup",
    "FeaturePlatformError",
    "FeatureReferenceError",
    "FeatureStore",
    "FeatureView",
    "OnDemandTransformation",
    "RawSource",
    "StorageError",
]
