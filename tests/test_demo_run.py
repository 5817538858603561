"""The demo end to end through Dagster: every group's Delta table, with the rows the raw data implies.

Runs `demo.run_demo` (what `make demo` runs) over a short
window on a temporary FEATURE_PLATFORM_HOME and DAGSTER_HOME.
"""

import shutil
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from assets import raw
from demo import run_demo
from feature_platform import FeatureStore
from feature_platform.online.redis_server import stop_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FIRST_DAY, LAST_DAY = "2024-04-01", "2024-04-10"
DAYS = pd.date_range(FIRST_DAY, LAST_DAY, freq="D", tz="UTC")

# Per windowed group: its keys and how many days before each day it aggregates.
WINDOWED = {
    "user_transaction_features": (["user_id"], 30),
    "merchant_features": (["merchant_id"], 7),
    "merchant_country_features": (["merchant_id", "country"], 1),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo's summary after one run over FIRST_DAY..LAST_DAY, with its homes set in the environment."""
    root = tmp_path_factory.mktemp("demo")
    dagster_home = root / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATURE_PLATFORM_HOME", str(root / "home"))
        mp.setenv("FEATURE_PLATFORM_DEMO_LAST_DAY", LAST_DAY)  # the training dataset reads the days the test lands
        mp.setenv("DAGSTER_HOME", str(dagster_home))
        for name in ("FEATURE_PLATFORM_OFFLINE_ROOT", "FEATURE_PLATFORM_RAW_ROOT", "FEATURE_PLATFORM_PROJECT"):
            mp.delenv(name, raising=False)
        # `resources` reads the environment at import: load the code location afresh under these homes.
        for module in ("definitions", "resources", "sensors"):
            mp.delitem(sys.modules, module, raising=False)
        summary = run_demo(REPO, FIRST_DAY, LAST_DAY)
        try:
            yield {"summary": summary, "home": root / "home", "store": FeatureStore.from_repo(REPO)}
        finally:
            stop_server(root / "home")  # the demo's online assets started the embedded Redis


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    """The raw transactions the demo generates over its window (there are none before it)."""
    frames = [raw.produce_transactions(day.to_pydatetime(), (day + timedelta(days=1)).to_pydatetime()) for day in DAYS]
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(event_time=pd.to_datetime(frame["event_time"], utc=True))


def by_group(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["group"]: g for g in summary["groups"]}


def distinct_keys_per_day(events: pd.DataFrame, keys: list[str], days_before: int) -> list[int]:
    """For each day of the window, how many distinct keys had events in the `days_before` days before it."""
    counts = []
    for day in DAYS:
        inside = events[(events["event_time"] >= day - timedelta(days=days_before)) & (events["event_time"] < day)]
        counts.append(len(inside[keys].drop_duplicates()))
    return counts


def test_demo_runs_succeed_on_the_instance(demo) -> None:
    summary = demo["summary"]
    assert summary["window"] == [FIRST_DAY, LAST_DAY]
    # unpartitioned assets, the daily range, drift, then the training datasets that read the groups
    assert [r["success"] for r in summary["runs"]] == [True, True, True, True]
    instance = dg.DagsterInstance.from_config(summary["dagster_home"])
    for run in summary["runs"]:
        assert instance.get_run_by_id(run["run_id"]).status == dg.DagsterRunStatus.SUCCESS


def test_demo_summary_lists_every_group_with_its_partitions(demo) -> None:
    groups = by_group(demo["summary"])
    # The stream group holds the generated transactions of the last hour: today's (and maybe yesterday's) partition.
    assert groups.pop("card_activity")["partitions"] in (1, 2)
    assert {name: g["partitions"] for name, g in groups.items()} == {
        # 2024-04-01 is the first day of data: there is nothing before it to aggregate.
        "user_transaction_features": 9,
        "merchant_features": 9,
        "merchant_country_features": 9,
        "user_last_transaction": 10,
        "user_profile": "unpartitioned",
    }


@pytest.mark.parametrize("name", sorted(WINDOWED))
def test_windowed_group_has_a_row_per_key_active_in_the_window(demo, transactions, name) -> None:
    keys, days_before = WINDOWED[name]
    expected = sum(distinct_keys_per_day(transactions, keys, days_before))
    assert by_group(demo["summary"])[name]["rows"] == expected
    assert len(demo["store"].read_group(name)) == expected


def test_last_transaction_group_has_a_row_per_user_and_day(demo, transactions) -> None:
    days = transactions["event_time"].dt.floor("D")
    expected = len(transactions.assign(day=days)[["user_id", "day"]].drop_duplicates())
    assert by_group(demo["summary"])["user_last_transaction"]["rows"] == expected
    assert len(demo["store"].read_group("user_last_transaction")) == expected


def test_profile_group_has_a_row_per_user(demo) -> None:
    assert by_group(demo["summary"])["user_profile"]["rows"] == raw.user_count()
    profile = demo["store"].read_group("user_profile")
    assert sorted(profile["user_id"]) == list(range(raw.user_count()))


def test_demo_quality_summary_has_no_blocked_partition_in_a_clean_window(demo) -> None:
    quality = demo["summary"]["quality"]
    assert quality["blocked"] == []
    assert quality["alert_file"] == str(demo["home"] / "alerts.jsonl")


def test_each_table_is_one_delta_commit_by_a_demo_run(demo) -> None:
    summary = demo["summary"]
    run_ids = {r["run_id"] for r in summary["runs"]}
    for name, group in by_group(summary).items():
        if name == "card_activity":
            continue  # written by its stream consumer (a sensor tick), not by a run
        assert group["delta_version"] == 0, name
        assert group["table"].startswith(str(demo["home"] / "offline")), group["table"]
        [commit] = demo["store"].history(name)
        assert commit["dagster_run_id"] in run_ids, name


def test_demo_ends_with_online_vectors_synced_by_the_online_assets(demo: dict[str, Any]) -> None:
    online = demo["summary"]["online"]
    before, after = online["before_push"], online["after_push"]
    profile = demo["store"].read_group("user_profile").set_index("user_id")
    assert len(after["user_id"]) == 3
    assert after["age"] == [int(profile.loc[u, "age"]) for u in after["user_id"]]
    assert before["age__status"] == ["PRESENT"] * 3  # no ttl: synced values stay valid
    assert before["txn_count_7d__status"] == ["OUTSIDE_MAX_AGE"] * 3  # 2024 data, 2-day ttl
    assert after["txn_count_7d__status"] == ["PRESENT"] * 3


def test_demo_builds_the_fraud_training_dataset_from_the_labelled_transactions(demo, transactions) -> None:
    store = demo["store"]
    manifests = {m["name"]: m for m in store.list_training_datasets()}
    assert set(manifests) == {"fraud_training", "realtime_fraud_training"}  # the second from the streaming group
    manifest = manifests["fraud_training"]
    labelled = transactions[transactions["event_time"] >= pd.Timestamp("2024-04-08", tz="UTC")]
    assert (manifest["name"], manifest["version"], manifest["row_count"]) == ("fraud_training", 1, len(labelled))
    assert set(manifest["group_versions"]) == {
        "user_transaction_features", "user_last_transaction", "user_profile", "merchant_features", "merchant_country_features"
    }
    stored = store.load_training_dataset("fraud_training")
    assert stored["is_fraud"].tolist() == labelled["is_fraud"].tolist()
    assert stored["txn_count_7d"].notna().all()


def test_demo_streams_transactions_into_online_windows_and_a_training_dataset(demo) -> None:
    stream = demo["summary"]["stream"]
    assert stream["observation"]["events"] == stream["published"] == 3_000
    assert stream["observation"]["consumer_lag_events"] == 0 and stream["dead_letters"] == 0
    assert set(stream["online"]["txn_count_1h__status"]) == {"PRESENT"}
    assert min(stream["online"]["txn_count_1h"]) >= 1
    assert stream["training_dataset"]["rows"] == 3_000
    store = demo["store"]
    assert len(store.read_group("card_activity")) == 3_000
    instance = dg.DagsterInstance.from_config(demo["summary"]["dagster_home"])
    observed = instance.fetch_observations(dg.AssetKey(["features", "card_activity"]), limit=1).records
    assert observed and observed[0].asset_observation.metadata["events"].value == 3_000
