"""Dagster assets for raw sources and feature groups.

Keys: `["raw", source]` and `["features", group]`. A feature group asset runs
the group's compute function on its sources over the run's partition window
(a backfill run may cover many days) and replaces exactly those partitions
of the group's Delta table in one commit.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from feature_platform.definitions.concepts import DailyPartitions, FeatureGroup, FeatureView
from feature_platform.definitions.records import group_record, schema_fingerprint
from feature_platform.errors import ComputeError, ContractError, DefinitionError
from feature_platform.offline.statistics import StatisticsStore, compute_statistics
from feature_platform.offline.store import WriteResult
from feature_platform.orchestration.checks import blocked_message, check_evaluations, evaluation, report_checks, rule_check_specs
from feature_platform.orchestration.metadata import statistics_metadata
from feature_platform.orchestration.resources import STORE_RESOURCE, FeatureStoreResource
from feature_platform.orchestration.retries import TRANSIENT_RETRY, describe, is_transient, permanent_failures, scoped
from feature_platform.quality.gate import GatedWrite, write_validated
from feature_platform.quality.validation import CONTRACT, RuleResult, to_frame
from feature_platform.orchestration.upstream import load_asset_source, upstream_key
from feature_platform.sources.frames import as_frames, run_sql, to_pandas
from feature_platform.sources.kinds import AssetSource, FileSource, Source, SqlSource, TableSource
from feature_platform.sources.landing import RawSource, write_source
from feature_platform.store import FeatureStore

BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
BACKFILL_TAG = "backfill_partitions_per_run"


def backfill_policy(group: FeatureGroup) -> dg.BackfillPolicy:
    """Partitions per backfill run: the tag `backfill_partitions_per_run`, else 31.

    Many days per run pay the run start-up, the lookback read and the Delta commit
    once per range instead of once per day (docs/benchmarks.md measures it).
    """
    per_run = group.tags.get(BACKFILL_TAG)
    if per_run is None:
        return BACKFILL_POLICY
    if not str(per_run).isdigit() or int(per_run) < 1:
        raise DefinitionError(f"'{group.name}': tag {BACKFILL_TAG} must be a positive integer, got {per_run!r}")
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=int(per_run))


def partitions_def(partitions: DailyPartitions | None) -> dg.DailyPartitionsDefinition | None:
    if partitions is None:
        return None
    end = partitions.end.isoformat() if partitions.end else None
    return dg.DailyPartitionsDefinition(start_date=partitions.start.isoformat(), end_date=end)


def versioned(group: FeatureGroup | str) -> list[str]:
    """A group's name in asset keys and job names: `[name]` for version 1, `[name, "v2"]` for later versions.

    Each version keeps its key, so versions defined side by side are separate assets and a bump never moves history.
    """
    if isinstance(group, str):
        return [group]
    return [group.name] if group.version == 1 else [group.name, f"v{group.version}"]


def group_key(group: FeatureGroup | str) -> dg.AssetKey:
    return dg.AssetKey(["features", *versioned(group)])


def source_key(source: RawSource | str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source if isinstance(source, str) else source.name])


def domain(group: FeatureGroup) -> str:
    """The asset group (feature domain) a feature group is shown under in the UI."""
    return group.tags.get("domain", "features")


def owners(owner: str) -> list[str]:
    if not owner:
        return []
    return [owner if owner.startswith("team:") or "@" in owner else f"team:{owner}"]


def require_applied(store: FeatureStore, group: FeatureGroup) -> None:
    """Fail the run at once (no retries) when the group's definition is not the applied one, or the registry is unreadable."""
    with permanent_failures():  # the messages name the group and version themselves
        store.registry.require_group(group)


def failure_scope(group: FeatureGroup, context: dg.AssetExecutionContext) -> str:
    """`feature group 'g', partitions first..last` (or `'g'` alone when unpartitioned), for failure messages."""
    if group.partitions is None:
        return f"feature group '{group.name}'"
    keys = context.partition_keys
    return f"feature group '{group.name}', partitions {keys[0]}..{keys[-1]}"


def run_window(context: dg.AssetExecutionContext) -> tuple[str, str, datetime, datetime]:
    """First and last partition key of the run and its UTC time window `[start, end)`."""
    keys = context.partition_keys
    window = context.partition_time_window
    return keys[0], keys[-1], window.start, window.end


def source_kinds(source: Source) -> set[str]:
    """The kind tags the UI shows on a source's asset."""
    if isinstance(source, TableSource):
        return {"deltalake" if source.format == "delta" else "parquet"}
    if isinstance(source, FileSource):
        return {source.format or "files"}
    return {"sql"} if isinstance(source, SqlSource) else {"parquet"}


