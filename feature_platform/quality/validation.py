"""Validation of a feature group's rows: the contract's verdict, then each of the group's rules with Pandera.

`validate(group, frame)` checks one partition and returns a result per rule
(passed, failure count, a sample of failing rows) instead of raising, so the
caller decides: `ERROR` failures block the commit, `WARN` ones are recorded.
The frame is conformed to the group's schema first (the contract check of
`feature_platform.definitions.contract`), so rules see exactly the rows that would be stored.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.definitions.contract import conform
from feature_platform.definitions.rules import Rule, Severity
from feature_platform.errors import ContractError

if TYPE_CHECKING:
    import pandera.pandas as pdx

CONTRACT = "contract"
CONTRACT_DESCRIPTION = "columns, dtypes, non-null keys and event times, events inside the partitions, unique (keys, event time, created time)"
SAMPLE_ROWS = 5
# Arrow to pandas without losing nullability: ints and bools with nulls stay ints and bools.
PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.string(): pd.StringDtype("pyarrow"),
}


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one partition."""

    rule: str
    severity: Severity
    description: str
    passed: bool
    failure_count: int
    rows: int
    detail: str = ""
    sample: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)


@dataclass(frozen=True)
class ValidationReport:
    """The results of every rule (the contract first) on one partition of a group."""

    group: str
    partition: str | None
    rows: int
    results: tuple[RuleResult, ...]

    @property
    def errors(self) -> list[RuleResult]:
        """Failed ERROR rules: the partition must not be committed."""
        return [r for r in self.results if not r.passed and r.severity == "ERROR"]

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed and r.severity == "WARN"]

    @property
    def blocked(self) -> bool:
        return bool(self.errors)

    def result(self, rule: str) -> RuleResult:
        for result in self.results:
            if result.rule == rule:
                return result
        raise KeyError(rule)

    def summary(self) -> str:
        """One line naming the failed rules, e.g. for a run failure message."""
        where = f"feature group '{self.group}'" + (f", partition {self.partition}" if self.partition else "")
        failed = [r for r in self.results if not r.passed]
        if not failed:
            return f"{where}: all {len(self.results)} rules passed on {self.rows} rows"
        parts = [f"{r.rule} [{r.severity}] failed on {r.failure_count} of {r.rows} rows" + (f" ({r.detail})" if r.detail else "") for r in failed]
        return f"{where}: " + "; ".join(parts)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas with nullable ints, bools and strings (what rules see)."""
    return table.to_pandas(types_mapper=PANDAS_TYPES.get)


def rule_check(rule: Rule) -> "pdx.Check":
    """The Pandera check of a rule; it returns a boolean per row (nulls skipped) or one boolean."""
    import pandera.pandas as pdx  # imported on first use: it costs a second of start-up

    options = rule.options
    common = {"name": rule.name, "error": rule.description or rule.summary()}
    if rule.kind == "in_range":
        low, high = options["min"], options["max"]
        if low is not None and high is not None:
            return pdx.Check.in_range(low, high, **common)
        return pdx.Check.ge(low, **common) if low is not None else pdx.Check.le(high, **common)
    if rule.kind == "allowed_values":
        return pdx.Check.isin(list(options["values"]), **common)
    if rule.kind == "max_null_fraction":
        fraction = options["fraction"]
        return pdx.Check(lambda s: len(s) == 0 or bool(s.isna().mean() <= fraction), ignore_na=False, **common)
    assert rule.function is not None
    return pdx.Check(rule.function, ignore_na=False, **common)


def _sample(group: FeatureGroup, frame: pd.DataFrame, index: pd.Index, column: str | None) -> pd.DataFrame:
    columns = [*group.join_keys, group.event_time]
    if column is not None and column not in columns:
        columns.append(column)
    elif column is None:
        columns = [c for c in group.input_columns if c in frame.columns]
    return frame.loc[index[:SAMPLE_ROWS], columns].reset_index(drop=True)


def _rule_result(group: FeatureGroup, rule: Rule, frame: pd.DataFrame) -> RuleResult:
    target = frame if rule.column is None else frame[rule.column]
    try:
        output = rule_check(rule)(target).check_output
    except Exception as exc:  # a user's custom check must not crash the run without a result
        return RuleResult(rule.name, rule.severity, rule.description, False, len(frame), len(frame), f"check raised {type(exc).__name__}: {exc}")
    if isinstance(output, pd.DataFrame):
        output = output.all(axis=1)
    if isinstance(output, pd.Series):
        values = output.to_numpy(dtype=bool, na_value=False)
        index = output.index[~values]
        return RuleResult(rule.name, rule.severity, rule.description, not len(index), len(index), len(frame), "", _sample(group, frame, index, rule.column))
    if isinstance(output, (bool, np.bool_)):
        if rule.kind == "max_null_fraction":
            nulls = frame.index[frame[rule.column].isna().to_numpy()]
            detail = f"null fraction {len(nulls) / max(len(frame), 1):.4f} > {rule.options['fraction']}"
            failed = pd.Index([]) if output else nulls
            return RuleResult(rule.name, rule.severity, rule.description, bool(output), len(failed), len(frame), "" if output else detail, _sample(group, frame, failed, rule.column))
        return RuleResult(rule.name, rule.severity, rule.description, bool(output), 0 if output else len(frame), len(frame))
    return RuleResult(rule.name, rule.severity, rule.description, False, len(frame), len(frame), f"check returned {type(output).__name__}, not booleans")


def validate_table(group: FeatureGroup, table: pa.Table, *, partition: str | None = None) -> ValidationReport:
    """Validate rows already conformed to the group's schema (e.g. one partition of a write)."""
    frame = to_frame(table).reset_index(drop=True)
    # The rows were conformed, so they passed the contract; a frame that breaks it never gets here (see `validate`).
    results = [RuleResult(CONTRACT, "ERROR", CONTRACT_DESCRIPTION, True, 0, len(frame))]
    results += [_rule_result(group, rule, frame) for rule in group.rules]
    return ValidationReport(group.name, partition, len(frame), tuple(results))


def validate(
    group: FeatureGroup,
    frame: "pd.DataFrame | pa.Table",
    *,
    partition: str | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> ValidationReport:
    """Validate a frame the way a write would: contract first, then every rule.

    A frame that breaks the contract gets one failed `contract` result naming the rule.

    >>> report = validate(user_stats, frame, partition="2024-05-01")
    >>> [r.rule for r in report.errors]
    """
    if isinstance(frame, pd.DataFrame):
        frame = frame.reset_index(drop=True)
    try:
        table = conform(group, frame, window=window, written_at=datetime.now(timezone.utc))
    except ContractError as exc:
        rows = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
        failed = RuleResult(CONTRACT, "ERROR", CONTRACT_DESCRIPTION, False, rows, rows, str(exc))
        return ValidationReport(group.name, partition, rows, (failed,))
    return validate_table(group, table, partition=partition)


def split_by_partition(table: pa.Table, keys: Sequence[str]) -> dict[str, pa.Table]:
    """The rows of each partition key `YYYY-MM-DD` of a conformed table (empty tables for days without rows)."""
    days = table.column("_partition")
    if len(keys) == 1 and table.num_rows and pc.min_max(days).as_py() == {"min": date.fromisoformat(keys[0]), "max": date.fromisoformat(keys[0])}:
        return {keys[0]: table}  # one day, all its rows: nothing to filter
    # Comparing dates, not formatted strings: formatting each row's day cost most of a gated write.
    return {key: table.filter(pc.equal(days, pa.scalar(date.fromisoformat(key), pa.date32()))) for key in keys}
