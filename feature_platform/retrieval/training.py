"""Training datasets: a view's point-in-time join over an entity/label frame, frozen and versioned.

Each version is a Delta table at `<offline_root>/<project>/_training/<name>/v<n>`
whose first commit carries the JSON manifest (view and version, the Delta
version of every group read, rows, split, schema, creation time) in its commit
metadata, so data and manifest land in one atomic commit. A rebuild re-runs the
join as of the recorded versions and must give the stored rows back.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from feature_platform.definitions.concepts import FeatureView, check_name
from feature_platform.definitions.pandas_types import table_to_pandas
from feature_platform.definitions.records import prefix_fingerprints, schema_fingerprint
from feature_platform.definitions.references import Catalog, ResolvedFeatures
from feature_platform.errors import ArgumentError, DefinitionError, EntityFrameError, FeaturePlatformError, FeatureReferenceError
from feature_platform.offline.storage import list_folders
from feature_platform.offline.store import OfflineStore
from feature_platform.retrieval.point_in_time import AsOf, get_historical_features
from feature_platform.retrieval.splits import Split, split_from_dict

ROW_COLUMN = "_row"
SPLIT_COLUMN = "_split"
MANIFEST_KEY = "feature_platform.training_manifest"
FORMATS = ("pandas", "arrow", "numpy", "torch")
# Integers a float holds exactly: below 2**53 in float64, 2**24 in float32.
FLOAT64_EXACT, FLOAT32_EXACT = 2**53, 2**24
WRITE_ATTEMPTS = 5
ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class TrainingDataset:
    """One stored version of a training dataset: where it is and its manifest."""

    name: str
    version: int
    uri: str
    manifest: dict[str, Any]

    @property
    def row_count(self) -> int:
        return int(self.manifest["row_count"])


def training_root(offline: OfflineStore) -> str:
    return f"{offline.root}/{offline.project}/_training"


def dataset_uri(offline: OfflineStore, name: str, version: int) -> str:
    return f"{training_root(offline)}/{name}/v{version}"


def create_training_dataset(
    catalog: Catalog,
    offline: OfflineStore,
    view: FeatureView | str,
    entity_df: pd.DataFrame,
    *,
    name: str | None = None,
    split: Split | None = None,
    description: str | None = None,
    label: str | None = None,
    timestamp_column: str = "event_time",
    full_feature_names: bool = False,
    as_of: AsOf = None,
    engine: str = "duckdb",
    spark: Any = None,
) -> TrainingDataset:
    """Join `view` onto `entity_df` as of each row's time and store it as the next version of `name`.

    `label` names the entity-frame column models learn (used by `format="numpy"`); `as_of`
    (a time, or Delta versions per group) reads the tables as they were then, as retrieval does.
    `engine="spark"` joins in Spark (`spark`: a SparkSession, else one from Spark's configuration)
    and has Spark write the dataset's files; the entity frame may then be a Spark DataFrame.

    >>> store.create_training_dataset("fraud_detection", labels, label="is_fraud", split=RandomSplit({"train": .8, "test": .2}))
    """
    view_definition = catalog.view(view.name if isinstance(view, FeatureView) else view)
    name = check_name("training dataset", name or view_definition.name)
    if engine not in ENGINES:
        raise ArgumentError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    entity_columns = [str(c) for c in entity_df.columns] if hasattr(entity_df, "columns") else []
    reserved = [c for c in (ROW_COLUMN, SPLIT_COLUMN) if c in entity_columns]
    if reserved:
        raise EntityFrameError(f"entity frame columns {reserved} are reserved by training datasets; rename them")
    if label is not None and label not in entity_columns:
        raise EntityFrameError(f"label column '{label}' is not in the entity frame")
    if split is not None and not hasattr(split, "assign"):
        raise DefinitionError(f"split must be RandomSplit(...) or TimeSplit(...), got {type(split).__name__}")
    if engine == "spark":
        from feature_platform.retrieval.spark_training import prepare_spark_dataset

        prepared = prepare_spark_dataset(
            catalog, offline, view_definition, entity_df, split=split, timestamp_column=timestamp_column,
            full_feature_names=full_feature_names, as_of=as_of, spark=spark,
        )
    else:
        prepared = _prepare_dataset(
            catalog, offline, view_definition, entity_df, split=split, timestamp_column=timestamp_column,
            full_feature_names=full_feature_names, as_of=as_of,
        )
    manifest = {
        "name": name,
        "description": description or "",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "view": {"name": view_definition.name, "version": view_definition.version},
        "features": prepared.resolved.output_names,
        "entity_columns": entity_columns,
        "timestamp_column": timestamp_column,
        "label": label,
        "full_feature_names": full_feature_names,
        "group_versions": prepared.versions,
        "groups": [
            {
                "name": s.group.name,
                "version": s.group.version,
                "delta_version": prepared.versions[s.group.name],
                "schema_fingerprint": schema_fingerprint(s.group),
            }
            for s in prepared.resolved.selections
        ],
        "row_count": prepared.row_count,
        "split": None if split is None else split.to_dict(),
        "split_counts": prepared.split_counts,
        "schema": [{"name": f.name, "type": str(f.type)} for f in prepared.schema if f.name != ROW_COLUMN],
        "engine": engine,
    }
    return _write_next_version(offline, name, prepared.write, manifest)


@dataclass(frozen=True)
class PreparedDataset:
    """A joined dataset ready to store: what the manifest records, and how to write it to a new table's URI."""

    versions: dict[str, int | None]
    resolved: ResolvedFeatures
    row_count: int
    split_counts: dict[str, int] | None
    schema: pa.Schema
    write: Callable[[str, CommitProperties], None]


def _prepare_dataset(
    catalog: Catalog,
    offline: OfflineStore,
    view: FeatureView,
    entity_df: pd.DataFrame,
    *,
    split: Split | None,
    timestamp_column: str,
    full_feature_names: bool,
    as_of: AsOf,
) -> PreparedDataset:
    """The DuckDB engine's join as an Arrow table, written with deltalake."""
    retrieval = get_historical_features(
        catalog, offline, entity_df, view,
        full_feature_names=full_feature_names, timestamp_column=timestamp_column, as_of=as_of,
    )
    rows = np.arange(len(entity_df), dtype=np.int64)
    table, split_counts = _dataset_table(retrieval.frame, rows, split, timestamp_column, _output_types(retrieval.resolved))
    options = offline.storage_options or None

    def write(uri: str, commit: CommitProperties) -> None:
        write_deltalake(uri, table, mode="error", storage_options=options, commit_properties=commit)

    return PreparedDataset(retrieval.versions, retrieval.resolved, table.num_rows, split_counts, table.schema, write)


def _output_types(resolved: ResolvedFeatures) -> dict[str, pa.DataType]:
    """The declared type of every output feature (a column of nulls must keep it)."""
    types = {o: s.group.feature(f).arrow_type for s in resolved.selections for f, o in zip(s.features, s.output_names)}
    return types | {o.name: o.arrow_type for t in resolved.on_demand for o in t.outputs}


def _dataset_table(
    frame: pd.DataFrame, rows: np.ndarray, split: Split | None, timestamp_column: str, types: Mapping[str, pa.DataType]
) -> tuple[pa.Table, dict[str, int] | None]:
    """The stored table: the joined frame, its entity row numbers and split labels (rows in no split dropped)."""
    try:
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise EntityFrameError(f"the entity frame cannot be stored as a table: {exc}") from None
    # Delta keeps microseconds: store what a reader will get back, and say so in the manifest's schema.
    fields = [f.with_type(types[f.name]) if f.name in types else _microsecond_field(f) for f in table.schema]
    table = table.cast(pa.schema(fields))
    table = table.append_column(ROW_COLUMN, pa.array(rows, pa.int64()))
    if split is None:
        return table, None
    labels = pa.array(split.assign(frame, timestamp_column), pa.string())
    table = table.append_column(SPLIT_COLUMN, labels).filter(pc.is_valid(labels))
    counts = {name: 0 for name in split.to_dict().get("fractions", split.to_dict().get("ranges", {}))}
    for entry in pc.value_counts(table.column(SPLIT_COLUMN)).to_pylist():
        counts[entry["values"]] = entry["counts"]
    return table, counts


def _microsecond_field(field: pa.Field) -> pa.Field:
    if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
        return field.with_type(pa.timestamp("us", tz=field.type.tz))
    return field


def _write_next_version(
    offline: OfflineStore, name: str, write: Callable[[str, CommitProperties], None], manifest: dict[str, Any]
) -> TrainingDataset:
    """Write the dataset as version max+1; a concurrent writer taking that number makes us take the next."""
    for _ in range(WRITE_ATTEMPTS):
        version = max(_versions(offline, name), default=0) + 1
        uri = dataset_uri(offline, name, version)
        manifest = {**manifest, "version": version}
        try:
            write(uri, CommitProperties(custom_metadata={MANIFEST_KEY: json.dumps(manifest, default=str)}))
        except Exception as exc:
            if "already exists" in str(exc).lower():
                continue
            raise
        return TrainingDataset(name, version, uri, manifest)
    raise FeaturePlatformError(f"training dataset '{name}': could not claim a new version after {WRITE_ATTEMPTS} attempts")


def _versions(offline: OfflineStore, name: str) -> list[int]:
    folders = list_folders(f"{training_root(offline)}/{name}", offline.storage_options)
    return sorted(int(f[1:]) for f in folders if f.startswith("v") and f[1:].isdigit())


def get_training_dataset(offline: OfflineStore, name: str, version: int | None = None) -> tuple[TrainingDataset, DeltaTable]:
    """The stored version (latest when None) and its Delta table; unknown names or versions raise."""
    versions = _versions(offline, name)
    if not versions:
        known = sorted({m["name"] for m in list_training_datasets(offline)})
        raise FeaturePlatformError(f"no training dataset '{name}'; stored datasets: {known}")
    version = versions[-1] if version is None else version
    uri = dataset_uri(offline, name, version)
    try:
        table = DeltaTable(uri, storage_options=offline.storage_options or None)
    except TableNotFoundError:
        raise FeaturePlatformError(f"training dataset '{name}' has no version {version}; versions: {versions}") from None
    first_commit = table.history()[-1]
    if MANIFEST_KEY not in first_commit:
        raise FeaturePlatformError(f"training dataset '{name}' v{version} at {uri} has no manifest")
    return TrainingDataset(name, version, uri, json.loads(first_commit[MANIFEST_KEY])), table


def list_training_datasets(offline: OfflineStore) -> list[dict[str, Any]]:
    """The manifest of every stored version, by name then version."""
    manifests = []
    for name in sorted(list_folders(training_root(offline), offline.storage_options)):
        for version in _versions(offline, name):
            manifests.append(get_training_dataset(offline, name, version)[0].manifest)
    return manifests


def _stored_table(table: DeltaTable, split: str | None, manifest: Mapping[str, Any]) -> pa.Table:
    data = table.to_pyarrow_table()
    data = data.sort_by(ROW_COLUMN).drop_columns([ROW_COLUMN])
    if split is None:
        return data
    known = list(manifest["split_counts"] or {})
    if split not in known:
        raise FeaturePlatformError(f"training dataset '{manifest['name']}' v{manifest['version']} has no split '{split}'; splits: {known}")
    return data.filter(pc.equal(data.column(SPLIT_COLUMN), split)).drop_columns([SPLIT_COLUMN])


def load_training_dataset(
    offline: OfflineStore,
    name: str,
    version: int | None = None,
    split: str | None = None,
    *,
    format: str = "pandas",
    label: str | None = None,
    batch_size: int = 256,
) -> Any:
    """A stored dataset in entity-frame row order: pandas, `pyarrow.Table`, numpy or a torch `DataLoader`.

    `format="numpy"` returns `(X, y)` when a label is named (here or at creation),
    else `X`: the view's features as a float matrix.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    dataset, table = get_training_dataset(offline, name, version)
    data = _stored_table(table, split, dataset.manifest)
    label = label or dataset.manifest["label"]
    if label is not None and label not in data.column_names:
        raise FeaturePlatformError(f"training dataset '{name}' has no label column '{label}'")
    if format == "arrow":
        return data
    if format == "pandas":
        return table_to_pandas(data)
    # numpy holds the features as float64, torch as float32: integers beyond their exact range are refused.
    exact = FLOAT64_EXACT if format == "numpy" else FLOAT32_EXACT
    features = _feature_matrix(data, dataset.manifest["features"], name, exact)
    target = None if label is None else _check_exact(data.column(label), name, label, exact).to_numpy(zero_copy_only=False)
    if format == "numpy":
        return features if target is None else (features, target)
    return _torch_loader(features, target, batch_size)


def _feature_matrix(data: pa.Table, features: list[str], name: str, exact: int) -> np.ndarray:
    """The features as one float matrix (missing values are NaN); non-numeric features are refused."""
    columns = []
    for feature in features:
        column = data.column(feature)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)):
            raise FeaturePlatformError(
                f"training dataset '{name}': feature '{feature}' is {column.type}, not numeric; "
                "load it with format='pandas' or 'arrow' and encode it first"
            )
        columns.append(_check_exact(column, name, feature, exact).cast(pa.float64()).to_numpy(zero_copy_only=False))
    return np.column_stack(columns) if columns and data.num_rows else np.empty((data.num_rows, len(features)))


def _check_exact(column: pa.ChunkedArray, name: str, feature: str, exact: int) -> pa.ChunkedArray:
    """`column` unchanged, unless it holds integers of magnitude `exact` or more (a float would round them)."""
    if pa.types.is_integer(column.type) and len(column) > column.null_count:
        bounds = pc.min_max(column).as_py()
        largest = max(abs(bounds["min"]), abs(bounds["max"]))
        if largest >= exact:
            raise FeaturePlatformError(
                f"training dataset '{name}': integer column '{feature}' holds values of magnitude up to {largest}, "
                f"which the float matrix cannot hold exactly (limit 2**{exact.bit_length() - 1}); "
                "load it with format='pandas' or 'arrow', where integers stay exact"
            )
    return column


def _torch_loader(features: np.ndarray, target: np.ndarray | None, batch_size: int) -> Any:
    try:
        import torch
        from torch.utils.data import DataLoader, TensorDataset
    except ImportError:
        raise ImportError("format='torch' needs PyTorch: pip install 'feature-platform[torch]' (or torch)") from None
    tensors = [torch.as_tensor(features, dtype=torch.float32)]
    if target is not None:
        tensors.append(torch.as_tensor(target.astype(np.float32)))
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=False)


def _recorded_versions(catalog: Catalog, offline: OfflineStore, manifest: Mapping[str, Any]) -> dict[str, int]:
    """The group versions a manifest read, each checked to be defined with the schema it had and still stored."""
    where = f"training dataset '{manifest['name']}' v{manifest['version']}"
    if "groups" not in manifest:
        raise FeaturePlatformError(f"{where} was built before manifests recorded group versions; it cannot be rebuilt exactly")
    pins = {}
    for recorded in manifest["groups"]:
        name, version, delta = recorded["name"], recorded["version"], recorded["delta_version"]
        try:
            group = catalog.group(name, version)
        except FeatureReferenceError:
            raise FeaturePlatformError(
                f"{where} read feature group '{name}' v{version}, which is neither defined nor in the registry"
            ) from None
        if recorded["schema_fingerprint"] not in prefix_fingerprints(group):
            raise FeaturePlatformError(
                f"{where} read feature group '{name}' v{version} with schema {recorded['schema_fingerprint']}; that version is "
                f"now defined with schema {schema_fingerprint(group)}, which does not extend it"
            )
        if delta is not None and not offline.exists(group):
            raise FeaturePlatformError(
                f"{where} read feature group '{name}' v{version} at Delta version {delta}, but its table "
                f"{offline.table_uri(group)} is gone (deleted when it was retired); it cannot be rebuilt"
            )
        pins[name] = version
    return pins


def rebuild_training_dataset(catalog: Catalog, offline: OfflineStore, name: str, version: int) -> pd.DataFrame:
    """Recompute version `version` from its manifest; equals `load_training_dataset(name, version)`."""
    dataset, table = get_training_dataset(offline, name, version)
    manifest = dataset.manifest
    view = catalog.view(manifest["view"]["name"])
    if view.version != manifest["view"]["version"]:
        raise FeaturePlatformError(
            f"training dataset '{name}' v{version} was built from view '{view.name}' version "
            f"{manifest['view']['version']}, the repository now defines version {view.version}"
        )
    pins = _recorded_versions(catalog, offline, manifest)
    stored = table.to_pyarrow_table(columns=[*manifest["entity_columns"], ROW_COLUMN]).sort_by(ROW_COLUMN)
    entity_df = table_to_pandas(stored.drop_columns([ROW_COLUMN]))
    retrieval = get_historical_features(
        catalog, offline, entity_df, view,
        full_feature_names=manifest["full_feature_names"], as_of=manifest["group_versions"],
        timestamp_column=manifest["timestamp_column"], group_versions=pins,
    )
    split = split_from_dict(manifest["split"])
    rebuilt, _ = _dataset_table(
        retrieval.frame, stored.column(ROW_COLUMN).to_numpy(), split, manifest["timestamp_column"], _output_types(retrieval.resolved)
    )
    schema = table.schema().to_arrow() if hasattr(table.schema(), "to_arrow") else table.schema().to_pyarrow()
    rebuilt = rebuilt.select(pa.schema(schema).names).cast(pa.schema(schema))
    return table_to_pandas(rebuilt.sort_by(ROW_COLUMN).drop_columns([ROW_COLUMN]))
