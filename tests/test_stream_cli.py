"""`feature-platform stream GROUP`: the long-running consumer of the demo's stream group, bounded or stopped by SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assets.streaming import generate_transactions
from feature_platform import FeatureStore
from feature_platform.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_env(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"FEATURE_PLATFORM_HOME": str(tmp_path), "FEATURE_PLATFORM_REDIS_URL": redis_url, "FEATURE_PLATFORM_PROJECT": "cli"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FEATURE_PLATFORM_OFFLINE_ROOT", raising=False)
    return values


def publish(count: int) -> FeatureStore:
    store = FeatureStore.from_repo(REPO)
    store.apply()  # the consumer refuses definitions that were not applied
    store.publish_events("card_activity", [{k: v for k, v in e.items() if k != "is_fraud"} for e in generate_transactions(count)])
    return store


def test_stream_until_idle_consumes_everything_and_reports_it(repo_env: dict, capsys: pytest.CaptureFixture) -> None:
    store = publish(200)
    assert main(["stream", "card_activity", "--repo", str(REPO), "--until-idle", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["events"], report["dead_letters"], report["offline_rows"], report["lag_events"]) == (200, 0, 200, 0)
    assert len(store.read_group("card_activity")) == 200


def test_stream_stops_cleanly_on_sigterm_after_its_batch(repo_env: dict) -> None:
    store = publish(100)
    environment = {**os.environ, **repo_env, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "feature_platform.cli", "stream", "card_activity", "--repo", str(REPO), "--json", "--report-every", "1"],
        cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while len(store.read_group("card_activity")) < 100 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    report = json.loads(out)
    assert report["stopped_by_signal"] is True and report["events"] == 100
    assert "card_activity: " in err  # a progress line per --report-every


def test_stream_with_no_retention_trims_what_both_sinks_stored(repo_env: dict, capsys: pytest.CaptureFixture) -> None:
    store = publish(50)

    assert main(["stream", "card_activity", "--repo", str(REPO), "--until-idle", "--retention-minutes", "0", "--json"]) == 0

    assert json.loads(capsys.readouterr().out)["events"] == 50
    assert store.stream("card_activity").length() == 0
    assert len(store.read_group("card_activity")) == 50


def test_stream_refuses_a_negative_read_interval_naming_it(repo_env: dict, capsys: pytest.CaptureFixture) -> None:
    publish(1)

    assert main(["stream", "card_activity", "--repo", str(REPO), "--until-idle", "--min-read-interval-ms", "-5"]) != 0

    assert "min_read_interval must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value", "problem"), [
    ("--min-read-interval-ms", "nan", "must be a finite number, not 'nan'"),
    ("--retention-minutes", "inf", "must be a finite number, not 'inf'"),
    ("--retention-minutes", "1e20", "too long a duration: 1e20 minutes"),
    ("--max-seconds", "nan", "must be a finite number, not 'nan'"),
    ("--report-every", "soon", "not a number: 'soon'"),
])
def test_stream_refuses_numbers_it_cannot_use_naming_the_option(option: str, value: str, problem: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["stream", "card_activity", "--repo", str(REPO), option, value])

    assert refused.value.code == 2
    assert f"argument {option}: {problem}" in capsys.readouterr().err


def test_stream_until_idle_reports_the_last_event_and_rate_of_the_whole_run(repo_env: dict, capsys: pytest.CaptureFixture) -> None:
    store = publish(200)

    assert main(["stream", "card_activity", "--repo", str(REPO), "--until-idle", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)  # its last pass found nothing new
    latest = store.read_group("card_activity")["event_time"].max()
    assert report["last_event_time"] == latest.isoformat()
    assert report["events_per_second"] == pytest.approx(200 / report["seconds"], rel=0.01)
