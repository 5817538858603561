"""Asset checks of feature groups: the contract and the group's rules, emitted by the group's asset.

The asset validates each partition before committing it, so these checks are
declared as `check_specs` of the asset and their results travel with its
materialization. A run can cover several partitions: each check reports once
per run, with a table of the partitions that failed and a sample of failing rows.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from feature_platform.concepts import FeatureGroup
from feature_platform.quality import CONTRACT, RuleResult, ValidationReport

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


def check_result(name: str, reports: Mapping[str | None, ValidationReport], severity: str) -> dg.AssetCheckResult:
    """The result of one check over the partitions of a run: passed only if every partition passed."""
    results: list[tuple[str | None, RuleResult]] = [(p, r.result(name)) for p, r in reports.items() if _has(r, name)]
    failed = [(p, r) for p, r in results if not r.passed]
    metadata: dict[str, Any] = {
        "partitions_checked": len(results),
        "rows_checked": sum(r.rows for _, r in results),
        "failure_count": sum(r.failure_count for _, r in failed),
        "failed_partitions": ", ".join(p or "all" for p, _ in failed) or "none",
    }
    if failed:
        metadata["failures"] = table_metadata(
            pd.DataFrame(
                [{"partition": p or "all", "failure_count": r.failure_count, "rows": r.rows, "detail": r.detail} for p, r in failed]
            )
        )
        sample = next((r.sample.assign(partition=p or "all") for p, r in failed if not r.sample.empty), None)
        if sample is not None:
            metadata["failing_rows_sample"] = table_metadata(sample)
    first = failed[0][1] if failed else None
    description = (
        f"failed on {metadata['failure_count']} row(s) in {metadata['failed_partitions']}"
        + (f": {first.detail}" if first is not None and first.detail else "")
        if failed
        else f"passed on {metadata['rows_checked']} row(s)"
    )
    return dg.AssetCheckResult(
        check_name=name, passed=not failed, severity=SEVERITY[severity], metadata=metadata, description=description
    )


def _has(report: ValidationReport, name: str) -> bool:
    return any(r.rule == name for r in report.results)


def check_results(group: FeatureGroup, reports: Mapping[str | None, ValidationReport]) -> list[dg.AssetCheckResult]:
    """Results of the contract and of every rule, in declaration order."""
    names: Sequence[tuple[str, str]] = [(CONTRACT, "ERROR"), *((r.name, r.severity) for r in group.rules)]
    reported = [(n, s) for n, s in names if any(_has(r, n) for r in reports.values())]
    return [check_result(n, reports, s) for n, s in reported]


def blocked_message(group: FeatureGroup, reports: Mapping[str | None, ValidationReport], committed: Sequence[str]) -> str:
    """The run failure message: which partitions were blocked by which ERROR rules, and what was committed."""
    lines = [f"feature group '{group.name}': ERROR rules failed; the partitions below were NOT committed"]
    lines += [f"  {r.summary()}" for r in reports.values() if r.blocked]
    lines.append(f"committed partitions: {', '.join(committed) if committed else 'none'}")
    return "\n".join(lines)
