"""Validation of one partition: the contract's verdict, then each rule with its results."""

import pandas as pd
import pytest

from feature_platform import DailyPartitions, Feature, FeatureGroup
from feature_platform.definitions.rules import Rule
from feature_platform.quality.validation import validate
from tests.quality_fixtures import user


def stats_group(*rules: Rule) -> FeatureGroup:
    return FeatureGroup(
        "stats",
        entities=[user],
        features=[Feature("amount", "float64"), Feature("segment", "string"), Feature("count", "int64")],
        partitions=DailyPartitions("2024-05-01"),
        rules=rules,
    )


def frame(amount: list, segment: list, count: list) -> pd.DataFrame:
    """Rows of users 1..n on 2024-05-01, indexed from 100 on purpose (validation must not depend on the index)."""
    n = len(amount)
    return pd.DataFrame(
        {"user_id": range(1, n + 1), "event_time": pd.Timestamp("2024-05-01 08:00"), "amount": amount, "segment": segment, "count": count},
        index=range(100, 100 + n),
    )


def test_in_range_counts_failing_rows_skips_nulls_and_samples_them_with_keys() -> None:
    group = stats_group(Rule.in_range("amount", min=0, max=100))
    report = validate(group, frame([5.0, -1.0, None, 250.0], ["a"] * 4, [1] * 4), partition="2024-05-01")
    result = report.result("amount_in_range")
    assert (result.passed, result.failure_count, result.rows) == (False, 2, 4)
    assert result.sample["user_id"].tolist() == [2, 4]
    assert result.sample["amount"].tolist() == [-1.0, 250.0]
    assert report.blocked and [r.rule for r in report.errors] == ["amount_in_range"]


def test_allowed_values_fails_on_other_values_only() -> None:
    group = stats_group(Rule.allowed_values("segment", ["a", "b"], severity="WARN"))
    report = validate(group, frame([1.0] * 3, ["a", "c", None], [1] * 3))
    result = report.result("segment_allowed_values")
    assert (result.passed, result.failure_count, result.sample["segment"].tolist()) == (False, 1, ["c"])
    assert not report.blocked and [r.rule for r in report.warnings] == ["segment_allowed_values"]


def test_max_null_fraction_reports_the_observed_fraction_and_the_null_rows() -> None:
    group = stats_group(Rule.max_null_fraction("count", 0.25, severity="WARN"))
    report = validate(group, frame([1.0] * 4, ["a"] * 4, [1, None, None, 3]))
    result = report.result("count_null_fraction")
    assert (result.passed, result.failure_count, result.detail) == (False, 2, "null fraction 0.5000 > 0.25")
    assert result.sample["user_id"].tolist() == [2, 3]


def test_max_null_fraction_passes_at_the_limit() -> None:
    group = stats_group(Rule.max_null_fraction("count", 0.25))
    assert validate(group, frame([1.0] * 4, ["a"] * 4, [1, None, 2, 3])).result("count_null_fraction").passed


def test_custom_rule_gets_the_frame_and_fails_per_row() -> None:
    rule = Rule.custom("count_below_amount", lambda df: df["count"] < df["amount"], description="fewer than amount")
    report = validate(stats_group(rule), frame([10.0, 1.0, 10.0], ["a"] * 3, [1, 5, 2]))
    result = report.result("count_below_amount")
    assert (result.passed, result.failure_count, result.sample["user_id"].tolist()) == (False, 1, [2])


def test_custom_rule_on_a_column_gets_the_series() -> None:
    rule = Rule.custom("even_count", lambda s: s % 2 == 0, column="count", severity="WARN")
    result = validate(stats_group(rule), frame([1.0] * 3, ["a"] * 3, [2, 3, 4])).result("even_count")
    assert (result.passed, result.failure_count, result.sample.columns.tolist()) == (False, 1, ["user_id", "event_time", "count"])


def test_custom_rule_that_raises_fails_with_the_error_instead_of_crashing() -> None:
    rule = Rule.custom("broken", lambda df: df["missing"] > 0, severity="WARN")
    result = validate(stats_group(rule), frame([1.0], ["a"], [1])).result("broken")
    assert not result.passed and result.detail.startswith("check raised KeyError")


def test_a_clean_partition_passes_every_rule() -> None:
    group = stats_group(Rule.in_range("amount", min=0), Rule.allowed_values("segment", ["a"]))
    report = validate(group, frame([1.0, 2.0], ["a", "a"], [1, 2]))
    assert [r.passed for r in report.results] == [True, True, True]
    assert report.summary() == "feature group 'stats': all 3 rules passed on 2 rows"


def test_a_contract_violation_is_one_failed_error_result_naming_the_column() -> None:
    bad = frame([1.0, 2.0], ["a", "b"], [1, 2]).assign(user_id=[1, 1])
    report = validate(stats_group(), bad)
    assert [r.rule for r in report.errors] == ["contract"]
    assert "duplicate rows" in report.result("contract").detail


def test_the_contract_result_is_the_contracts_own_verdict_on_the_frame() -> None:
    group = stats_group()
    good = frame([1.0, 2.0], ["a", "b"], [1, None])
    assert validate(group, good).result("contract").passed
    start, end = DailyPartitions.window("2024-05-02")
    outside = validate(group, good, window=(start, end)).result("contract")
    assert not outside.passed and "event outside partition" in outside.detail
    retyped = validate(group, good.assign(amount=["x", "y"])).result("contract")
    assert not retyped.passed and "column 'amount': dtype" in retyped.detail
