"""Helpers of the reliability tests: a feature group, frames of any size, worker processes, mounts.

Worker processes run `tests/reliability_worker.py` in a fresh interpreter
(deltalake must not be used across a fork), so a test can kill them for real.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "reliability_worker.py"
FIRST_DAY = date(2024, 5, 1)

user = Entity("user", join_keys={"user_id": "int64"})

events = FeatureGroup(
    "events",
    entities=[user],
    features=[Feature("txn_count", "int64"), Feature("amount", "float64"), Feature("writer", "string")],
    partitions=DailyPartitions(start=FIRST_DAY),
    owner="team:reliability",
)

merchant = Entity("merchant", join_keys={"merchant_code": "string"})

merchant_scores = FeatureGroup(
    "merchant_scores",
    entities=[merchant],
    features=[Feature("risk", "float64"), Feature("category", "string")],
    created_time="created_time",
    partitions=None,
    owner="team:reliability",
)


def day(offset: int) -> str:
    """The partition key `offset` days after the group's first day."""
    return (FIRST_DAY + timedelta(days=offset)).isoformat()


def frame(day_key: str, rows: int, *, writer: str = "test") -> pd.DataFrame:
    """`rows` rows of `events` on `day_key`, one per user 0..rows-1, spread over the day."""
    ids = np.arange(rows, dtype="int64")
    return pd.DataFrame(
        {
            "user_id": ids,
            "event_time": pd.Timestamp(day_key, tz="UTC") + pd.to_timedelta(ids % 86_400, unit="s"),
            "txn_count": ids * 2,
            "amount": ids / 4.0,
            "writer": writer,
        }
    )


def merchant_frame(codes: list[str]) -> pd.DataFrame:
    """One `merchant_scores` row per code, on the first day."""
    return pd.DataFrame(
        {
            "merchant_code": codes,
            "event_time": pd.Timestamp(FIRST_DAY, tz="UTC"),
            "created_time": pd.Timestamp(FIRST_DAY, tz="UTC") + pd.Timedelta(hours=1),
            "risk": [0.5] * len(codes),
            "category": ["retail"] * len(codes),
        }
    )


def make_store(root: Path, project: str = "reliability", online_url: str | None = None) -> FeatureStore:
    store = FeatureStore(groups=[events, merchant_scores], offline_root=root, project=project, online_url=online_url)
    store.apply()
    return store


def table_state(store: FeatureStore, group: FeatureGroup = events) -> tuple[int | None, list[tuple]]:
    """The table's Delta version and every stored row (with its write time), sorted: equal means untouched."""
    table = store.offline.read(group, columns=[*group.input_columns, "_written_at"])
    rows = sorted(tuple(r.values()) for r in table.to_pylist())
    return store.offline.version(group), rows


def start_worker(*args: object) -> subprocess.Popen:
    """Start `reliability_worker.py args...` in a new interpreter; stdout carries its JSON result."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_result(process: subprocess.Popen, timeout: float = 120) -> dict:
    """Wait for a worker and return the JSON it printed last."""
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"worker printed no result (exit {process.returncode}): {err[-2000:]}"
    return json.loads(lines[-1])


def wait_for_new_file(folder: Path, known: set[Path], process: subprocess.Popen, timeout: float = 60) -> Path:
    """Poll until a data file not in `known` appears under `folder` (the write has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.exists():
            for path in folder.rglob("*"):
                if path.is_file() and "_delta_log" not in path.parts and path not in known:
                    return path
        assert process.poll() is None, f"worker ended before writing: {process.communicate()}"
        time.sleep(0.002)
    raise AssertionError(f"no data file appeared under {folder} within {timeout}s")


@contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A real size-limited filesystem at `path` (needs root); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