def raw_source_asset(source: Source) -> dg.AssetsDefinition | dg.AssetSpec:
    """A materializable asset when a landing source can `produce` its data, else an external spec."""
    spec_args: dict[str, Any] = dict(
        key=source_key(source),
        description=source.description or None,
        group_name="raw",
        kinds=source_kinds(source),
        owners=owners(source.owner),
        partitions_def=partitions_def(source.partitions),
    )
    if not isinstance(source, RawSource) or source.produce is None:
        return dg.AssetSpec(**spec_args)

    @dg.asset(**spec_args, backfill_policy=BACKFILL_POLICY if source.partitions else None, retry_policy=TRANSIENT_RETRY)
    def _raw(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource) -> dg.MaterializeResult:
        assert source.produce is not None
        rows = 0
        if source.partitions is None:
            frame = source.produce(None, None)
            write_source(feature_platform_store.raw_path, source, None, frame)
            rows = len(frame)
        else:
            for key in context.partition_keys:
                start, end = DailyPartitions.window(key)
                frame = source.produce(start, end)
                write_source(feature_platform_store.raw_path, source, start.date(), frame)
                rows += len(frame)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "root": feature_platform_store.raw_path})

    return _raw


def _source_dep(group: FeatureGroup, source: Source) -> dg.AssetDep:
    if group.partitions is None and source.partitions is not None:
        raise DefinitionError(
            f"feature group '{group.name}' is not partitioned but its source '{source.name}' is; "
            "partition the group or read an unpartitioned source"
        )
    mapping = None
    if group.partitions is not None and source.partitions is not None:
        days = math.ceil(group.lookback / timedelta(days=1))
        mapping = dg.TimeWindowPartitionMapping(start_offset=-days, end_offset=0)
    key = upstream_key(source) if isinstance(source, AssetSource) else source_key(source)
    return dg.AssetDep(key, partition_mapping=mapping)


def compute_frame(
    group: FeatureGroup,
    sources: Mapping[str, Source],
    raw_root: str,
    start: datetime | None,
    end: datetime | None,
    loaded: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Run the group's compute (a function or SQL) on its sources read over `[start - lookback, end)`.

    `loaded` holds the frames of asset sources, which the Dagster run loads through their IO managers.
    """
    assert group.compute is not None
    inputs: dict[str, pd.DataFrame] = {}
    for name in group.sources:
        source = sources[name]
        if isinstance(source, AssetSource):
            inputs[name] = (loaded or {})[name]
        elif source.partitions is None:
            inputs[name] = source.read(raw_root)
        else:
            assert start is not None and end is not None
            inputs[name] = source.read(raw_root, start - group.lookback, end)
    if isinstance(group.compute, str):
        return run_sql(group.compute, inputs, start, end, group=group.name)
    try:
        frame = group.compute(as_frames(inputs, group.frames), start, end)
    except Exception as error:
        if is_transient(error):
            raise
        raise ComputeError(f"feature group '{group.name}': its compute function raised {describe(error)}") from error
    return to_pandas(frame, what=f"feature group '{group.name}': compute")


def materialization_metadata(
    group: FeatureGroup, results: Sequence[WriteResult], frame: pd.DataFrame, statistics: dict[str, Any] | None
) -> dict[str, Any]:
    """Rows, Delta version, table URI, schema, a preview and the statistics of the run's latest partition."""
    metadata: dict[str, Any] = {
        "dagster/row_count": sum(r.rows for r in results),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in group.schema if f.name != "_written_at"]
        ),
        "delta_version": max((r.version for r in results), default=-1),
        "table_uri": dg.MetadataValue.path(results[0].uri) if results else "",
        "partitions_written": ", ".join(r.partition_key or "all" for r in results) or "none",
    }
    preview = frame.head(5).astype(object).where(frame.head(5).notna(), None)
    metadata["preview"] = dg.MetadataValue.md(_markdown(preview))
    if statistics is not None:
        metadata.update(statistics_metadata(statistics))
    return metadata


def _covers(written: str, partition: str) -> bool:
    """Whether a written key (`day` or `first..last`) includes the partition `day`."""
    first, _, last = written.partition("..")
    return first <= partition <= (last or first)


