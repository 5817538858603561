"""Dagster assets that copy each online feature group into Redis: `["online", group]`.

Downstream of `["features", group]` with the same partitions: a run re-syncs its
partitions (see `online.sync`) and reports what it read, wrote and removed.
"""

from collections.abc import Sequence

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup, FeatureView
from feature_platform.orchestration.assets import (
    backfill_policy,
    domain,
    group_key,
    owners,
    partitions_def,
    require_applied,
    run_window,
    versioned,
)
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.sources.landing import RawSource


def online_key(group: FeatureGroup | str) -> dg.AssetKey:
    return dg.AssetKey(["online", *versioned(group)])


def online_sync_asset(
    group: FeatureGroup,
    *,
    groups: Sequence[FeatureGroup],
    views: Sequence[FeatureView],
    sources: Sequence[RawSource],
) -> dg.AssetsDefinition:
    """The asset that syncs `group`'s run partitions (or whole table) from Delta to Redis."""

    @dg.asset(
        key=online_key(group),
        deps=[group_key(group)],
        partitions_def=partitions_def(group.partitions),
        backfill_policy=backfill_policy(group) if group.partitions else None,
        group_name=domain(group),
        description=f"Latest values of '{group.name}' v{group.version} per entity in the Redis online store.",
        owners=owners(group.owner),
        kinds={"redis"},
        metadata={"feature_group_version": group.version},
    )
    def _online(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource) -> dg.MaterializeResult:
        store = feature_platform_store.build_store(groups, views, sources)
        require_applied(store, group)
        if group.partitions is None:
            report = store.sync_to_online(group.name, version=group.version)
        else:
            _, _, start, end = run_window(context)
            report = store.sync_to_online(group.name, start=start, end=end, version=group.version)
        context.log.info(
            f"{group.name}: {report.rows_read} rows read, {report.rows_written} values written to Redis "
            f"({report.entities_rederived} from other partitions), {report.rows_older_than_online} older than online, "
            f"{report.entities_removed} removed, in {report.seconds} s"
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows_written,
                "rows_read": report.rows_read,
                "rows_superseded": report.rows_superseded,
                "rows_written": report.rows_written,
                "rows_older_than_online": report.rows_older_than_online,
                "entities_rederived": report.entities_rederived,
                "entities_removed": report.entities_removed,
                "seconds": report.seconds,
                "partitions_synced": report.partitions,
                "key_prefix": store.online.prefix(group).decode(),
            }
        )

    return _online
