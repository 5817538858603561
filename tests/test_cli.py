"""The `feature-platform` CLI on the demo repository: a real backfill through Dagster, then discovery."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from feature_platform import FeatureStore
from feature_platform.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Three demo days backfilled by `feature-platform backfill` in its own process; env points at them."""
    work = tmp_path_factory.mktemp("cli")
    env = {"FEATURE_PLATFORM_HOME": str(work / "fp"), "DAGSTER_HOME": str(work / "dagster")}
    (work / "dagster").mkdir()
    (work / "dagster" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    applied = subprocess.run([sys.executable, "-m", "feature_platform.cli", "apply"], cwd=REPO,
                             env={**os.environ, **env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr[-2000:]
    command = [sys.executable, "-m", "feature_platform.cli", "backfill", "users", "user_profile", "transactions",
               "user_last_transaction", "--start", "2024-04-01", "--end", "2024-04-03", "--workers", "0", "--json"]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, **env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield {"backfill": json.loads(done.stdout), "progress": done.stderr, **env}


def cli_json(capsys: pytest.CaptureFixture, *args: str) -> object:
    assert main([*args, "--repo", str(REPO), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_backfill_runs_are_recorded_on_the_instance(demo: dict) -> None:
    runs = demo["backfill"]["runs"]
    assert demo["backfill"]["success"] and [(r["first"], r["last"]) for r in runs] == [(None, None), ("2024-04-01", "2024-04-03")]
    assert "2/2 runs" in demo["progress"]
    with dg.DagsterInstance.from_config(demo["DAGSTER_HOME"]) as instance:
        assert [instance.get_run_by_id(r["run_id"]).status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2


def test_list_shows_groups_views_and_sources(demo: dict, capsys: pytest.CaptureFixture) -> None:
    listed = cli_json(capsys, "list")
    assert [g["name"] for g in listed["groups"]] == [
        "card_activity", "merchant_country_features", "merchant_features", "user_last_transaction", "user_profile",
        "user_transaction_features",
    ]
    assert [v["name"] for v in listed["views"]] == ["fraud_detection", "realtime_fraud"]
    assert sorted(s["name"] for s in listed["sources"]) == ["transactions", "users"]


def test_list_reads_well_in_a_terminal(demo: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "--repo", str(REPO)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Feature groups\n  NAME ")
    assert "  user_profile               1        user               3         no           team:fraud-ml" in out


def test_describe_a_group_shows_its_stored_partitions_and_versions(demo: dict, capsys: pytest.CaptureFixture) -> None:
    facts = cli_json(capsys, "describe", "user_last_transaction")
    assert facts["stored_partitions"] == {"count": 3, "first": "2024-04-01", "last": "2024-04-03"}
    assert facts["delta_version"] == 0 and facts["owner"] == "team:fraud-ml"
    assert [f["name"] for f in facts["features"]] == ["last_amount", "last_merchant_id"]
    assert facts["views"] == ["fraud_detection"]


def test_history_links_each_version_to_its_dagster_run(demo: dict, capsys: pytest.CaptureFixture) -> None:
    rows = cli_json(capsys, "history", "user_last_transaction")
    assert [(r["version"], r["operation"], r["partition_key"]) for r in rows] == [(0, "CREATE TABLE", "2024-04-01..2024-04-03")]
    assert rows[0]["dagster_run_id"] == demo["backfill"]["runs"][1]["run_id"]


def test_index_builds_the_join_index_of_the_current_version(demo: dict, capsys: pytest.CaptureFixture) -> None:
    indexed = cli_json(capsys, "index", "user_last_transaction")
    rows = len(FeatureStore.from_repo(REPO).read_group("user_last_transaction"))
    assert indexed == {"group": "user_last_transaction", "version": 0, "rows_indexed": rows} and rows > 0
    assert main(["index", "user_last_transaction", "--repo", str(REPO)]) == 0
    assert capsys.readouterr().out.strip() == f"user_last_transaction: version 0, {rows} rows indexed"


def test_search_finds_definitions_with_every_word(demo: dict, capsys: pytest.CaptureFixture) -> None:
    hits = cli_json(capsys, "search", "merchant", "fraud")
    assert [(h["kind"], h["name"]) for h in hits][:2] == [("group", "merchant_features"), ("view", "fraud_detection")]
    assert ("group", "merchant_country_features") not in [(h["kind"], h["name"]) for h in hits]  # no 'fraud' anywhere


def test_lineage_of_a_group_spans_sources_views_and_assets(demo: dict, capsys: pytest.CaptureFixture) -> None:
    result = cli_json(capsys, "lineage", "user_transaction_features")
    assert result["upstream"] == ["source:transactions"]
    assert result["downstream"] == ["view:fraud_detection"]
    assert result["assets"]["upstream"] == ["raw/transactions"]


def test_an_unknown_name_is_a_clear_error(demo: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(["describe", "user_stats", "--repo", str(REPO)]) == 2
    err = capsys.readouterr().err
    assert "no feature group, view or raw source is called 'user_stats'" in err and "'user_profile'" in err
