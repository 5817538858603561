"""Failures say what happened: user code, contracts, missing data and lasting storage errors fail once; I/O retries."""

import textwrap
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from feature_platform import FeatureGroup
from feature_platform.cli import main
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from tests.ops_fixtures import DAYS, clicks, daily_clicks, land, user


def run(group: FeatureGroup, resource: FeatureStoreResource, day: str = "2024-05-03") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_definitions([group], sources=[clicks]).assets, selection=[dg.AssetKey(["features", group.name])],
        partition_key=day, resources={"feature_platform_store": resource}, raise_on_error=False,
    )


def events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return events(result, dg.DagsterEventType.STEP_FAILURE)[0].step_failure_data.error.message


def reads_a_missing_column(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    return inputs["clicks"]["amount"].to_frame()


def test_an_error_in_the_compute_function_fails_once_naming_group_partition_and_cause(tmp_path: Path) -> None:
    group = FeatureGroup("buggy", entities=[user], features=daily_clicks.features, partitions=DAYS, compute=reads_a_missing_column, sources=["clicks"])
    resource = FeatureStoreResource(project="ops", home=str(tmp_path))
    resource.build_store([group]).apply()
    land(tmp_path / "raw", "2024-05-03", [1, 2])

    result = run(group, resource)

    assert not result.success
    assert events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    message = failure_message(result)
    assert "feature group 'buggy', partitions 2024-05-03..2024-05-03" in message
    assert "its compute function raised KeyError: 'amount' (in reads_a_missing_column, test_failures.py:" in message


def test_a_missing_source_partition_fails_once_naming_the_source_and_the_day(tmp_path: Path) -> None:
    resource = FeatureStoreResource(project="ops", home=str(tmp_path))
    resource.build_store([daily_clicks]).apply()
    land(tmp_path / "raw", "2024-05-02", [1])

    result = run(daily_clicks, resource)

    assert not result.success
    assert events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert "raw source 'clicks' has no data for 2024-05-03" in failure_message(result)
    assert "materialize raw/clicks for them" in failure_message(result)


def test_a_storage_error_that_will_not_heal_fails_once(tmp_path: Path) -> None:
    (tmp_path / "not_a_folder").write_text("a file where the offline root should be")
    resource = FeatureStoreResource(project="ops", home=str(tmp_path), offline_root=str(tmp_path / "not_a_folder" / "offline"))
    land(tmp_path / "raw", "2024-05-03", [1])

    result = run(daily_clicks, resource)

    assert not result.success
    assert events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    # The first storage the run touches is the registry beside the tables: none can be there, so nothing was applied.
    assert "feature group 'daily_clicks' v1 is not applied yet: run `feature-platform plan`" in failure_message(result)


REPO_DEFINITIONS = """
import os
import dagster as dg
from tests.ops_fixtures import clicks, daily_clicks
from feature_platform.orchestration import FeatureStoreResource, build_definitions

defs = dg.Definitions.merge(
    build_definitions([daily_clicks], sources=[clicks]),
    dg.Definitions(resources={"feature_platform_store": FeatureStoreResource(project="ops", home=os.environ["FEATURE_PLATFORM_HOME"])}),
)
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository of the ops fixtures with its homes in the environment."""
    root = tmp_path / "repo"
    (root / "ops_features").mkdir(parents=True)
    (root / "ops_features" / "__init__.py").write_text("from tests.ops_fixtures import clicks, daily_clicks\nfeature_groups = [daily_clicks]\nraw_sources = [clicks]\n")
    (root / "definitions.py").write_text(textwrap.dedent(REPO_DEFINITIONS))
    (root / "pyproject.toml").write_text('[tool.feature_platform]\npackage = "ops_features"\n')
    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    FeatureStoreResource(project="ops", home=str(tmp_path / "home")).build_store([daily_clicks]).apply()
    return root


def test_the_cli_prints_the_root_cause_with_group_and_partition(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["materialize", daily_clicks.name, "--partition", "2024-05-03", "--repo", str(repo)])

    out = capsys.readouterr().out
    assert code == 1
    assert "Failure:" not in out
    assert f"feature group '{daily_clicks.name}', partitions 2024-05-03..2024-05-03: raw source 'clicks' has no data for 2024-05-03" in out
    assert "max_retries" not in out


@pytest.mark.parametrize(("start", "end"), [("2024-01-01", "2024-01-31"), ("2024-05-01", "2999-01-02"), ("2999-01-01", "2999-01-02")])
def test_a_backfill_outside_the_partitions_is_a_clear_error(repo: Path, capsys: pytest.CaptureFixture[str], start: str, end: str) -> None:
    code = main(["backfill", daily_clicks.name, "--start", start, "--end", end, "--repo", str(repo)])

    assert code == 2
    err = capsys.readouterr().err
    assert f"{start}..{end}" in err and "partitions of features/" in err and "from 2024-05-01" in err
