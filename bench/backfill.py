"""90-day backfill of the demo: wall time and partitions per minute by executor, workers, run size and instance.

    PYTHONPATH=. python bench/backfill.py [--days 90] [--repeat 2] [--scale 1] [--executors-only] [--postgres URL]

Each configuration runs `feature-platform backfill` in a fresh process on a fresh
feature home and Dagster instance, over every partitioned demo asset (the raw
transactions and four feature groups). Prints one JSON document; ratios are
against the in-process SQLite run with the default policy (31 days per run).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[1]
ASSETS = ["transactions", "user_transaction_features", "user_last_transaction", "merchant_features", "merchant_country_features"]


def run(days: int, workers: int, per_run: int | None, postgres: str | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="fp-bench-"))
    home = work / "dagster"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "FEATURE_PLATFORM_HOME": str(work / "fp"), "PYTHONPATH": str(REPO)}
    shutil.copy(REPO / ("deploy/dagster.postgres.yaml" if postgres else "dagster.yaml"), home / "dagster.yaml")
    if postgres:
        env.update(DAGSTER_PG_URL=postgres, DAGSTER_MAX_CONCURRENT_RUNS="4")
    first = date(2024, 4, 1)
    command = [sys.executable, "-W", "ignore", "-m", "feature_platform.cli", "backfill", *ASSETS, "--repo", str(REPO),
               "--start", first.isoformat(), "--end", (first + timedelta(days=days - 1)).isoformat(),
               "--workers", str(workers), "--json"]
    if per_run:
        command += ["--partitions-per-run", str(per_run)]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.monotonic() - started
    feature_rows = sum(
        DeltaTable(str(table)).to_pyarrow_dataset().count_rows() for table in (work / "fp" / "offline").glob("*/*/v*")
    )
    shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"backfill failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    return {
        "instance": "postgres" if postgres else "sqlite",
        "executor": "in_process" if workers == 0 else f"multiprocess x{workers}",
        "partitions_per_run": per_run or 31,
        "runs": len(result["runs"]),
        "wall_seconds": round(seconds, 1),
        "feature_rows": feature_rows,
        "feature_rows_per_s": round(feature_rows / seconds),
        "days_per_minute": round(days / seconds * 60, 1),
        "asset_partitions_per_minute": round(days * len(ASSETS) / seconds * 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--postgres", help="also measure on this PostgreSQL instance storage")
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration; the fastest is kept")
    parser.add_argument("--scale", type=int, default=1, help="FEATURE_PLATFORM_DEMO_SCALE: x1,000 users, x3,000 transactions a day")
    parser.add_argument("--executors-only", action="store_true", help="only in-process vs 1 and 2 workers, 31 days per run")
    args = parser.parse_args()
    os.environ["FEATURE_PLATFORM_DEMO_SCALE"] = str(args.scale)
    configs = [(0, None, None), (0, 1, None), (1, None, None), (2, None, None)]
    if args.executors_only:
        configs = [(0, None, None), (1, None, None), (2, None, None)]
    if args.postgres:
        configs += [(0, None, args.postgres), (1, None, args.postgres), (2, None, args.postgres)]
    results = []
    for workers, per_run, postgres in configs:
        tries = [run(args.days, workers, per_run, postgres) for _ in range(args.repeat)]
        best = min(tries, key=lambda r: r["wall_seconds"])
        best["all_wall_seconds"] = [r["wall_seconds"] for r in tries]
        print(json.dumps(best), file=sys.stderr, flush=True)
        results.append(best)
    baseline = results[0]["wall_seconds"]
    for r in results:
        r["speedup_vs_in_process_sqlite"] = round(baseline / r["wall_seconds"], 2)
    print(json.dumps({"days": args.days, "scale": args.scale, "assets": ASSETS, "cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
