"""Dagster assets for training datasets: `["training", name]`, downstream of the raw labels and the view's groups."""

from collections.abc import Mapping, Sequence

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.definitions.references import Catalog
from feature_platform.errors import DefinitionError, DefinitionMismatchError
from feature_platform.orchestration.assets import group_key, owners, source_key
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.retrieval.datasets import TrainingDatasetDefinition
from feature_platform.sources.landing import RawSource


def training_key(definition: TrainingDatasetDefinition | str) -> dg.AssetKey:
    return dg.AssetKey(["training", definition if isinstance(definition, str) else definition.name])


def training_dataset_asset(
    definition: TrainingDatasetDefinition,
    *,
    groups: Sequence[FeatureGroup],
    views: Sequence[FeatureView],
    sources: Mapping[str, RawSource],
) -> dg.AssetsDefinition:
    """The asset that joins the view onto the source's labelled rows and stores a new dataset version."""
    catalog = Catalog(groups, views)
    if definition.source not in sources:
        raise DefinitionError(f"training dataset '{definition.name}': unknown raw source '{definition.source}'; known: {sorted(sources)}")
    view = catalog.view(definition.view)
    read_groups = [s.group for s in catalog.resolve_for_listing(view).selections]

    @dg.asset(
        key=training_key(definition),
        deps=[source_key(definition.source), *(group_key(g) for g in read_groups)],
        group_name="training",
        description=definition.description or f"Training dataset of view '{view.name}' over '{definition.source}'.",
        owners=owners(definition.owner or view.owner),
        kinds={"deltalake"},
        metadata={"view": view.name, "view_version": view.version, "label": definition.label or ""},
    )
    def _training_dataset(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource) -> dg.MaterializeResult:
        store = feature_platform_store.build_store(groups, views, list(sources.values()))
        try:
            store.require_applied(view.name, store.catalog.needs_full_names(view))
        except DefinitionMismatchError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        dataset = definition.build(store.catalog, store.offline, store.sources, feature_platform_store.raw_path)
        manifest = dataset.manifest
        context.log.info(f"training dataset {dataset.name} v{dataset.version}: {dataset.row_count} rows at {dataset.uri}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dataset.row_count,
                "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(c["name"], c["type"]) for c in manifest["schema"]]),
                "dataset_version": dataset.version,
                "table_uri": dg.MetadataValue.path(dataset.uri),
                "group_versions": dg.MetadataValue.json(manifest["group_versions"]),
                "split_counts": dg.MetadataValue.json(manifest["split_counts"] or {}),
            }
        )

    return _training_dataset
