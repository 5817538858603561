"""A feature group's backfill launched as the UI does is followed by its online sync and drift, for exactly its partitions.

Class 4 of issue 12 (the Dagster half): a range run logs its check evaluations
per partition, which Dagster never counts as current, so a follow condition
built on `all_deps_blocking_checks_passed()` never fired after a backfill.
This test runs the real thing: `dagster dev` on the demo repository, a
backfill of three partitions through the webserver's GraphQL, then one of two
more days by `feature-platform backfill` on the same instance, and the
daemon's automation sensor starting the online and drift runs of exactly those
partitions; then Redis holds the values.
"""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster_dev import REPO, Server, dagster_dev, graphql, log_tail

import assets
from feature_platform import FeatureStore
from feature_platform.sources.landing import write_source

pytestmark = [pytest.mark.ui, pytest.mark.slow]

GROUP = "user_transaction_features"
DAYS = ["2024-05-10", "2024-05-11", "2024-05-12"]
CLI_DAYS = ["2024-05-08", "2024-05-09"]
FOLLOW_SECONDS = 360

LAUNCH = """
mutation { launchPartitionBackfill(backfillParams: {
    partitionNames: %s, assetSelection: [{path: ["features", "%s"]}], fromFailure: false
}) { __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
MATERIALIZED = """
{ assetOrError(assetKey: {path: ["%s", "%s"]}) { ... on Asset { assetMaterializations { partition runId } } } }
"""


def land_transactions(raw_root: Path, first: str, last: str) -> None:
    """The demo's raw transactions for the days `first..last` (the group's 30-day lookback included)."""
    source = next(s for s in assets.raw_sources if s.name == "transactions")
    assert source.produce is not None
    day = datetime.fromisoformat(first).replace(tzinfo=timezone.utc)
    while day.date().isoformat() <= last:
        write_source(str(raw_root), source, day.date(), source.produce(day, day + timedelta(days=1)))
        day += timedelta(days=1)


def materialized(server: Server, kind: str) -> list[tuple[str, str]]:
    """(partition, run id) of every materialization of `[kind, GROUP]`."""
    asset = graphql(server, MATERIALIZED % (kind, GROUP))["assetOrError"]
    return sorted((m["partition"], m["runId"]) for m in asset.get("assetMaterializations") or [])


def wait_for_followers(server: Server, count: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The online and drift materializations, once both have `count` (fails after FOLLOW_SECONDS)."""
    deadline = time.monotonic() + FOLLOW_SECONDS
    while time.monotonic() < deadline:
        online, drift = materialized(server, "online"), materialized(server, "drift")
        if len(online) >= count and len(drift) >= count:
            return online, drift
        time.sleep(5)
    pytest.fail(f"after {FOLLOW_SECONDS} s online {online}, drift {drift}:\n{log_tail(server.log)}")


def test_ui_and_cli_backfills_are_followed_by_online_sync_and_drift_for_exactly_their_partitions(tmp_path, redis_url):
    land_transactions(tmp_path / "feature_platform" / "raw", "2024-04-07", DAYS[-1])
    env = {"FEATURE_PLATFORM_REDIS_URL": redis_url}
    cli_env = {**os.environ, **env, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
               "FEATURE_PLATFORM_HOME": str(tmp_path / "feature_platform")}
    applied = subprocess.run(  # plan -> apply -> materialize: runs refuse definitions that were not applied
        [sys.executable, "-m", "feature_platform.cli", "apply"], cwd=REPO, capture_output=True, text=True, timeout=300,
        env=cli_env,
    )
    assert applied.returncode == 0, applied.stderr[-2000:]
    with dagster_dev(tmp_path, env=env) as server:
        launched = graphql(server, LAUNCH % (str(DAYS).replace("'", '"'), GROUP))["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        online, drift = wait_for_followers(server, len(DAYS))
        features = materialized(server, "features")
        assert [p for p, _ in features] == DAYS
        assert [p for p, _ in online] == DAYS and [p for p, _ in drift] == DAYS
        assert not {r for _, r in online} & {r for _, r in features}  # runs of their own, started by the sensor

        backfill = [sys.executable, "-m", "feature_platform.cli", "backfill", GROUP, "--start", CLI_DAYS[0], "--end", CLI_DAYS[-1]]
        cli = subprocess.run(backfill, cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
        assert cli.returncode == 0, cli.stderr[-2000:]
        online, drift = wait_for_followers(server, len(DAYS) + len(CLI_DAYS))

    assert [p for p, _ in online] == CLI_DAYS + DAYS and [p for p, _ in drift] == CLI_DAYS + DAYS
    store = FeatureStore(groups=assets.feature_groups, offline_root=tmp_path / "feature_platform" / "offline", online_url=redis_url)
    written = store.read_group(GROUP, start=DAYS[-1])
    users = sorted(written["user_id"].unique().tolist())[:20]
    got = store.get_online_features({"user_id": users}, [f"{GROUP}:txn_count_30d"]).to_dict(include_statuses=True)
    assert users and set(got["txn_count_30d__status"]) == {"OUTSIDE_MAX_AGE"}  # in Redis (2024 values, 2-day ttl)
