"""Dagster assets for raw sources and feature groups.

Keys: `["raw", source]` and `["features", group]`. A feature group asset runs
the group's compute function on its sources over the run's partition window
(a backfill run may cover many days) and replaces exactly those partitions
of the group's Delta table in one commit.
"""

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from feature_platform.concepts import DailyPartitions, FeatureGroup, FeatureView
from feature_platform.errors import ContractError, DefinitionError
from feature_platform.offline import WriteResult
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.sources import RawSource, read_source, write_source

BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)


def partitions_def(partitions: DailyPartitions | None) -> dg.DailyPartitionsDefinition | None:
    if partitions is None:
        return None
    end = partitions.end.isoformat() if partitions.end else None
    return dg.DailyPartitionsDefinition(start_date=partitions.start.isoformat(), end_date=end)


def group_key(group: FeatureGroup | str) -> dg.AssetKey:
    return dg.AssetKey(["features", group if isinstance(group, str) else group.name])


def source_key(source: RawSource | str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source if isinstance(source, str) else source.name])


def domain(group: FeatureGroup) -> str:
    """The asset group (feature domain) a feature group is shown under in the UI."""
    return group.tags.get("domain", "features")


def owners(owner: str) -> list[str]:
    if not owner:
        return []
    return [owner if owner.startswith("team:") or "@" in owner else f"team:{owner}"]


def run_window(context: dg.AssetExecutionContext) -> tuple[str, str, datetime, datetime]:
    """First and last partition key of the run and its UTC time window `[start, end)`."""
    keys = context.partition_keys
    window = context.partition_time_window
    return keys[0], keys[-1], window.start, window.end


def raw_source_asset(source: RawSource) -> dg.AssetsDefinition | dg.AssetSpec:
    """A materializable asset when the source can `produce` its data, else an external spec."""
    spec_args: dict[str, Any] = dict(
        key=source_key(source),
        description=source.description or None,
        group_name="raw",
        kinds={"parquet"},
        owners=owners(source.owner),
        partitions_def=partitions_def(source.partitions),
    )
    if source.produce is None:
        return dg.AssetSpec(**spec_args)

    @dg.asset(**spec_args, backfill_policy=BACKFILL_POLICY if source.partitions else None)
    def _raw(context: dg.AssetExecutionContext, feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        assert source.produce is not None
        rows = 0
        if source.partitions is None:
            frame = source.produce(None, None)
            write_source(feature_store.raw_path, source, None, frame)
            rows = len(frame)
        else:
            for key in context.partition_keys:
                start, end = DailyPartitions.window(key)
                frame = source.produce(start, end)
                write_source(feature_store.raw_path, source, start.date(), frame)
                rows += len(frame)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "root": feature_store.raw_path})

    return _raw


def _source_dep(group: FeatureGroup, source: RawSource) -> dg.AssetDep:
    if group.partitions is None and source.partitions is not None:
        raise DefinitionError(
            f"feature group '{group.name}' is not partitioned but its source '{source.name}' is; "
            "partition the group or read an unpartitioned source"
        )
    mapping = None
    if group.partitions is not None and source.partitions is not None:
        days = math.ceil(group.lookback / timedelta(days=1))
        mapping = dg.TimeWindowPartitionMapping(start_offset=-days, end_offset=0)
    return dg.AssetDep(source_key(source), partition_mapping=mapping)


def compute_frame(
    group: FeatureGroup, sources: Mapping[str, RawSource], raw_root: str, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """Run the group's compute function on its sources read over `[start - lookback, end)`."""
    assert group.compute is not None
    inputs = {}
    for name in group.sources:
        source = sources[name]
        if source.partitions is None:
            inputs[name] = read_source(raw_root, source)
        else:
            assert start is not None and end is not None
            inputs[name] = read_source(raw_root, source, start - group.lookback, end)
    frame = group.compute(inputs, start, end)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"feature group '{group.name}': compute returned {type(frame).__name__}, not a DataFrame")
    return frame


def materialization_metadata(group: FeatureGroup, result: WriteResult, frame: pd.DataFrame) -> dict[str, Any]:
    """Rows, Delta version, table URI, schema, a preview and per-feature statistics for the UI."""
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in group.schema if f.name != "_written_at"]
        ),
        "delta_version": result.version,
        "table_uri": dg.MetadataValue.path(result.uri),
        "partitions_written": result.partition_key or "all",
    }
    preview = frame.head(5).astype(object).where(frame.head(5).notna(), None)
    metadata["preview"] = dg.MetadataValue.md(_markdown(preview))
    for feature in group.features:
        column = frame[feature.name]
        metadata[f"null_fraction/{feature.name}"] = float(column.isna().mean()) if len(column) else 0.0
        if pa.types.is_integer(feature.arrow_type) or pa.types.is_floating(feature.arrow_type):
            mean = pd.to_numeric(column, errors="coerce").mean()
            metadata[f"mean/{feature.name}"] = float(mean) if pd.notna(mean) else float("nan")
    return metadata


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def feature_group_asset(
    group: FeatureGroup,
    *,
    groups: Sequence[FeatureGroup],
    views: Sequence[FeatureView],
    sources: Mapping[str, RawSource],
) -> dg.AssetsDefinition:
    """The partitioned asset that computes `group` and writes its Delta table."""
    if group.compute is None:
        raise DefinitionError(f"feature group '{group.name}' has no compute function to build an asset from")
    unknown = [s for s in group.sources if s not in sources]
    if unknown:
        raise DefinitionError(f"feature group '{group.name}': unknown sources {unknown}; known: {sorted(sources)}")

    @dg.asset(
        key=group_key(group),
        deps=[_source_dep(group, sources[s]) for s in group.sources],
        partitions_def=partitions_def(group.partitions),
        backfill_policy=BACKFILL_POLICY if group.partitions else None,
        group_name=domain(group),
        description=group.description or None,
        owners=owners(group.owner),
        tags={k: v for k, v in group.tags.items() if k != "domain"},
        kinds={"deltalake"},
        metadata={"feature_group_version": group.version, "join_keys": ", ".join(group.join_keys)},
    )
    def _group(context: dg.AssetExecutionContext, feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        store = feature_store.build_store(groups, views, list(sources.values()))
        commit = {"dagster_run_id": context.run.run_id}
        try:
            if group.partitions is None:
                frame = compute_frame(group, sources, feature_store.raw_path, None, None)
                result = store.offline.write_partition(group, None, frame, commit_metadata=commit)
            else:
                first, last, start, end = run_window(context)
                frame = compute_frame(group, sources, feature_store.raw_path, start, end)
                result = store.offline.write_partitions(group, first, last, frame, commit_metadata=commit)
        except ContractError as error:
            # Bad data stays bad on a retry: fail once, naming the rule, with nothing committed.
            raise dg.Failure(description=str(error), allow_retries=False) from error
        context.log.info(f"{group.name}: wrote {result.rows} rows as Delta version {result.version}")
        return dg.MaterializeResult(metadata=materialization_metadata(group, result, frame))

    return _group
