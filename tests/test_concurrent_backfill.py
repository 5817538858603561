"""Two processes backfilling 30 partitions of one group at once: every partition lands."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.ops_fixtures import GROUPS, land, landing_defs, materialize_days

DAYS = [(date(2024, 5, 1) + timedelta(days=i)).isoformat() for i in range(30)]


@pytest.mark.slow
def test_thirty_partitions_committed_by_two_processes_all_land(tmp_path: Path) -> None:
    for i, day in enumerate(DAYS):
        land(tmp_path / "raw", day, [1] * (i + 1) + [2])
    halves = [DAYS[0::2], DAYS[1::2]]  # interleaved, so both write the same table at the same time
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        failed = list(pool.map(materialize_days, [str(tmp_path)] * 2, [str(tmp_path / "raw")] * 2, halves))
    assert failed == [[], []]
    _, resource = landing_defs(tmp_path)
    store = resource.build_store(GROUPS)
    frame = store.read_group("daily_clicks")
    assert sorted(frame["event_time"].dt.date.astype(str).unique()) == DAYS
    assert frame[frame["user_id"] == 1].sort_values("event_time")["clicks"].tolist() == list(range(1, 31))
    assert len(store.history("daily_clicks")) == 30
