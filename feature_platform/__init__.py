"""feature_platform: a feature store on Delta Lake and Redis, orchestrated by Dagster.

The library works without Dagster; `feature_platform.orchestration` is the Dagster layer.
"""

from feature_platform.definitions.aggregations import Aggregation, StreamFeatureGroup
from feature_platform.definitions.concepts import (
    DailyPartitions,
    Entity,
    Feature,
    FeatureGroup,
    FeatureView,
    OnDemandTransformation,
)
from feature_platform.definitions.rules import DriftSettings, Rule
from feature_platform.errors import (
    ArgumentError,
    ContractError,
    DefinitionError,
    EntityFrameError,
    FeaturePlatformError,
    FeatureReferenceError,
    QualityGateError,
    SourceError,
    StorageError,
)
from feature_platform.loaders import connect, list_views, load_features, load_training_dataset
from feature_platform.retrieval.datasets import TrainingDatasetDefinition
from feature_platform.retrieval.splits import RandomSplit, TimeSplit
from feature_platform.retrieval.training import TrainingDataset
from feature_platform.sources.kinds import AssetSource, FileSource, RawSource, SqlSource, TableSource
from feature_platform.store import FeatureStore

__all__ = [
    "Aggregation",
    "ArgumentError",
    "AssetSource",
    "FileSource",
    "SqlSource",
    "TableSource",
    "ContractError",
    "DailyPartitions",
    "DefinitionError",
    "DriftSettings",
    "Entity",
    "EntityFrameError",
    "Feature",
    "FeatureGroup",
    "FeaturePlatformError",
    "FeatureReferenceError",
    "FeatureStore",
    "FeatureView",
    "OnDemandTransformation",
    "QualityGateError",
    "RandomSplit",
    "RawSource",
    "SourceError",
    "StorageError",
    "StreamFeatureGroup",
    "TimeSplit",
    "TrainingDataset",
    "TrainingDatasetDefinition",
    "connect",
    "list_views",
    "load_features",
    "load_training_dataset",
    "Rule",
]
