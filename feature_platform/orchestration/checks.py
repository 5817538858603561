"""Asset checks of feature groups: the contract and the group's rules, evaluated by the group's asset.

The asset validates each partition before committing it, so these checks are
declared as `check_specs` of the asset. A run can cover several partitions (a
backfill): there the asset logs one evaluation per partition and check, so the
UI shows every partition's status; a one-partition run yields them as results.
"""

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import dagster as dg
import pandas as pd

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.quality.gate import stretches
from feature_platform.quality.validation import CONTRACT, RuleResult, ValidationReport

CONTRACT_DESCRIPTION = "[ERROR] the group's contract: columns, dtypes, non-null keys and event times, unique rows"
SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}


def rule_check_specs(
    group: FeatureGroup, key: dg.AssetKey, partitions: dg.PartitionsDefinition | None
) -> list[dg.AssetCheckSpec]:
    """One check per rule plus the contract; ERROR checks are blocking."""
    specs = [dg.AssetCheckSpec(CONTRACT, asset=key, blocking=True, description=CONTRACT_DESCRIPTION, partitions_def=partitions)]
    for rule in group.rules:
        specs.append(
            dg.AssetCheckSpec(
                rule.name,
                asset=key,
                blocking=rule.severity == "ERROR",
                description=rule.summary(),
                partitions_def=partitions,
            )
        )
    return specs


def table_metadata(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """A small frame as table metadata (values as text, so any dtype renders)."""
    columns = [str(c) for c in frame.columns]
    records = [
        dg.TableRecord({c: "" if pd.isna(v) else str(v) for c, v in zip(columns, row)}) for row in frame.itertuples(index=False)
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns])
    return dg.MetadataValue.table(records, schema=schema)


def evaluation(key: dg.AssetKey, partition: str | None, result: RuleResult, *, blocking: bool) -> dg.AssetCheckEvaluation:
    """The check evaluation of one rule on one partition, with its failure count and failing-row sample."""
    metadata: dict[str, Any] = {"failure_count": result.failure_count, "rows_checked": result.rows}
    if result.detail:
        metadata["detail"] = result.detail
    if not result.sample.empty:
        metadata["failing_rows_sample"] = table_metadata(result.sample)
    description = (
        f"failed on {result.failure_count} of {result.rows} row(s)" + (f": {result.detail}" if result.detail else "")
        if not result.passed
        else f"passed on {result.rows} row(s)"
    )
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=result.rule,
        passed=result.passed,
        metadata=metadata,
        severity=SEVERITY[result.severity],
        description=description,
        blocking=blocking,
        partition=partition,
    )


def check_evaluations(
    group: FeatureGroup, key: dg.AssetKey, reports: Mapping[str | None, ValidationReport], selected: AbstractSet[dg.AssetCheckKey]
) -> list[dg.AssetCheckEvaluation]:
    """One evaluation per partition and selected check (the contract first, then the rules in order)."""
    blocking = {CONTRACT: True, **{r.name: r.severity == "ERROR" for r in group.rules}}
    evaluations = []
    for partition, report in reports.items():
        for result in report.results:
            if dg.AssetCheckKey(key, result.rule) in selected:
                evaluations.append(evaluation(key, partition, result, blocking=blocking[result.rule]))
    return evaluations


def report_checks(context: dg.AssetExecutionContext, evaluations: Sequence[dg.AssetCheckEvaluation]) -> list[dg.AssetCheckResult]:
    """Checks of a one-partition run as results for the asset to yield; those of a range run logged per partition.

    Results yielded by the asset are tied to its materialization, so they count for
    `AutomationCondition.all_deps_blocking_checks_passed()`; but in a range run a result
    would carry no partition, so there each partition's evaluation is logged instead.
    """
    if len(context.partition_keys if context.has_partition_key_range or context.has_partition_key else [None]) == 1:
        return [
            dg.AssetCheckResult(
                asset_key=e.asset_key, check_name=e.check_name, passed=e.passed, metadata=e.metadata, severity=e.severity, description=e.description
            )
            for e in evaluations
        ]
    for evaluation in evaluations:
        context.log_event(evaluation)
    return []


def blocked_message(group: FeatureGroup, reports: Mapping[str | None, ValidationReport], committed: Sequence[str]) -> str:
    """The run failure message: which partitions were blocked by which ERROR rules, and what was committed."""
    lines = [f"feature group '{group.name}': ERROR rules failed; the partitions below were NOT committed"]
    lines += [f"  {r.summary()}" for r in reports.values() if r.blocked]
    days = [p for p in committed if p != "all"]
    ranges = ", ".join(a if a == b else f"{a}..{b}" for a, b in stretches(days)) if days else "none"
    lines.append(f"committed partitions: {ranges}")
    return "\n".join(lines)
