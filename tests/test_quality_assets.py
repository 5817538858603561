"""Real Dagster runs: rules run as checks of the group's asset, before anything is committed."""

from pathlib import Path

import dagster as dg
import pytest

from feature_platform import DailyPartitions, FeatureStore, RawSource
from feature_platform.offline.statistics import StatisticsStore
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from tests.quality_fixtures import START, materialize, payment_group, payments, repository
from tests.quality_fixtures import resources as resources_for

FEATURES = dg.AssetKey(["features", "payment_features"])


def offline(home: Path) -> FeatureStore:
    return FeatureStore([payment_group()], offline_root=home / "offline", project="test", home=home)


def checks(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, name: str) -> dict[str | None, dg.AssetCheckEvaluation]:
    """The run's evaluations of one check by partition, as stored on the instance (what the UI reads)."""
    records = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    return {e.partition: e for e in evaluations if e.check_name == name}


def downstream_runs(home: Path) -> list[str]:
    log = home / "downstream.log"
    return log.read_text().splitlines() if log.exists() else []


def test_an_error_rule_blocks_the_partition_keeps_the_previous_table_and_skips_downstream(tmp_path: Path) -> None:
    good = repository(payment_group(), payments())
    assert materialize(good, tmp_path, ("raw", "features", "online"), "2024-05-02").success
    before = offline(tmp_path).read_group("payment_features")
    version = offline(tmp_path).history("payment_features")[0]["version"]

    broken = repository(payment_group(), payments(negative_on=("2024-05-02",)))
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(broken, tmp_path, ("raw", "features", "online"), "2024-05-02", instance=instance)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "last_amount_in_range [ERROR] failed on 3 of 400 rows" in failure.step_failure_data.error.message
    evaluation = checks(instance, result, "last_amount_in_range")["2024-05-02"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR and evaluation.blocking
    assert evaluation.metadata["failure_count"].value == 3
    sample = evaluation.metadata["failing_rows_sample"].value
    assert [r.data["user_id"] for r in sample.records] == ["0", "1", "2"]
    assert offline(tmp_path).history("payment_features")[0]["version"] == version
    assert offline(tmp_path).read_group("payment_features").equals(before)
    assert downstream_runs(tmp_path) == ["2024-05-02"]  # only the first, good run reached downstream


def test_a_warn_rule_is_recorded_but_the_partition_is_committed(tmp_path: Path) -> None:
    defs = repository(payment_group(), payments(large_on=("2024-05-03",)))
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(defs, tmp_path, ("raw", "features", "online"), "2024-05-03", instance=instance)

    assert result.success
    warn = checks(instance, result, "amount_plausible")["2024-05-03"]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN and not warn.blocking
    assert warn.metadata["failure_count"].value == 2
    assert [r.data["last_amount"] for r in warn.metadata["failing_rows_sample"].value.records] == ["50000.0", "50000.0"]
    assert checks(instance, result, "last_amount_in_range")["2024-05-03"].passed
    assert checks(instance, result, "contract")["2024-05-03"].passed
    assert len(offline(tmp_path).read_group("payment_features")) == 400
    assert downstream_runs(tmp_path) == ["2024-05-03"]


def test_a_range_run_commits_the_valid_partitions_and_blocks_only_the_broken_one(tmp_path: Path) -> None:
    defs = repository(payment_group(), payments(negative_on=("2024-05-03",)))
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(defs, tmp_path, ("raw", "features", "online"), "2024-05-01", "2024-05-05", instance=instance)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "partition 2024-05-03: last_amount_in_range [ERROR] failed on 3 of 400 rows" in failure
    assert "committed partitions: 2024-05-01..2024-05-02, 2024-05-04..2024-05-05" in failure
    store = offline(tmp_path)
    assert [d.isoformat() for d in store.offline.partitions(payment_group())] == ["2024-05-01", "2024-05-02", "2024-05-04", "2024-05-05"]
    assert instance.get_materialized_partitions(FEATURES) == {"2024-05-01", "2024-05-02", "2024-05-04", "2024-05-05"}
    by_partition = checks(instance, result, "last_amount_in_range")
    assert {p: e.passed for p, e in by_partition.items()} == {
        "2024-05-01": True, "2024-05-02": True, "2024-05-03": False, "2024-05-04": True, "2024-05-05": True
    }
    assert by_partition["2024-05-03"].metadata["failure_count"].value == 3
    commits = [h for h in store.history("payment_features") if h.get("partition_key")]
    assert sorted(h["partition_key"] for h in commits) == ["2024-05-01..2024-05-02", "2024-05-04..2024-05-05"]
    assert downstream_runs(tmp_path) == []


def test_statistics_are_stored_per_partition_and_shown_as_metadata(tmp_path: Path) -> None:
    defs = repository(payment_group(), payments())
    result = materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", "2024-05-02")

    assert result.success
    stored = StatisticsStore(offline(tmp_path).offline).read(payment_group())
    assert [(s["partition"], s["rows"]) for s in stored] == [("2024-05-01", 400), ("2024-05-02", 400)]
    materialization = result.asset_materializations_for_node("features__payment_features")[0]
    assert materialization.metadata["statistics_partition"].value == "2024-05-02"
    assert materialization.metadata["mean/last_amount"].value == pytest.approx(stored[1]["features"]["last_amount"]["mean"])
    assert [r.data["feature"] for r in materialization.metadata["statistics"].value.records] == ["last_amount"]


def test_drift_asset_alarms_on_shifted_partitions_and_links_the_report(tmp_path: Path) -> None:
    defs = repository(payment_group(), payments(shift_from="2024-05-05"))
    assert materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", "2024-05-05").success
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(defs, tmp_path, ("drift",), "2024-05-01", "2024-05-05", instance=instance)

    assert result.success  # a WARN drift check does not fail the run
    by_partition = {e.partition: e.step_materialization_data.materialization.metadata for e in result.get_asset_materialization_events()}
    assert by_partition["2024-05-01"]["status"].value == "skipped"
    assert by_partition["2024-05-04"]["drifted_share"].value == 0.0
    assert by_partition["2024-05-05"]["drifted_share"].value == 1.0
    report = Path(by_partition["2024-05-05"]["report_path"].value)
    assert report == tmp_path / "reports" / "test" / "payment_features" / "2024-05-05.html" and report.exists()
    drift = checks(instance, result, "drift")
    assert {p: e.passed for p, e in drift.items()} == {f"2024-05-0{d}": d != 5 for d in range(1, 6)}
    assert drift["2024-05-05"].severity == dg.AssetCheckSeverity.WARN
    assert drift["2024-05-05"].metadata["report_path"].value == str(report)


def test_a_contract_violation_fails_the_run_with_a_failed_contract_check(tmp_path: Path) -> None:
    def duplicated(inputs, start, end):
        frame = inputs["payments"].rename(columns={"amount": "last_amount"})[["user_id", "event_time", "last_amount"]]
        return frame.assign(user_id=0)

    group = payment_group(compute=duplicated)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(repository(group, payments()), tmp_path, ("raw", "features"), "2024-05-01", instance=instance)
    assert not result.success
    contract = checks(instance, result, "contract")["2024-05-01"]
    assert not contract.passed and "duplicate rows" in contract.description
    assert offline(tmp_path).history("payment_features") == []


def test_downstream_automation_waits_for_the_blocking_checks_of_each_partition(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(negative_on=("2024-05-02",), large_on=("2024-05-03",)))
    for day in ("2024-05-01", "2024-05-02", "2024-05-03"):
        materialize(defs, tmp_path, ("raw", "features"), day, instance=instance)

    @dg.asset(
        key=["online", "gated"],
        deps=[FEATURES],
        partitions_def=dg.DailyPartitionsDefinition("2024-05-01", end_date="2024-05-04"),
        automation_condition=dg.AutomationCondition.all_deps_blocking_checks_passed(),
    )
    def gated() -> None: ...

    features = [a for a in defs.assets if a.key == FEATURES]
    result = dg.evaluate_automation_conditions(defs=dg.Definitions(assets=[*features, gated], resources=resources_for(tmp_path)), instance=instance)
    (online,) = [r for r in result.results if r.key == dg.AssetKey(["online", "gated"])]
    # 2024-05-02 failed an ERROR rule; 2024-05-03 only a WARN one, which does not block.
    assert sorted(online.true_subset.expensively_compute_partition_keys()) == ["2024-05-01", "2024-05-03"]


def test_an_error_blocked_partition_never_reaches_the_real_online_store(tmp_path: Path, redis_url: str) -> None:
    group = payment_group()
    home = tmp_path
    store_resource = dg.Definitions(resources={**resources_for(home), "feature_platform_store": FeatureStoreResource(home=str(home), project="test", redis_url=redis_url)})
    FeatureStoreResource(home=str(home), project="test").build_store([group]).apply()

    def run(produce, day: str) -> dg.ExecuteInProcessResult:
        defs = build_definitions([group], [], [RawSource("payments", partitions=DailyPartitions(START), produce=produce)])
        selection = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.key.path[0] in ("raw", "features", "online")]
        return dg.materialize(selection, partition_key=day, resources=store_resource.resources, raise_on_error=False)

    assert run(payments(), "2024-05-01").success
    store = FeatureStore([group], offline_root=home / "offline", project="test", home=home, online_url=redis_url)
    synced = store.get_online_features([{"user_id": 0}], ["payment_features:last_amount"]).to_dict()

    result = run(payments(negative_on=("2024-05-02",)), "2024-05-02")

    assert not result.success
    assert not [e for e in result.all_events if e.is_step_success and e.step_key == "online__payment_features"]
    after = store.get_online_features([{"user_id": 0}], ["payment_features:last_amount"]).to_dict()
    assert synced["last_amount"][0] > 0
    assert after == synced  # user 0's negative amount of the broken day was never synced
