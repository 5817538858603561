"""The persisted registry: history, concurrent applies, faults (unreadable, nonsense, SIGKILL), retire, and the CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView
from feature_platform.applying import ApplyRefused
from feature_platform.cli import main
from feature_platform.errors import DefinitionMismatchError, FeaturePlatformError, RegistryError

TESTS = Path(__file__).parent
WORKER = TESTS / "registry_worker.py"
user = Entity("user", join_keys={"user_id": "int64"})
DAY = "2024-01-02"


def scores(*extra: str, version: int = 1, name: str = "scores") -> FeatureGroup:
    features = [Feature("score", "int64"), Feature("label", "string"), *(Feature(f, "int64") for f in extra)]
    return FeatureGroup(name, entities=[user], features=features, partitions=DailyPartitions(start="2024-01-01"), version=version)


def store_of(root: Path, *groups: FeatureGroup, views=(), redis_url: str | None = None) -> FeatureStore:
    return FeatureStore(list(groups), list(views), offline_root=root, online_url=redis_url, project="changes")


def rows(**features) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "event_time": pd.Timestamp(f"{DAY} 12:00", tz="UTC"), "score": [10, 20], "label": ["a", "b"], **features})


def worker(root: Path, name: str, extra: str, go: "Path | str") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(WORKER), str(root), name, extra, str(go)], stdout=subprocess.PIPE, text=True, env=env)


def test_each_apply_is_recorded_with_who_when_and_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_APPLIED_BY", "ada@laptop")
    store_of(tmp_path, scores()).apply()
    store_of(tmp_path, scores("rank")).apply()
    store_of(tmp_path, scores("rank")).apply()  # no change: nothing recorded
    history = store_of(tmp_path, scores("rank")).registry_history()
    assert [(h["sequence"], h["applied_by"], h["action"]) for h in history] == [(1, "ada@laptop", "apply"), (0, "ada@laptop", "apply")]
    assert [(c["name"], c["action"]) for c in history[0]["changes"]] == [("scores", "update in place")]
    assert history[0]["applied_at"] >= history[1]["applied_at"]


def test_two_applies_of_different_groups_at_once_both_land(tmp_path):
    go = tmp_path / "go"
    workers = [worker(tmp_path, name, "", go) for name in ("left", "right")]
    time.sleep(2.5)
    go.touch()
    results = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    assert all(r["ok"] for r in results), results
    state = store_of(tmp_path).registry.snapshot().state
    assert sorted(state.groups) == ["left", "right"]
    assert len(store_of(tmp_path).registry_history()) == 2


def test_two_conflicting_applies_at_once_one_wins_and_the_other_is_refused_cleanly(tmp_path):
    store_of(tmp_path, scores()).apply()
    store_of(tmp_path, scores()).write_partition("scores", DAY, rows())
    go = tmp_path / "go"
    workers = [worker(tmp_path, "scores", extra, go) for extra in ("rank", "level")]
    time.sleep(2.5)
    go.touch()
    results = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    winners = [r for r in results if r["ok"]]
    assert len(winners) == 1, results
    loser = next(r for r in results if not r["ok"])
    assert loser["error"] == "ApplyRefused" and "nothing was applied" in loser["message"]
    applied = store_of(tmp_path).registry.snapshot().state.entry("scores", 1)["record"]
    extra = applied["features"][2]["name"]
    after = store_of(tmp_path, scores(extra))
    after.write_partition("scores", "2024-01-03", rows(**{extra: [1, 2]}).assign(event_time=pd.Timestamp("2024-01-03", tz="UTC")))
    assert after.read_group("scores")["score"].tolist() == [10, 20, 10, 20]


def test_an_apply_killed_after_evolving_the_table_leaves_a_consistent_record_and_the_next_apply_finishes(tmp_path):
    store_of(tmp_path, scores()).apply()
    store_of(tmp_path, scores()).write_partition("scores", DAY, rows())
    offline = store_of(tmp_path, scores()).offline
    process = worker(tmp_path, "scores", "rank", "")
    while "rank" not in offline.stored_columns(scores()) and process.poll() is None:
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = [f["name"] for f in store_of(tmp_path).registry.snapshot().state.entry("scores", 1)["record"]["features"]]
    assert recorded in (["score", "label"], ["score", "label", "rank"])
    old = store_of(tmp_path, scores())
    if recorded == ["score", "label"]:  # killed before the record: old definitions still read and write
        old.write_partition("scores", DAY, rows())
        assert old.read_group("scores")["score"].tolist() == [10, 20]
    new = store_of(tmp_path, scores("rank"))
    new.apply()
    assert [i.action for i in new.plan().items] == ["no change"]
    assert new.read_group("scores")[["score", "rank"]].astype(object).where(lambda f: f.notna(), None).values.tolist() == [[10, None], [20, None]]


def test_an_unreadable_registry_is_a_clear_error_and_changes_nothing(tmp_path):
    store_of(tmp_path, scores()).apply()
    log = tmp_path / "changes" / "_registry" / "_delta_log"
    for entry in log.iterdir():
        entry.unlink()
    log.rmdir()
    log.write_text("a file where the log folder was")  # storage that answers, but not with a Delta log
    with pytest.raises(RegistryError, match=r"(?s)cannot read the registry at .*_registry: .*; nothing was read or changed"):
        store_of(tmp_path, scores("rank")).apply()
    assert log.read_text() == "a file where the log folder was"


def test_a_registry_whose_log_is_gone_is_a_clear_error(tmp_path):
    store_of(tmp_path, scores()).apply()
    log = tmp_path / "changes" / "_registry" / "_delta_log"
    for entry in log.iterdir():
        entry.write_text("{not json")
    with pytest.raises(RegistryError, match="_registry"):
        store_of(tmp_path, scores()).plan()


def test_a_registry_edited_into_nonsense_is_refused_on_plan_apply_and_every_path(tmp_path):
    store_of(tmp_path, scores()).apply()
    uri = f"{tmp_path}/changes/_registry"
    row = DeltaTable(uri).to_pyarrow_table().to_pylist()[0]
    nonsense = {**row, "sequence": 1, "state": json.dumps({"format": 1, "groups": {"scores": {"1": {"record": "x"}}}, "views": {}})}
    write_deltalake(uri, pa.Table.from_pylist([nonsense], schema=DeltaTable(uri).to_pyarrow_dataset().schema), mode="append")
    fresh = store_of(tmp_path, scores())
    for call in (fresh.plan, fresh.apply, lambda: fresh.write_partition("scores", DAY, rows())):
        with pytest.raises(RegistryError, match="holds a record that is not valid .* changed outside feature-platform"):
            call()
    assert not fresh.offline.exists(scores())


def test_retire_removes_online_keys_marks_the_version_retired_and_keeps_the_table(tmp_path, redis_url):
    v1, v2 = scores(), scores(version=2)
    store = store_of(tmp_path, v1, v2, redis_url=redis_url)
    store.apply()
    store.write_partition("scores", DAY, rows(), version=1)
    store.sync_to_online("scores", version=1)
    assert store.retire("scores", 1, dry_run=True).as_dict() == {
        "group": "scores", "version": 1, "online_keys_deleted": 0, "offline_table": "would be kept", "training_datasets": [], "dry_run": True,
    }
    assert store.retire("scores", 1).online_keys_deleted == 2
    fresh = store_of(tmp_path, v1, v2, redis_url=redis_url)
    with pytest.raises(DefinitionMismatchError, match="feature group 'scores' v1 was retired"):
        fresh.read_group("scores", version=1)
    assert store.offline.exists(v1)
    plan = fresh.plan()
    assert next(i for i in plan.items if i.version == 1).details == ("v1 was retired; define version=3 to start a new table",)


def test_retire_refuses_to_delete_a_table_a_training_dataset_reads_unless_forced(tmp_path, redis_url):
    store = store_of(tmp_path, scores(), views=(FeatureView("model", features=["scores:score"]),), redis_url=redis_url)
    store.apply()
    store.write_partition("scores", DAY, rows())
    store.create_training_dataset("model", pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-03", tz="UTC")}))
    with pytest.raises(ApplyRefused, match=r"read by views \['model'\].*--force"):
        store.retire("scores", 1)
    moved = store_of(tmp_path, scores(), scores(version=2), views=(FeatureView("model", features=["scores:score"], version=2),), redis_url=redis_url)
    moved.apply()
    with pytest.raises(ApplyRefused, match=r"read by training datasets \['model v1'\].*--force"):
        moved.retire("scores", 1, delete_offline=True)
    assert moved.offline.exists(scores())
    assert moved.retire("scores", 1, delete_offline=True, force=True).offline_table == "deleted"
    assert not moved.offline.exists(scores())


def test_rebuilding_a_dataset_whose_table_was_deleted_names_the_missing_table(tmp_path, redis_url):
    store = store_of(tmp_path, scores(), views=(FeatureView("model", features=["scores:score"]),), redis_url=redis_url)
    store.apply()
    store.write_partition("scores", DAY, rows())
    store.create_training_dataset("model", pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-03", tz="UTC")}))
    store.retire("scores", 1, delete_offline=True, force=True)
    with pytest.raises(FeaturePlatformError, match=r"training dataset 'model' v1 read feature group 'scores' v1 at Delta version 0, but its table .* is gone"):
        store.rebuild_training_dataset("model", 1)


def test_a_view_keeps_reading_v1_after_v2_exists_until_its_version_is_bumped(tmp_path, redis_url):
    view = FeatureView("model", features=["scores:score"])
    first = store_of(tmp_path, scores(), views=(view,), redis_url=redis_url)
    first.apply()
    first.write_partition("scores", DAY, rows())
    first.sync_to_online("scores")
    entities = pd.DataFrame({"user_id": [1, 2], "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
    both = store_of(tmp_path, scores(), scores(version=2), views=(view,), redis_url=redis_url)
    view_item = next(i for i in both.plan().items if i.kind == "view")
    assert view_item.details == ("keeps reading scores v1 (bump the view's version to move to v2)",)
    both.apply()
    assert both.get_historical_features(entities, "model")["score"].tolist() == [10, 20]
    assert both.get_online_features([{"user_id": 1}], "model").to_dict()["score"] == [10]
    assert both.get_online_features([{"user_id": 1}], ["scores@2:score"]).to_dict(include_statuses=True)["score__status"] == ["NOT_FOUND"]
    bumped = store_of(tmp_path, scores(), scores(version=2), views=(FeatureView("model", features=["scores:score"], version=2),), redis_url=redis_url)
    assert next(i for i in bumped.plan().items if i.kind == "view").details == ("moves scores v1 -> v2",)
    bumped.apply()
    assert bumped.get_historical_features(entities, "model")["score"].isna().all()


def test_a_pinned_reference_reads_the_pinned_version(tmp_path, redis_url):
    store = store_of(tmp_path, scores(), scores(version=2), views=(FeatureView("old", features=["scores@1:score"]),), redis_url=redis_url)
    store.apply()
    store.write_partition("scores", DAY, rows(), version=1)
    entities = pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
    assert store.get_historical_features(entities, "old")["score"].tolist() == [10]


def cli_repo(tmp_path: Path, group_source: str) -> Path:
    repo = tmp_path / "repo"
    (repo / "assets").mkdir(parents=True, exist_ok=True)
    (repo / "assets" / "__init__.py").write_text(
        "from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup\n"
        "user = Entity('user', join_keys={'user_id': 'int64'})\n"
        f"feature_groups = [FeatureGroup('scores', entities=[user], features=[{group_source}], partitions=DailyPartitions('2024-01-01'))]\n"
        "feature_views = []\nraw_sources = []\n"
    )
    return repo


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_OFFLINE_ROOT", str(tmp_path / "offline"))
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", "cli")
    # Loading a repository puts it first on sys.path and imports its `assets`: undo both for later tests.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "assets", raising=False)
    yield
    for name in [m for m in sys.modules if m == "assets" or m.startswith("assets.")]:
        del sys.modules[name]


def run_cli(capsys, *args: str) -> tuple[int, str]:
    sys.modules.pop("assets", None)
    code = main(list(args))
    return code, capsys.readouterr().out


def test_cli_plan_then_apply_then_plan_again(tmp_path, cli_env, capsys):
    repo = cli_repo(tmp_path, "Feature('score', 'int64')")
    code, out = run_cli(capsys, "plan", "--repo", str(repo))
    assert (code, out) == (0, "group scores v1: create\napply would change 1 object(s)\n")
    assert run_cli(capsys, "apply", "--repo", str(repo)) == (0, "group scores v1: create\napplied 1 object(s)\n")
    assert run_cli(capsys, "plan", "--repo", str(repo)) == (0, "group scores v1: no change\nno changes: the registry matches the definitions\n")


def test_cli_plan_exits_non_zero_when_apply_would_refuse(tmp_path, cli_env, capsys):
    run_cli(capsys, "apply", "--repo", str(cli_repo(tmp_path, "Feature('score', 'int64')")))
    repo = cli_repo(tmp_path, "Feature('score', 'float64')")
    code, out = run_cli(capsys, "plan", "--repo", str(repo))
    assert code == 1
    assert "group scores v1: refused\n    retypes feature(s) ['score int64 -> double']" in out
    assert main(["apply", "--repo", str(repo)]) == 2
    assert "apply refused, nothing was applied" in capsys.readouterr().err


def test_a_store_that_read_a_view_before_an_apply_reads_the_newly_applied_versions_after_it(tmp_path, redis_url):
    first = store_of(tmp_path, scores(), views=(FeatureView("model", features=["scores:score"]),), redis_url=redis_url)
    first.apply()
    first.write_partition("scores", DAY, rows())
    entities = pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
    bumped = store_of(tmp_path, scores(), scores(version=2), views=(FeatureView("model", features=["scores:score"], version=2),), redis_url=redis_url)
    with pytest.raises(DefinitionMismatchError, match="feature view 'model' v2 differs from what was applied"):
        bumped.get_historical_features(entities, "model")
    bumped.apply()
    assert bumped.get_historical_features(entities, "model")["score"].isna().all()  # v2 now, and empty
