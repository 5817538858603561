"""`FeatureStore`: the client for writes, reads, retrieval and discovery.

Built from arguments, or from a repository's `assets/` package and the
environment with `FeatureStore.from_repo()`. Pandas in and out; Arrow inside.
"""

import importlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from feature_platform.concepts import FeatureGroup, FeatureView, check_name
from feature_platform.offline import OfflineStore, WriteResult
from feature_platform.registry import Registry
from feature_platform.retrieval import get_historical_features
from feature_platform.splits import Split
from feature_platform.training import (
    TrainingDataset,
    create_training_dataset,
    list_training_datasets,
    load_training_dataset,
    rebuild_training_dataset,
)
from feature_platform.sources import RawSource

DEFAULT_HOME = ".feature_platform"


class FeatureStore:
    """The feature platform client for one project.

    >>> store = FeatureStore(groups=[user_stats], offline_root="/tmp/offline")
    >>> store.write_partition("user_stats", "2024-05-01", frame)
    """

    def __init__(
        self,
        groups: Sequence[FeatureGroup] = (),
        views: Sequence[FeatureView] = (),
        *,
        offline_root: str | Path = f"{DEFAULT_HOME}/offline",
        online_url: str | None = None,
        project: str = "default",
        sources: Sequence[RawSource] = (),
        storage_options: dict[str, str] | None = None,
        home: str | Path = DEFAULT_HOME,
    ) -> None:
        self.project = check_name("project", project)
        self.registry = Registry(groups, views)
        self.sources = {s.name: s for s in sources}
        self.offline = OfflineStore(str(offline_root), project=project, storage_options=storage_options)
        self.online_url = online_url
        self.home = Path(home)

    @classmethod
    def from_repo(cls, path: str | Path = ".") -> "FeatureStore":
        """The store of the repository at `path`: its `assets/` definitions, configured by the environment.

        Reads `FEATURE_PLATFORM_OFFLINE_ROOT` (default `<path>/.feature_platform/offline`),
        `FEATURE_PLATFORM_PROJECT` (default `default`) and `FEATURE_PLATFORM_REDIS_URL`
        (default: the embedded Redis server under `<path>/.feature_platform/redis`).
        """
        repo = Path(path).resolve()
        if str(repo) not in sys.path:
            sys.path.insert(0, str(repo))
        assets = importlib.import_module("assets")
        home = Path(os.environ.get("FEATURE_PLATFORM_HOME", repo / DEFAULT_HOME))
        return cls(
            groups=assets.feature_groups,
            views=assets.feature_views,
            sources=assets.raw_sources,
            offline_root=os.environ.get("FEATURE_PLATFORM_OFFLINE_ROOT", str(home / "offline")),
            online_url=os.environ.get("FEATURE_PLATFORM_REDIS_URL") or None,
            project=os.environ.get("FEATURE_PLATFORM_PROJECT", "default"),
            home=home,
        )

    # Definitions

    def list_groups(self) -> list[str]:
        return sorted(self.registry.groups)

    def list_views(self) -> list[str]:
        return sorted(self.registry.views)

    def group(self, name: str) -> FeatureGroup:
        return self.registry.group(name)

    def describe(self, group_name: str) -> dict[str, Any]:
        """A group's definition and storage state: schema, owner, tags, partitions, Delta version."""
        group = self.group(group_name)
        history = self.offline.history(group)
        return {
            "name": group.name,
            "version": group.version,
            "description": group.description,
            "owner": group.owner,
            "tags": dict(group.tags),
            "entities": [e.name for e in group.entities],
            "join_keys": group.join_keys,
            "event_time": group.event_time,
            "created_time": group.created_time,
            "ttl_seconds": group.ttl.total_seconds() if group.ttl else None,
            "online": group.online,
            "partitioned": group.partitions is not None,
            "partition_start": group.partitions.start.isoformat() if group.partitions else None,
            "features": [
                {"name": f.name, "dtype": str(f.arrow_type), "description": f.description} for f in group.features
            ],
            "rules": [rule.summary() for rule in group.rules],
            "table_uri": self.offline.table_uri(group),
            "delta_version": history[0]["version"] if history else None,
            "last_write": history[0]["timestamp"].isoformat() if history else None,
        }

    # Offline writes and reads

    def write_partition(
        self, group_name: str, partition_key: str | None, df: pd.DataFrame, *, commit_metadata: dict[str, str] | None = None
    ) -> WriteResult:
        """Replace one daily partition (or, for an unpartitioned group with `None`, the whole table)."""
        return self.offline.write_partition(self.group(group_name), partition_key, df, commit_metadata=commit_metadata)

    def ingest(self, group_name: str, df: pd.DataFrame, *, commit_metadata: dict[str, str] | None = None) -> WriteResult:
        """Append rows that may span partitions, checked against the group's contract first."""
        return self.offline.append(self.group(group_name), df, commit_metadata=commit_metadata)

    def read_group(
        self,
        group_name: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        as_of: int | datetime | str | None = None,
    ) -> pd.DataFrame:
        """Rows with `start <= event_time < end` as stored, optionally as of a Delta version or a time."""
        group = self.group(group_name)
        table = self.offline.read(group, start=start, end=end, as_of=as_of, columns=group.input_columns)
        return table.to_pandas()

    def history(self, group_name: str) -> list[dict[str, Any]]:
        """Delta versions of a group's table, newest first."""
        return self.offline.history(self.group(group_name))

    # Point-in-time retrieval and training datasets

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        features: "Sequence[str] | FeatureView | str",
        *,
        full_feature_names: bool = False,
        as_of: Any = None,
        timestamp_column: str = "event_time",
    ) -> pd.DataFrame:
        """Point-in-time join of `features` (references, a view or its name) onto the entity rows.

        >>> store.get_historical_features(entities, ["user_stats:txn_count"])
        """
        return get_historical_features(
            self.registry, self.offline, entity_df, features,
            full_feature_names=full_feature_names, as_of=as_of, timestamp_column=timestamp_column,
        ).frame

    def create_training_dataset(
        self,
        view: "FeatureView | str",
        entity_df: pd.DataFrame,
        *,
        name: str | None = None,
        split: Split | None = None,
        description: str | None = None,
        label: str | None = None,
        timestamp_column: str = "event_time",
        full_feature_names: bool = False,
    ) -> TrainingDataset:
        """Retrieve `view` for `entity_df` and store it as the next version of a training dataset.

        >>> store.create_training_dataset("fraud_detection", labels, label="is_fraud", split=RandomSplit({"train": .8, "test": .2}))
        """
        return create_training_dataset(
            self, view, entity_df, name=name, split=split, description=description, label=label,
            timestamp_column=timestamp_column, full_feature_names=full_feature_names,
        )

    def load_training_dataset(
        self,
        name: str,
        version: int | None = None,
        split: str | None = None,
        *,
        format: str = "pandas",
        label: str | None = None,
        batch_size: int = 256,
    ) -> Any:
        """A stored training dataset (latest version unless given) as pandas, arrow, numpy `(X, y)` or torch."""
        return load_training_dataset(self, name, version, split, format=format, label=label, batch_size=batch_size)

    def rebuild_training_dataset(self, name: str, version: int) -> pd.DataFrame:
        """Recompute a stored training dataset from the Delta versions its manifest recorded."""
        return rebuild_training_dataset(self, name, version)

    def list_training_datasets(self) -> list[dict[str, Any]]:
        """Manifests of every stored training dataset version, by name then version."""
        return list_training_datasets(self)
