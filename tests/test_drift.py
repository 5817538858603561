"""Drift of a partition against its reference window, with Evidently, read from the Delta table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from feature_platform.definitions.rules import DriftSettings
from feature_platform.quality.drift import check_partition, detect_drift, reference_window
from tests.quality_fixtures import user

group = FeatureGroup(
    "spend",
    entities=[user],
    features=[Feature("amount", "float64"), Feature("visits", "int64"), Feature("channel", "string")],
    partitions=DailyPartitions("2024-05-01"),
    drift=DriftSettings(reference_partitions=3, max_drifted_share=0.3),
)


def day_frame(day: str, *, rows: int = 1500, amount_scale: float = 1.0, channels: tuple[float, float] = (0.7, 0.3)) -> pd.DataFrame:
    rng = np.random.default_rng(date_seed(day))
    return pd.DataFrame(
        {
            "user_id": np.arange(rows),
            "event_time": pd.Timestamp(day),
            "amount": rng.lognormal(3.0, 0.6, rows) * amount_scale,
            "visits": rng.poisson(5, rows),
            "channel": rng.choice(["web", "app"], rows, p=list(channels)),
        }
    )


def date_seed(day: str) -> int:
    return int(day.replace("-", ""))


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    """Four same-distribution days, then a day with amounts tripled."""
    store = FeatureStore([group], offline_root=tmp_path / "offline", project="test", home=tmp_path)
    store.apply()
    for day in ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"):
        store.write_partition("spend", day, day_frame(day))
    store.write_partition("spend", "2024-05-05", day_frame("2024-05-05", amount_scale=3.0))
    return store


def test_shifted_partition_is_detected_with_per_feature_scores_and_a_saved_report(store: FeatureStore, tmp_path: Path) -> None:
    result = check_partition(store.offline, group, "2024-05-05", reports_home=tmp_path)
    assert result.status == "drift" and result.alarm
    assert result.drifted_features == ["amount"]
    assert result.drifted_share == pytest.approx(1 / 3)
    assert result.reference == ("2024-05-02", "2024-05-04") and result.reference_rows == 4500
    amount = result.features[0]
    assert amount.method.startswith("Wasserstein") and amount.score > amount.threshold
    report = tmp_path / "reports" / "test" / "spend" / "2024-05-05.html"
    assert result.report_path == str(report) and report.stat().st_size > 10_000


def test_same_distribution_partition_is_not_drift(store: FeatureStore, tmp_path: Path) -> None:
    result = check_partition(store.offline, group, "2024-05-04", reports_home=tmp_path)
    assert result.status == "ok" and result.drifted_features == [] and result.drifted_share == 0.0


def test_first_partition_is_skipped_with_a_reason(store: FeatureStore, tmp_path: Path) -> None:
    result = check_partition(store.offline, group, "2024-05-01", reports_home=tmp_path)
    assert result.status == "skipped" and not result.alarm
    assert result.reason == "no reference data yet (no rows in the reference window)"
    assert result.report_path is None


def test_pinned_baseline_is_used_instead_of_the_previous_partitions(store: FeatureStore, tmp_path: Path) -> None:
    pinned = DriftSettings(baseline=("2024-05-05", "2024-05-05"), max_drifted_share=0.3)
    result = check_partition(store.offline, group, "2024-05-04", reports_home=tmp_path, settings=pinned)
    assert result.reference == ("2024-05-05", "2024-05-05") and result.drifted_features == ["amount"]


def test_reference_window_is_the_previous_n_days() -> None:
    assert reference_window(DriftSettings(reference_partitions=7), "2024-05-08") == ("2024-05-01", "2024-05-07")


def test_large_partitions_are_sampled_and_categorical_shift_is_seen() -> None:
    settings = DriftSettings(sample_size=500, max_drifted_share=0.3)
    current = day_frame("2024-05-09", rows=5000, channels=(0.2, 0.8))
    reference = pd.concat([day_frame(d, rows=5000) for d in ("2024-05-06", "2024-05-07")])
    result = detect_drift(group, "2024-05-09", current, reference, settings=settings)
    assert result.drifted_features == ["channel"]
    assert (result.current_rows, result.reference_rows) == (5000, 10000)
