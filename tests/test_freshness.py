"""Which partition a daily group's schedule must have committed by a given time."""

from datetime import date, datetime, timedelta

import pytest

from feature_platform import DailyPartitions, Feature, FeatureGroup
from feature_platform.quality.freshness import expected_partition
from tests.quality_fixtures import user


def daily(freshness: timedelta | None = timedelta(hours=6), end: str | None = None) -> FeatureGroup:
    return FeatureGroup("g", entities=[user], features=[Feature("x")], partitions=DailyPartitions("2024-05-01", end), freshness=freshness)


@pytest.mark.parametrize(
    "now, expected",
    [
        ("2024-05-02T05:59+00:00", None),  # the first day closed under 6 hours ago: nothing due yet
        ("2024-05-02T06:00+00:00", date(2024, 5, 1)),
        ("2024-05-10T12:00+00:00", date(2024, 5, 9)),
        ("2024-05-10T03:00+00:00", date(2024, 5, 8)),
    ],
)
def test_the_due_partition_is_the_last_day_closed_longer_than_the_freshness_ago(now: str, expected: date | None) -> None:
    assert expected_partition(daily(), datetime.fromisoformat(now)) == expected


def test_a_group_with_an_end_date_is_never_due_after_its_last_partition() -> None:
    assert expected_partition(daily(end="2024-05-05"), datetime.fromisoformat("2024-06-01T00:00+00:00")) == date(2024, 5, 4)


def test_groups_without_freshness_or_partitions_are_not_watched() -> None:
    assert expected_partition(daily(freshness=None), datetime.fromisoformat("2024-06-01T00:00+00:00")) is None
    snapshot = FeatureGroup("s", entities=[user], features=[Feature("x")], partitions=None)
    assert expected_partition(snapshot, datetime.fromisoformat("2024-06-01T00:00+00:00")) is None