def partition_materializations(
    group: FeatureGroup, key: dg.AssetKey, gated: GatedWrite, statistics: Mapping[str | None, dict[str, Any]]
) -> list[dg.AssetMaterialization]:
    """One materialization per committed partition, with its own rows, Delta version and statistics."""
    events = []
    for partition in gated.committed:
        assert partition is not None
        write = next(w for w in gated.writes if w.partition_key and _covers(w.partition_key, partition))
        part = WriteResult(group.name, gated.tables[partition].num_rows, write.version, write.uri, partition)
        preview = to_frame(gated.tables[partition].slice(0, 5))
        metadata = materialization_metadata(group, [part], preview, statistics[partition])
        events.append(dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata))
    return events


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
    sources: Mapping[str, Source],
) -> dg.AssetsDefinition:
    """The partitioned asset that computes `group` and writes its Delta table."""
    if group.compute is None:
        raise DefinitionError(f"feature group '{group.name}' has no compute function to build an asset from")
    unknown = [s for s in group.sources if s not in sources]
    if unknown:
        raise DefinitionError(f"feature group '{group.name}': unknown sources {unknown}; known: {sorted(sources)}")

    key = group_key(group)
    partitions = partitions_def(group.partitions)
    spec = dg.AssetSpec(
        key,
        deps=[_source_dep(group, sources[s]) for s in group.sources],
        group_name=domain(group),
        description=group.description or None,
        owners=owners(group.owner),
        tags={k: v for k, v in group.tags.items() if k != "domain"},
        kinds={"deltalake"},
        metadata={
            "feature_group_version": group.version,
            "schema_fingerprint": schema_fingerprint(group),
            "definition_fingerprint": group_record(group)["fingerprint"],
            "join_keys": ", ".join(group.join_keys),
        },
    )

    def materialize(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource) -> Iterator[Any]:
        store = feature_platform_store.build_store(groups, views, list(sources.values()))
        require_applied(store, group)
        commit = {"dagster_run_id": context.run.run_id}
        keys, start, end = None, None, None
        if group.partitions is not None:
            _, _, start, end = run_window(context)
            keys = list(context.partition_keys)
        loaded = {
            s.name: load_asset_source(context, s, partitions_def(s.partitions), start - group.lookback if start else None, end)
            for s in upstream
        }
        frame = compute_frame(group, sources, feature_platform_store.raw_path, start, end, loaded)
        try:
            gated = write_validated(store.offline, group, frame, keys, commit_metadata=commit)
        except ContractError as error:
            if dg.AssetCheckKey(key, CONTRACT) in context.selected_asset_check_keys:
                failed = RuleResult(CONTRACT, "ERROR", "the group's contract", False, len(frame), len(frame), str(error))
                yield from report_checks(context, [evaluation(key, p, failed, blocking=True) for p in keys or [None]])
            # Bad data stays bad on a retry: fail once, naming the rule, with nothing committed.
            raise dg.Failure(description=scoped(failure_scope(group, context), str(error)), allow_retries=False) from error
        statistics = {p: {**compute_statistics(group, to_frame(gated.tables[p])), "partition": p or "all"} for p in gated.committed}
        StatisticsStore(store.offline).write_many(group, statistics)
        latest = statistics[gated.committed[-1]] if gated.committed else None
        results = report_checks(context, check_evaluations(group, key, gated.reports, context.selected_asset_check_keys))
        if gated.blocked:
            # The run fails, so no MaterializeResult: each committed partition is reported on its own.
            yield from partition_materializations(group, key, gated, statistics)
            yield from results
            message = blocked_message(group, gated.reports, [p or "all" for p in gated.committed])
            context.log.error(message)
            blocked = ", ".join(p or "all" for p in gated.blocked)
            raise dg.Failure(description=message, metadata={"blocked_partitions": blocked}, allow_retries=False)
        rows = sum(w.rows for w in gated.writes)
        context.log.info(f"{group.name}: wrote {rows} rows in {len(gated.writes)} commit(s), Delta version {gated.writes[-1].version if gated.writes else '-'}")
        yield dg.MaterializeResult(asset_key=key, metadata=materialization_metadata(group, gated.writes, frame, latest), check_results=results)

    # A multi-asset only for `can_subset`: it makes check outputs optional, so a range run can log one
    # evaluation per partition and check instead of one partition-less result per run.
    asset_args: dict[str, Any] = dict(
        name=key.to_python_identifier(),
        specs=[spec],
        partitions_def=partitions,
        backfill_policy=backfill_policy(group) if group.partitions else None,
        retry_policy=TRANSIENT_RETRY,
        check_specs=rule_check_specs(group, key, partitions),
        can_subset=True,
    )
    upstream = [sources[n] for n in group.sources if isinstance(sources[n], AssetSource)]
    if not upstream:

        @dg.multi_asset(**asset_args)
        def _group(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource):
            with permanent_failures(failure_scope(group, context)):
                yield from materialize(context, feature_platform_store)

        return _group

    # Asset sources load through IO managers named by the sources: resources by key, not by parameter.
    @dg.multi_asset(**asset_args, required_resource_keys={STORE_RESOURCE, *(s.io_manager_key for s in upstream)})
    def _group_of_assets(context: dg.AssetExecutionContext):
        with permanent_failures(failure_scope(group, context)):
            yield from materialize(context, getattr(context.resources, STORE_RESOURCE))

    return _group_of_assets
