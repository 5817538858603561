"""The landing sensor launches each changed day's partitions once, across restarts, from real files."""

import os
from pathlib import Path

import dagster as dg

from feature_platform.orchestration.sensors import RANGE_END, RANGE_START
from tests.ops_fixtures import GROUPS, land, landing_defs


def evaluate(defs: dg.Definitions, cursor: str | None) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def("clicks_landing")
    context = dg.build_sensor_context(cursor=cursor, definitions=defs, resources={"feature_platform_store": defs.resources["feature_platform_store"]})
    return sensor.evaluate_tick(context)


def requested(result) -> list[tuple[tuple[str, ...], str, str]]:
    """(asset key, first partition, last partition) of each run request, sorted."""
    out = []
    for request in result.run_requests:
        first = request.partition_key or request.tags[RANGE_START]
        last = request.partition_key or request.tags[RANGE_END]
        out += [(tuple(k.path), first, last) for k in request.asset_selection]
    return sorted(out)


def test_a_new_day_launches_the_partitions_it_feeds(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    land(tmp_path / "raw", "2024-05-03", [1, 2])
    result = evaluate(defs, None)
    assert requested(result) == [
        (("features", "clicks_3d"), "2024-05-03", "2024-05-05"),
        (("features", "daily_clicks"), "2024-05-03", "2024-05-03"),
    ]


def test_an_unchanged_folder_launches_nothing_on_the_next_tick(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    land(tmp_path / "raw", "2024-05-03", [1, 2])
    first = evaluate(defs, None)
    second = evaluate(defs, first.cursor)
    assert second.run_requests == []
    assert second.cursor == first.cursor


def test_a_restart_with_the_saved_cursor_misses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    land(tmp_path / "raw", "2024-05-03", [1])
    saved = evaluate(defs, None).cursor
    land(tmp_path / "raw", "2024-05-10", [4])  # lands while the daemon is down
    restarted, _ = landing_defs(tmp_path)
    result = evaluate(restarted, saved)
    assert requested(result) == [
        (("features", "clicks_3d"), "2024-05-10", "2024-05-12"),
        (("features", "daily_clicks"), "2024-05-10", "2024-05-10"),
    ]


def test_a_replaced_file_launches_its_day_again_under_a_new_run_key(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    path = land(tmp_path / "raw", "2024-05-03", [1])
    first = evaluate(defs, None)
    land(tmp_path / "raw", "2024-05-03", [1, 1, 2])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    second = evaluate(defs, first.cursor)
    assert requested(second) == requested(first)
    assert {r.run_key for r in second.run_requests}.isdisjoint({r.run_key for r in first.run_requests})


def test_consecutive_days_landing_together_share_one_range_run_per_group(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    for day in ("2024-05-03", "2024-05-04", "2024-05-05"):
        land(tmp_path / "raw", day, [1])
    assert requested(evaluate(defs, None)) == [
        (("features", "clicks_3d"), "2024-05-03", "2024-05-07"),
        (("features", "daily_clicks"), "2024-05-03", "2024-05-05"),
    ]


def test_hidden_temporary_files_and_foreign_folders_are_ignored(tmp_path: Path) -> None:
    defs, _ = landing_defs(tmp_path)
    (tmp_path / "raw" / "clicks" / "2024-05-03").mkdir(parents=True)
    (tmp_path / "raw" / "clicks" / "2024-05-03" / ".part-0.parquet").write_bytes(b"half written")
    (tmp_path / "raw" / "clicks" / "_checkpoints").mkdir()
    (tmp_path / "raw" / "clicks" / "_checkpoints" / "x.parquet").write_bytes(b"not a day")
    result = evaluate(defs, None)
    assert result.run_requests == []


def test_a_requested_partition_runs_and_writes_the_landed_rows(tmp_path: Path) -> None:
    defs, resource = landing_defs(tmp_path)
    land(tmp_path / "raw", "2024-05-03", [1, 1, 2])
    request = next(r for r in evaluate(defs, None).run_requests if r.asset_selection[0].path[-1] == "daily_clicks")
    asset = defs.resolve_assets_def(request.asset_selection[0])
    result = dg.materialize([asset], partition_key=request.partition_key)
    assert result.success
    store = resource.build_store(GROUPS)
    frame = store.read_group("daily_clicks").sort_values("user_id")
    assert frame["user_id"].tolist() == [1, 2]
    assert frame["clicks"].tolist() == [2, 1]
