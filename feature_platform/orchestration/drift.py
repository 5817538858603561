"""The drift asset of a feature group: `["drift", group]`, one Evidently comparison per partition.

An asset rather than a check on the feature asset: its metadata (per-feature
scores, drifted share) is plotted over partitions, its HTML report is an
artifact of its own, and it can be recomputed (e.g. after pinning a new
baseline) without touching the feature table. Its `drift` check fails, with the
group's drift severity (WARN by default), when the drifted share exceeds the limit.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.errors import DefinitionError
from feature_platform.orchestration.assets import (
    backfill_policy,
    domain,
    group_key,
    owners,
    partitions_def,
    require_applied,
    versioned,
)
from feature_platform.orchestration.checks import SEVERITY, report_checks, table_metadata
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.quality.drift import DriftResult, check_partition

DRIFT_CHECK = "drift"


def drift_key(group: FeatureGroup | str) -> dg.AssetKey:
    return dg.AssetKey(["drift", *versioned(group)])


def drift_metadata(result: DriftResult) -> dict[str, Any]:
    """Numeric metadata of one partition's drift (plotted over partitions) and the report link."""
    metadata: dict[str, Any] = {
        "partition": result.partition,
        "status": result.status,
        "drifted_share": float(result.drifted_share),
        "drifted_features": len(result.drifted_features),
        "current_rows": result.current_rows,
        "reference_rows": result.reference_rows,
        "reference": " .. ".join(result.reference) if result.reference else "",
    }
    if result.reason:
        metadata["skip_reason"] = result.reason
    for feature in result.features:
        metadata[f"drift_score/{feature.feature}"] = float(feature.score)
    if result.features:
        metadata["features"] = table_metadata(
            pd.DataFrame(
                [{"feature": f.feature, "method": f.method, "score": f"{f.score:.4g}", "threshold": f.threshold, "drifted": f.drifted} for f in result.features]
            )
        )
    if result.report_path:
        metadata["report"] = dg.MetadataValue.url(Path(result.report_path).resolve().as_uri())
        metadata["report_path"] = dg.MetadataValue.path(result.report_path)
    return metadata


def drift_evaluation(group: FeatureGroup, key: dg.AssetKey, result: DriftResult) -> dg.AssetCheckEvaluation:
    """The `drift` check of one partition: fails when its drifted share exceeds the group's limit."""
    assert group.drift is not None
    metadata: dict[str, Any] = {
        "status": result.status,
        "drifted_share": float(result.drifted_share),
        "max_drifted_share": group.drift.max_drifted_share,
        "drifted_features": ", ".join(result.drifted_features) or "none",
    }
    if result.reason:
        metadata["skip_reason"] = result.reason
    if result.report_path:
        metadata["report_path"] = dg.MetadataValue.path(result.report_path)
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=DRIFT_CHECK,
        passed=not result.alarm,
        metadata=metadata,
        severity=SEVERITY[group.drift.severity],
        description=result.summary(),
        blocking=False,
        partition=result.partition,
    )


def drift_asset(group: FeatureGroup) -> dg.AssetsDefinition:
    """The partitioned drift asset of a group with drift settings."""
    if group.drift is None or group.partitions is None:
        raise DefinitionError(f"feature group '{group.name}': a drift asset needs daily partitions and drift settings")
    key = drift_key(group)
    partitions = partitions_def(group.partitions)
    settings = group.drift

    spec = dg.AssetSpec(
        key,
        deps=[group_key(group)],
        group_name=domain(group),
        description=f"Drift of '{group.name}' per partition against "
        + (f"the baseline {settings.baseline[0]}..{settings.baseline[1]}" if settings.baseline else f"the previous {settings.reference_partitions} partitions")
        + " (Evidently data drift preset).",
        owners=owners(group.owner),
        kinds={"evidently"},
    )
    check = dg.AssetCheckSpec(
        DRIFT_CHECK,
        asset=key,
        blocking=False,
        description=f"[{settings.severity}] drifted share of features <= {settings.max_drifted_share}",
        partitions_def=partitions,
    )

    # One materialization and one check evaluation per partition (not one for the run's range),
    # so each carries its own numbers; `can_subset` makes the per-run outputs optional.
    @dg.multi_asset(
        name=key.to_python_identifier(),
        specs=[spec],
        partitions_def=partitions,
        backfill_policy=backfill_policy(group),
        check_specs=[check],
        can_subset=True,
    )
    def _drift(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource):
        store = feature_platform_store.build_store([group])
        require_applied(store, group)
        evaluate = dg.AssetCheckKey(key, DRIFT_CHECK) in context.selected_asset_check_keys
        results = [check_partition(store.offline, group, p, reports_home=feature_platform_store.home) for p in context.partition_keys]
        for result in results:
            context.log.info(result.summary())
        if len(results) == 1:
            checks = report_checks(context, [drift_evaluation(group, key, results[0])] if evaluate else [])
            yield dg.MaterializeResult(asset_key=key, metadata=drift_metadata(results[0]), check_results=checks)
            return
        for result in results:
            yield dg.AssetMaterialization(asset_key=key, partition=result.partition, metadata=drift_metadata(result))
        report_checks(context, [drift_evaluation(group, key, r) for r in results] if evaluate else [])

    return _drift
