"""Per-partition statistics: correct on a small known frame, stored beside the table, described for the CLI."""

from pathlib import Path

import pandas as pd
import pytest

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from feature_platform.offline.statistics import StatisticsStore, compute_statistics, describe_statistics, render_statistics
from tests.quality_fixtures import user

group = FeatureGroup(
    "known",
    entities=[user],
    features=[Feature("amount", "float64"), Feature("count", "int64"), Feature("segment", "string"), Feature("vip", "bool")],
    partitions=DailyPartitions("2024-05-01"),
)


def known_frame() -> pd.DataFrame:
    """Five rows: amount 1..4 and one null, count = 2 * amount, segments a,a,a,b,null, vip T,F,T,T,F."""
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5],
            "event_time": pd.Timestamp("2024-05-01"),
            "amount": [1.0, 2.0, 3.0, 4.0, None],
            "count": pd.array([2, 4, 6, 8, None], dtype="Int64"),
            "segment": ["a", "a", "a", "b", None],
            "vip": [True, False, True, True, False],
        }
    )


def test_numeric_statistics_of_a_known_frame() -> None:
    stats = compute_statistics(group, known_frame())
    amount = stats["features"]["amount"]
    assert stats["rows"] == 5
    assert amount["null_fraction"] == pytest.approx(0.2)
    assert (amount["min"], amount["max"], amount["mean"]) == (1.0, 4.0, 2.5)
    assert amount["std"] == pytest.approx(1.2909944, rel=1e-6)
    assert amount["quantiles"]["p50"] == 2.5 and amount["quantiles"]["p25"] == 1.75
    assert sum(amount["histogram"]["counts"]) == 4 and amount["histogram"]["edges"][0] == 1.0


def test_categorical_statistics_count_distinct_and_top_values() -> None:
    stats = compute_statistics(group, known_frame())
    assert stats["features"]["segment"]["distinct"] == 2
    assert stats["features"]["segment"]["top"] == [{"value": "a", "count": 3}, {"value": "b", "count": 1}]
    assert stats["features"]["segment"]["null_fraction"] == pytest.approx(0.2)
    assert stats["features"]["vip"]["top"][0] == {"value": "True", "count": 3}


def test_correlations_between_numeric_features() -> None:
    stats = compute_statistics(group, known_frame())
    assert stats["correlations"]["amount"]["count"] == pytest.approx(1.0)
    assert set(stats["correlations"]) == {"amount", "count"}


def test_statistics_of_an_empty_partition_have_no_numbers() -> None:
    stats = compute_statistics(group, known_frame().iloc[0:0])
    assert stats["rows"] == 0 and stats["features"]["amount"]["mean"] is None and stats["correlations"] == {}


def test_stored_statistics_are_replaced_per_partition_and_read_in_order(tmp_path: Path) -> None:
    store = FeatureStore([group], offline_root=tmp_path / "offline", project="test")
    store.apply()
    statistics = StatisticsStore(store.offline)
    statistics.write(group, "2024-05-02", compute_statistics(group, known_frame()))
    statistics.write(group, "2024-05-01", compute_statistics(group, known_frame().head(2)))
    statistics.write(group, "2024-05-02", compute_statistics(group, known_frame().head(3)))
    stored = statistics.read(group)
    assert [(s["partition"], s["rows"]) for s in stored] == [("2024-05-01", 2), ("2024-05-02", 3)]
    assert statistics.table_uri(group) == f"{tmp_path / 'offline'}/test/_statistics/known/v1"


def test_describe_statistics_gives_the_latest_partition_and_the_row_counts(tmp_path: Path) -> None:
    store = FeatureStore([group], offline_root=tmp_path / "offline", project="test")
    store.apply()
    assert describe_statistics(store.offline, store.group("known"))["latest"] is None
    StatisticsStore(store.offline).write(group, "2024-05-01", compute_statistics(group, known_frame()))
    described = describe_statistics(store.offline, store.group("known"))
    assert described["row_counts"] == {"2024-05-01": 5}
    assert described["latest"]["features"]["amount"]["mean"] == 2.5
    text = render_statistics(described)
    assert "latest partition 2024-05-01: 5 rows" in text
    assert "2 distinct: a (3), b (1)" in text
    assert "amount~count +1.00" in text


def test_describe_lists_the_groups_rules(tmp_path: Path) -> None:
    from feature_platform.definitions.rules import Rule

    ruled = FeatureGroup("ruled", entities=[user], features=[Feature("amount")], rules=[Rule.in_range("amount", min=0, description="No refunds.")])
    store = FeatureStore([ruled], offline_root=tmp_path / "offline")
    store.apply()
    assert store.describe("ruled")["rules"] == ["[ERROR] amount in [0, inf]: No refunds."]
