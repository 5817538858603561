"""Benchmark: point-in-time retrieval from Delta vs a bare DuckDB ASOF join of the same data in memory.

Two cases: `big` (two groups of 10M rows each, 1M users, 10 + 5 float features,
daily and second-level event times, 1M entity rows) and `small` (1M rows per
group, 100k entity rows). Data is written to Delta once (not timed). Each
measurement runs in a fresh process: `ours` times `get_historical_features`
(Delta read + join), `baseline` times DuckDB's ASOF join on Arrow tables
already loaded. Prints JSON; targets from issue 3 are included.

    PYTHONPATH=. python bench/pit_join.py --root /tmp/pit_bench --repeat 3
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore

CASES = {
    "big": {"users": 1_000_000, "rows": 10_000_000, "entity_rows": 1_000_000},
    "small": {"users": 100_000, "rows": 1_000_000, "entity_rows": 100_000},
}
DAYS = 10
START = pd.Timestamp("2024-01-01", tz="UTC")
TARGETS = {"big": {"seconds": 4.0, "peak_rss_gb": 1.4, "ratio_to_baseline": 1.3}, "small": {"seconds": 0.5}}

user = Entity("user", join_keys={"user_id": "int64"})
daily = FeatureGroup(
    "user_daily", entities=[user], features=[Feature(f"d{i}", "float64") for i in range(10)],
    partitions=DailyPartitions(start="2023-12-01"), ttl=timedelta(days=2),
)
events = FeatureGroup(
    "user_events", entities=[user], features=[Feature(f"e{i}", "float64") for i in range(5)],
    partitions=DailyPartitions(start="2023-12-01"), ttl=timedelta(days=7),
)
FEATURES = [f"user_daily:d{i}" for i in range(10)] + [f"user_events:e{i}" for i in range(5)]


def store_at(root: Path) -> FeatureStore:
    store = FeatureStore(groups=[daily, events], offline_root=root / "offline", project="bench")
    store.apply()  # record the definitions (reads and writes check them); a no-op once applied
    return store


def prepare(root: Path, case: dict[str, int]) -> None:
    """Write both groups (one commit each) and the entity frame, unless already there."""
    if (root / "entities.parquet").exists():
        return
    rng = np.random.default_rng(42)
    store = store_at(root)
    per_day = case["rows"] // DAYS
    users = np.arange(per_day) % case["users"]
    frame = {
        "user_id": np.tile(users, DAYS),
        "event_time": START + pd.to_timedelta(np.repeat(np.arange(DAYS), per_day), unit="D"),
    }
    frame.update({f"d{i}": rng.random(per_day * DAYS) for i in range(10)})
    last = (START + timedelta(days=DAYS - 1)).date().isoformat()
    store.offline.write_partitions(daily, START.date().isoformat(), last, pd.DataFrame(frame))
    seconds = np.sort(rng.integers(0, DAYS * 86_400, case["rows"]))
    second_level = pd.DataFrame(
        {"user_id": rng.integers(0, case["users"], case["rows"]), "event_time": START + pd.to_timedelta(seconds, unit="s")}
    ).drop_duplicates(["user_id", "event_time"])
    for i in range(5):
        second_level[f"e{i}"] = rng.random(len(second_level))
    store.offline.write_partitions(events, START.date().isoformat(), last, second_level)
    entity = pd.DataFrame(
        {
            "user_id": rng.integers(0, case["users"], case["entity_rows"]),
            "event_time": START + pd.to_timedelta(rng.integers(0, (DAYS + 1) * 86_400, case["entity_rows"]), unit="s"),
            "label": rng.random(case["entity_rows"]) < 0.1,
        }
    )
    pq.write_table(pa.Table.from_pandas(entity, preserve_index=False), root / "entities.parquet")


def run_ours(root: Path) -> dict[str, float]:
    store = store_at(root)
    entity = pq.read_table(root / "entities.parquet").to_pandas()
    started = time.perf_counter()
    result = store.get_historical_features(entity, FEATURES)
    seconds = time.perf_counter() - started
    assert len(result) == len(entity)
    return {"seconds": seconds, "matched_fraction": float(result["d0"].notna().mean())}


def run_baseline(root: Path) -> dict[str, float]:
    import duckdb

    store = store_at(root)
    entity = pq.read_table(root / "entities.parquet")
    entity = entity.set_column(1, "event_time", entity.column("event_time").cast(pa.timestamp("us", tz="UTC")))
    a = store.offline.read(daily, columns=["user_id", "event_time", *daily.feature_names])
    b = store.offline.read(events, columns=["user_id", "event_time", *events.feature_names])
    connection = duckdb.connect()
    connection.register("e", entity)
    connection.register("a", a)
    connection.register("b", b)
    sql = (
        "SELECT e.*, " + ", ".join(f"a.d{i}" for i in range(10)) + ", " + ", ".join(f"b.e{i}" for i in range(5))
        + " FROM e ASOF LEFT JOIN a ON e.user_id = a.user_id AND e.event_time >= a.event_time"
        + " ASOF LEFT JOIN b ON e.user_id = b.user_id AND e.event_time >= b.event_time"
    )
    started = time.perf_counter()
    result = connection.execute(sql).to_arrow_table()
    seconds = time.perf_counter() - started
    assert result.num_rows == entity.num_rows
    return {"seconds": seconds}


def peak_rss_gb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it does not inherit the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def worker(mode: str, root: Path) -> None:
    result = run_ours(root) if mode == "ours" else run_baseline(root)
    result["peak_rss_gb"] = peak_rss_gb()
    print(json.dumps(result))


def measure(mode: str, root: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--root", str(root)], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/tmp/pit_bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default="small,big")
    parser.add_argument("--worker", choices=["ours", "baseline"])
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.root))
        return
    report = {"cpus": os.cpu_count(), "repeat": args.repeat, "cases": {}}
    for name in args.cases.split(","):
        root = Path(args.root) / name
        prepare(root, CASES[name])
        runs: dict[str, list[dict[str, float]]] = {"ours": [], "baseline": []}
        for _ in range(args.repeat):
            for mode in ("ours", "baseline"):  # interleaved, so both see the same machine load
                runs[mode].append(measure(mode, root))
        summary = {mode: {
            "seconds_median": round(statistics.median(r["seconds"] for r in rs), 3),
            "seconds_min": round(min(r["seconds"] for r in rs), 3),
            "peak_rss_gb_max": round(max(r["peak_rss_gb"] for r in rs), 3),
        } for mode, rs in runs.items()}
        summary["ratio_median"] = round(summary["ours"]["seconds_median"] / summary["baseline"]["seconds_median"], 3)
        summary["ratio_min"] = round(summary["ours"]["seconds_min"] / summary["baseline"]["seconds_min"], 3)
        summary["size"] = CASES[name]
        summary["targets"] = TARGETS[name]
        summary["matched_fraction"] = runs["ours"][0]["matched_fraction"]
        report["cases"][name] = summary
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
