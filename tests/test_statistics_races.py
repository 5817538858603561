"""Writers racing to create a group's statistics table leave one row per partition, as the offline store does."""

import threading
from pathlib import Path

import pytest

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup
from feature_platform.offline.statistics import StatisticsStore
from feature_platform.offline.store import OfflineStore

user = Entity("user", join_keys={"user_id": "int64"})
group = FeatureGroup("raced", entities=[user], features=[Feature("x", "float64")], partitions=DailyPartitions("2024-05-01"))
WRITERS = 6


def statistics(writer: int) -> dict:
    return {"group": "raced", "version": 1, "rows": writer, "features": {}, "correlations": {}}


@pytest.mark.parametrize("round_", range(4))
def test_writers_racing_to_create_the_statistics_table_leave_one_row_per_partition(tmp_path: Path, round_: int) -> None:
    store = StatisticsStore(OfflineStore(str(tmp_path / "offline"), project="race"))
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            barrier.wait()
            # Every writer replaces the shared partition and one of its own.
            store.write_many(group, {"2024-05-01": statistics(writer), f"2024-06-0{writer + 1}": statistics(writer)})
        except BaseException as error:  # reported below: a thread's exception would be lost
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = store.read(group)
    partitions = [r["partition"] for r in rows]
    assert sorted(partitions) == sorted(["2024-05-01", *(f"2024-06-0{w + 1}" for w in range(WRITERS))])
    assert len(store.read(group, "2024-05-01")) == 1
