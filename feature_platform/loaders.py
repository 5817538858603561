"""Helpers for training scripts and notebooks: connect, list views, fetch features and datasets.

No Dagster involved. The store comes from the repository (its definitions
package, named in its `pyproject.toml`) and the environment, as `FeatureStore.from_repo` reads them.

    from feature_platform import load_training_dataset
    X, y = load_training_dataset("fraud_training", split="train", format="numpy")
"""

import os
from pathlib import Path
from typing import Any

import pandas as pd

from feature_platform.definitions.concepts import FeatureView
from feature_platform.store import FeatureStore

_stores: dict[Path, FeatureStore] = {}


def connect(repo: str | Path | None = None, *, refresh: bool = False) -> FeatureStore:
    """The store of the repository at `repo` (default `$FEATURE_PLATFORM_REPO`, else the working directory), cached."""
    path = Path(repo or os.environ.get("FEATURE_PLATFORM_REPO") or ".").resolve()
    if refresh or path not in _stores:
        _stores[path] = FeatureStore.from_repo(path)
    return _stores[path]


def list_views(repo: str | Path | None = None) -> list[dict[str, Any]]:
    """Every feature view with its version, description and output features (name, dtype, source)."""
    store = connect(repo)
    views = []
    for name in store.list_views():
        view = store.catalog.view(name)
        resolved = store.catalog.resolve_for_listing(view)
        features = [
            {"name": output, "dtype": str(s.group.feature(f).arrow_type), "source": f"{s.group.name}:{f}"}
            for s in resolved.selections for f, output in zip(s.features, s.output_names)
        ]
        features += [
            {"name": o.name, "dtype": str(o.arrow_type), "source": f"on-demand:{t.name}"} for t in view.on_demand for o in t.outputs
        ]
        views.append({"name": name, "version": view.version, "description": view.description, "features": features,
                      "join_keys": resolved.join_keys, "request_inputs": resolved.request_inputs})
    return views


def load_features(
    features: FeatureView | str | list[str],
    entity_df: pd.DataFrame,
    *,
    as_of: Any = None,
    full_feature_names: bool = False,
    timestamp_column: str = "event_time",
    repo: str | Path | None = None,
) -> pd.DataFrame:
    """Point-in-time features (a view, its name, or references) for the entity rows."""
    return connect(repo).get_historical_features(
        entity_df, features, as_of=as_of, full_feature_names=full_feature_names, timestamp_column=timestamp_column
    )


def load_training_dataset(
    name: str,
    version: int | None = None,
    split: str | None = None,
    *,
    format: str = "pandas",
    label: str | None = None,
    repo: str | Path | None = None,
) -> Any:
    """A stored training dataset: pandas, `pyarrow.Table`, numpy `(X, y)` or a torch `DataLoader`."""
    return connect(repo).load_training_dataset(name, version, split, format=format, label=label)
