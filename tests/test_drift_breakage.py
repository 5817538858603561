"""Drift sees the commonest breakage: a feature gone entirely null, or constant, in the current partition.

Against a reference where the feature has (varied) values, such a partition
drifts: the feature is marked drifted with method `all_null` or `constant`,
the partition's status is `drift` whatever the drifted share, the Dagster
check fails and the alert sensor sends one drift alert.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from feature_platform.definitions.rules import DriftSettings
from feature_platform.quality.drift import check_partition, detect_drift
from tests.quality_fixtures import materialize, payment_group, payments, repository, user
from tests.test_alerts import Receiver, tick

group = FeatureGroup(
    "usage",
    entities=[user],
    features=[Feature("minutes", "float64"), Feature("sessions", "int64"), Feature("plan", "string")],
    partitions=DailyPartitions("2024-05-01"),
    drift=DriftSettings(reference_partitions=3, max_drifted_share=0.5),
)


def usage(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "minutes": rng.gamma(2.0, 10.0, rows),
            "sessions": pd.array(rng.poisson(4, rows), dtype="Int64"),
            "plan": rng.choice(["free", "pro", "team"], rows, p=[0.6, 0.3, 0.1]).astype(object),
        }
    )


REFERENCE = usage(400, seed=1)
CURRENT = usage(150, seed=2)


def drift_of(current: pd.DataFrame, reference: pd.DataFrame = REFERENCE) -> dict[str, tuple[str, bool]]:
    result = detect_drift(group, "2024-05-04", current, reference)
    return {"status": result.status, **{f.feature: (f.method, f.drifted) for f in result.features}}


def test_a_normal_partition_is_not_drift() -> None:
    result = detect_drift(group, "2024-05-04", CURRENT, REFERENCE)
    assert result.status == "ok" and result.drifted_features == []


@pytest.mark.parametrize("feature", ["minutes", "sessions", "plan"])
def test_one_feature_gone_all_null_is_drift_even_below_the_drifted_share(feature: str) -> None:
    current = CURRENT.copy()
    current[feature] = pd.Series([None] * len(current), dtype=CURRENT[feature].dtype)
    result = detect_drift(group, "2024-05-04", current, REFERENCE)
    assert result.status == "drift" and result.alarm
    assert result.drifted_features == [feature] and result.drifted_share < result.max_drifted_share
    assert next(f for f in result.features if f.feature == feature).method == "all_null"
    assert f"broken in this partition: {feature} (all null)" in result.summary()


def test_a_partition_with_every_feature_null_is_drift_not_skipped() -> None:
    current = pd.DataFrame({"minutes": [np.nan] * 50, "sessions": pd.array([None] * 50, dtype="Int64"), "plan": [None] * 50})
    assert drift_of(current) == {"status": "drift", "minutes": ("all_null", True), "sessions": ("all_null", True), "plan": ("all_null", True)}


@pytest.mark.parametrize(("feature", "value"), [("minutes", 12.5), ("sessions", 4), ("plan", "free")])
def test_one_feature_gone_constant_is_drift(feature: str, value: object) -> None:
    current = CURRENT.assign(**{feature: value})
    drift = drift_of(current)
    assert drift["status"] == "drift" and drift[feature] == ("constant", True)


def test_a_feature_constant_in_the_reference_too_is_not_drift() -> None:
    reference, current = REFERENCE.assign(plan="free"), CURRENT.assign(plan="free")
    assert drift_of(current, reference) == {
        "status": "ok", "minutes": (drift_of(CURRENT)["minutes"][0], False), "sessions": (drift_of(CURRENT)["sessions"][0], False), "plan": ("constant", False),
    }


def test_a_feature_mostly_null_in_the_reference_may_be_null_in_a_small_partition() -> None:
    reference = REFERENCE.assign(plan=[None if i % 10 else "free" for i in range(len(REFERENCE))])
    current = CURRENT.head(10).assign(plan=None)
    assert drift_of(current, reference)["plan"] == ("all_null", False)  # 0.9 ** 10 = 0.35: nothing unusual


def test_a_feature_without_reference_values_is_left_out() -> None:
    result = detect_drift(group, "2024-05-04", CURRENT, REFERENCE.assign(plan=None))
    assert [f.feature for f in result.features] == ["minutes", "sessions"]


@settings(max_examples=20, deadline=None)
@given(
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=0.01, max_value=1e4),
    st.integers(min_value=5, max_value=400),
    st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)),
)
def test_any_varied_reference_against_an_all_null_or_constant_partition_is_drift(loc: float, scale: float, rows: int, constant: float | None) -> None:
    single = FeatureGroup("single", entities=[user], features=[Feature("x", "float64")], partitions=DailyPartitions("2024-05-01"), drift=DriftSettings())
    reference = pd.DataFrame({"x": np.random.default_rng(rows).normal(loc, scale, 500)})
    current = pd.DataFrame({"x": [np.nan if constant is None else constant] * rows})
    result = detect_drift(single, "2024-05-04", current, reference)
    assert result.status == "drift" and result.drifted_features == ["x"]


def test_a_stored_all_null_partition_fails_the_dagster_drift_check_and_alerts_once(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        instance = dg.DagsterInstance.ephemeral()
        quality_group = payment_group()
        defs = repository(quality_group, payments())
        store = FeatureStore([quality_group], offline_root=tmp_path / "offline", project="test")
        store.apply()
        rng = np.random.default_rng(3)
        for day in ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"):
            amounts = rng.lognormal(3.0, 0.5, 200) if day != "2024-05-04" else [np.nan] * 200
            frame = pd.DataFrame({"user_id": np.arange(200), "event_time": pd.Timestamp(f"{day} 12:00"), "last_amount": amounts})
            store.write_partition("payment_features", day, frame, validate=False)
        start = tick(instance, tmp_path, receiver.url, None).cursor

        result = materialize(defs, tmp_path, ("drift",), "2024-05-04", instance=instance)

        assert result.success
        check = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(["drift", "payment_features"]), "drift"))
        assert check is not None and not check.event.asset_check_evaluation.passed
        assert check.event.asset_check_evaluation.metadata["drifted_features"].value == "last_amount"
        tick(instance, tmp_path, receiver.url, start)
        (alert,) = receiver.alerts
        assert (alert["kind"], alert["partition"]) == ("drift", "2024-05-04")
    finally:
        receiver.close()


def test_check_partition_reads_the_all_null_partition_from_the_table(tmp_path: Path) -> None:
    store = FeatureStore([group], offline_root=tmp_path / "offline", project="test")
    store.apply()
    for number, day in enumerate(("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")):
        frame = usage(300, seed=number)
        if day == "2024-05-04":
            frame["minutes"] = np.nan
        frame.insert(0, "event_time", pd.Timestamp(f"{day} 08:00"))
        frame.insert(0, "user_id", np.arange(300))
        store.write_partition("usage", day, frame)
    result = check_partition(store.offline, group, "2024-05-04", reports_home=tmp_path)
    assert result.status == "drift" and result.drifted_features == ["minutes"]
