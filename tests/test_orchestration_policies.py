"""Schedules request the closed day; downstream assets follow feature groups; only transient errors retry."""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from feature_platform import FeatureGroup
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from feature_platform.orchestration.automation import FOLLOW_FEATURE_GROUPS, follow_feature_groups
from tests.ops_fixtures import DAYS, clicks, daily_clicks, land, landing_defs, user


def test_the_daily_schedule_requests_the_day_that_just_closed(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    schedule = defs.resolve_schedule_def("daily_clicks_daily")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 5, 4, 1, 0, tzinfo=timezone.utc), repository_def=defs.get_repository_def()
    )
    result = schedule.evaluate_tick(context)
    assert schedule.cron_schedule == "0 1 * * *"
    assert [r.partition_key for r in result.run_requests] == ["2024-05-03"]
    assert defs.resolve_job_def(schedule.job_name).asset_layer.executable_asset_keys == {dg.AssetKey(["features", "daily_clicks"])}


def followed_defs(tmp_path: Path) -> dg.Definitions:
    """`daily_clicks` and its `["online", ...]` sync asset (which sets no automation itself) under the follow policy."""
    _, resource = landing_defs(tmp_path)
    return dg.Definitions.merge(
        follow_feature_groups(
            dg.Definitions(assets=build_definitions([daily_clicks], sources=[clicks]).assets),
            [dg.AssetKey(["features", "daily_clicks"])],
        ),
        dg.Definitions(resources={"feature_platform_store": resource}),
    )


def test_assets_downstream_of_a_feature_group_get_the_follow_condition(tmp_path: Path) -> None:
    graph = followed_defs(tmp_path).resolve_asset_graph()
    assert graph.get(dg.AssetKey(["online", "daily_clicks"])).automation_condition == FOLLOW_FEATURE_GROUPS
    assert graph.get(dg.AssetKey(["features", "daily_clicks"])).automation_condition is None


def test_an_updated_old_partition_is_followed_downstream_for_that_partition(tmp_path: Path) -> None:
    defs = followed_defs(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    online = dg.AssetKey(["online", "daily_clicks"])
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets(online))
    assert baseline.total_requested == 0
    land(tmp_path / "raw", "2024-05-03", [1])
    group = defs.resolve_assets_def(dg.AssetKey(["features", "daily_clicks"]))
    assert dg.materialize([group], partition_key="2024-05-03", instance=instance).success
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets(online), cursor=baseline.cursor
    )
    assert result.get_requested_partitions(online) == {"2024-05-03"}


def flaky_group(marker: Path, failure: Exception) -> FeatureGroup:
    """A group whose compute raises `failure` on its first call only (the marker file remembers)."""

    def compute(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
        if not marker.exists():
            marker.write_text("failed once")
            raise failure
        return pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp(start)], "clicks": [3]})

    return FeatureGroup("flaky", entities=[user], features=daily_clicks.features, partitions=DAYS, compute=compute, sources=["clicks"])


def step_events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def test_a_transient_error_is_retried_and_the_run_succeeds(tmp_path: Path) -> None:
    group = flaky_group(tmp_path / "marker", ConnectionError("redis went away"))
    resource = FeatureStoreResource(project="ops", home=str(tmp_path))
    resource.build_store([group]).apply()
    land(tmp_path / "raw", "2024-05-03", [1])
    result = dg.materialize(
        build_definitions([group], sources=[clicks]).assets, selection=[dg.AssetKey(["features", "flaky"])],
        partition_key="2024-05-03", resources={"feature_platform_store": resource},
    )
    assert result.success
    assert len(step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    assert resource.build_store([group]).read_group("flaky")["clicks"].tolist() == [3]


def test_a_contract_violation_fails_at_once_without_retry(tmp_path: Path) -> None:
    def outside_partition(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
        return pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp("2024-06-01", tz="UTC")], "clicks": [3]})

    group = FeatureGroup("late", entities=[user], features=daily_clicks.features, partitions=DAYS, compute=outside_partition, sources=["clicks"])
    resource = FeatureStoreResource(project="ops", home=str(tmp_path))
    resource.build_store([group]).apply()
    land(tmp_path / "raw", "2024-05-03", [1])
    result = dg.materialize(
        build_definitions([group], sources=[clicks]).assets, selection=[dg.AssetKey(["features", "late"])],
        partition_key="2024-05-03", resources={"feature_platform_store": resource}, raise_on_error=False,
    )
    assert not result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    failure = step_events(result, dg.DagsterEventType.STEP_FAILURE)[0]
    assert "feature group 'late'" in failure.step_failure_data.error.message
    assert not resource.build_store([group]).offline.exists(group)


@pytest.mark.parametrize("per_run", ["0", "x"])
def test_a_bad_backfill_tag_names_the_group(per_run: str) -> None:
    group = FeatureGroup("tagged", entities=[user], features=daily_clicks.features, partitions=DAYS, compute=daily_clicks.compute, sources=["clicks"], tags={"backfill_partitions_per_run": per_run})
    with pytest.raises(ValueError, match="'tagged': tag backfill_partitions_per_run"):
        build_definitions([group], sources=[clicks])
