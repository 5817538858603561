"""Backfill plans follow the assets' policies: range runs of at most N days, unpartitioned assets apart."""

from pathlib import Path

import dagster as dg
import pytest

from feature_platform.orchestration.backfill import PlannedRun, plan_backfill
from tests.ops_fixtures import landing_defs

DAILY = dg.AssetKey(["features", "daily_clicks"])
THREE_DAY = dg.AssetKey(["features", "clicks_3d"])


def test_ninety_days_become_runs_of_at_most_31_days(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    plan = plan_backfill(defs, [DAILY, THREE_DAY], "2024-05-01", "2024-07-29")
    assert plan == [
        PlannedRun((DAILY, THREE_DAY), "2024-05-01", "2024-05-31"),
        PlannedRun((DAILY, THREE_DAY), "2024-06-01", "2024-07-01"),
        PlannedRun((DAILY, THREE_DAY), "2024-07-02", "2024-07-29"),
    ]


def test_partitions_per_run_overrides_the_policy(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    plan = plan_backfill(defs, [DAILY], "2024-05-01", "2024-05-03", partitions_per_run=1)
    assert [(r.first, r.last) for r in plan] == [(d, d) for d in ("2024-05-01", "2024-05-02", "2024-05-03")]


def test_a_range_before_the_first_partition_starts_at_it(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    assert plan_backfill(defs, [DAILY], "2024-04-20", "2024-05-02") == [PlannedRun((DAILY,), "2024-05-01", "2024-05-02")]


def test_an_inverted_range_is_refused(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    with pytest.raises(ValueError, match="2024-05-03..2024-05-01 is empty"):
        plan_backfill(defs, [DAILY], "2024-05-03", "2024-05-01")


@pytest.mark.parametrize(("start", "per_run", "message"), [("2024-13-01", None, "'2024-13-01' is not a day"), ("2024-05-01", 0, "at least 1")])
def test_bad_days_and_run_sizes_are_refused(tmp_path: Path, start: str, per_run: int | None, message: str) -> None:
    defs, _ = landing_defs(tmp_path)
    with pytest.raises(ValueError, match=message):
        plan_backfill(defs, [DAILY], start, "2024-05-03", partitions_per_run=per_run)


def test_with_downstream_adds_the_assets_that_follow_a_group_on_the_same_partitions(tmp_path: Path) -> None:
    from feature_platform.orchestration.backfill import with_downstream
    from tests.test_orchestration_policies import followed_defs

    defs = followed_defs(tmp_path)
    assert with_downstream(defs, [DAILY]) == [DAILY, dg.AssetKey(["drift", "daily_clicks"]), dg.AssetKey(["online", "daily_clicks"])]
