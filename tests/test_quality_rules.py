"""Rules and drift settings are validated where they are declared."""

import re

import pytest

from feature_platform import DefinitionError, Feature, FeatureGroup
from feature_platform.definitions.rules import DriftSettings, Rule
from tests.quality_fixtures import user


def group(**options: object) -> FeatureGroup:
    return FeatureGroup("g", entities=[user], features=[Feature("amount"), Feature("segment", "string")], **options)  # type: ignore[arg-type]


def test_rule_constructors_name_the_rule_after_its_column() -> None:
    assert Rule.in_range("amount", min=0).name == "amount_in_range"
    assert Rule.allowed_values("segment", ["a"]).name == "segment_allowed_values"
    assert Rule.max_null_fraction("amount", 0.1).name == "amount_null_fraction"


def test_rule_summary_states_severity_bounds_and_description() -> None:
    rule = Rule.in_range("amount", min=0, severity="WARN", description="No refunds here.")
    assert rule.summary() == "[WARN] amount in [0, inf]: No refunds here."


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Rule.in_range("amount"), "needs min, max or both"),
        (lambda: Rule.in_range("amount", min=2, max=1), "min 2 is above max 1"),
        (lambda: Rule.allowed_values("segment", []), "non-empty list"),
        (lambda: Rule.max_null_fraction("amount", 1.5), "fraction in [0, 1]"),
        (lambda: Rule.in_range("amount", min=0, severity="FATAL"), "severity must be one of"),
        (lambda: Rule.custom("bad name", lambda df: True), "rule name 'bad name' is invalid"),
        (lambda: Rule.custom("contract", lambda df: True), "reserved"),
        (lambda: DriftSettings(max_drifted_share=1.0), "max_drifted_share"),
        (lambda: DriftSettings(baseline=("2024-05-02", "2024-05-01")), "baseline"),
    ],
)
def test_bad_rules_and_settings_fail_with_a_message_naming_the_problem(build, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        build()


def test_a_group_rejects_a_rule_on_an_unknown_column() -> None:
    with pytest.raises(DefinitionError, match="rule 'amont_in_range' names unknown column 'amont'"):
        group(rules=[Rule.in_range("amont", min=0)])


def test_a_group_rejects_two_rules_with_the_same_name() -> None:
    with pytest.raises(DefinitionError, match="rule name 'amount_in_range' is used twice"):
        group(rules=[Rule.in_range("amount", min=0), Rule.in_range("amount", max=9)])


def test_a_group_rejects_drift_on_an_unknown_feature() -> None:
    with pytest.raises(DefinitionError, match=r"drift names unknown features \['nope'\]"):
        group(drift=DriftSettings(features=["nope"]))
