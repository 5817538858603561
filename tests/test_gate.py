"""The quality gate without Dagster: validate per partition, commit only what passes."""

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from feature_platform.definitions.rules import Rule
from feature_platform.quality.gate import stretches, write_validated
from tests.quality_fixtures import user


@given(st.sets(st.integers(min_value=0, max_value=60), max_size=30))
def test_stretches_cover_exactly_the_days_in_maximal_consecutive_ranges(offsets: set[int]) -> None:
    first = date(2024, 5, 1)
    keys = [(first + timedelta(days=o)).isoformat() for o in offsets]
    ranges = [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in stretches(keys)]
    covered = [a + timedelta(days=i) for a, b in ranges for i in range((b - a).days + 1)]
    assert sorted(covered) == sorted(date.fromisoformat(k) for k in keys)
    assert all(later[0] - earlier[1] > timedelta(days=1) for earlier, later in zip(ranges, ranges[1:]))


def rows(day: str, amounts: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": range(len(amounts)), "event_time": pd.Timestamp(f"{day} 10:00"), "amount": amounts})


def test_an_unpartitioned_group_with_an_error_is_not_written(tmp_path: Path) -> None:
    group = FeatureGroup("snapshot", entities=[user], features=[Feature("amount")], partitions=None, rules=[Rule.in_range("amount", min=0)])
    store = FeatureStore([group], offline_root=tmp_path)
    store.apply()
    gated = write_validated(store.offline, group, rows("2024-05-01", [1.0, -1.0]), None)
    assert gated.blocked == (None,) and gated.writes == () and not store.offline.exists(group)


def test_only_passing_partitions_of_a_range_are_committed(tmp_path: Path) -> None:
    group = FeatureGroup("daily", entities=[user], features=[Feature("amount")], partitions=DailyPartitions("2024-05-01"), rules=[Rule.in_range("amount", min=0)])
    store = FeatureStore([group], offline_root=tmp_path)
    store.apply()
    store.write_partition("daily", "2024-05-02", rows("2024-05-02", [7.0]))
    frame = pd.concat([rows("2024-05-01", [1.0]), rows("2024-05-02", [-5.0, 2.0]), rows("2024-05-03", [3.0])])
    gated = write_validated(store.offline, group, frame, ["2024-05-01", "2024-05-02", "2024-05-03"])
    assert (gated.committed, gated.blocked) == (("2024-05-01", "2024-05-03"), ("2024-05-02",))
    stored = store.read_group("daily").sort_values("event_time")
    assert stored["amount"].tolist() == [1.0, 7.0, 3.0]  # 2024-05-02 kept its previous row
