"""Offline store throughput: write a 1M-row partition, read a 10M-row group (one day, and all of it).

Each number is compared with plain `deltalake` doing the same I/O on the same
Arrow table in the same run (`ratio` = baseline seconds / ours, so 1.0 means no
overhead and less is slower; `cpu_ratio` the same for CPU seconds of all threads).
Prints JSON. Run from the repository root:

    .venv/bin/python bench/offline_write.py [--write-rows 1000000] [--read-rows 10000000] [--days 100]
"""

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import deltalake
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup
from feature_platform.definitions.contract import conform
from feature_platform.offline.store import OfflineStore

FIRST_DAY = date(2024, 1, 1)
user = Entity("user", join_keys={"user_id": "int64"})
group = FeatureGroup(
    "bench_user_features",
    entities=[user],
    features=[
        Feature("txn_count_7d", "int64"),
        Feature("amount_sum_7d", "float64"),
        Feature("amount_mean_30d", "float64"),
        Feature("is_premium", "bool"),
        Feature("segment", "string"),
    ],
    partitions=DailyPartitions(start=FIRST_DAY.isoformat()),
)


def day_frame(day: date, rows: int, seed: int) -> pd.DataFrame:
    """`rows` feature rows of one day, one per user, at random times of that day."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "user_id": np.arange(rows, dtype="int64"),
            "event_time": start + pd.to_timedelta(rng.integers(0, 86_400_000_000, rows), unit="us"),
            "txn_count_7d": rng.integers(0, 50, rows),
            "amount_sum_7d": rng.random(rows) * 1000,
            "amount_mean_30d": rng.random(rows) * 100,
            "is_premium": rng.random(rows) < 0.2,
            "segment": np.array(["new", "regular", "vip", "dormant"])[rng.integers(0, 4, rows)],
        }
    )


def best_of(repeat: int, run: Callable[[int], Any]) -> tuple[float, float]:
    """The fastest of `repeat` runs in seconds, and the least CPU seconds (all threads) of one (`run` gets the attempt number)."""
    times, cpu = [], []
    for attempt in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        run(attempt)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return min(times), min(cpu)


def measure(rows: int, ours: tuple[float, float], baseline: tuple[float, float]) -> dict[str, float]:
    return {
        "rows": rows,
        "seconds": round(ours[0], 3),
        "rows_per_s": round(rows / ours[0]),
        "baseline_seconds": round(baseline[0], 3),
        "baseline_rows_per_s": round(rows / baseline[0]),
        "ratio": round(baseline[0] / ours[0], 3),
        "cpu_seconds": round(ours[1], 3),
        "baseline_cpu_seconds": round(baseline[1], 3),
        "cpu_ratio": round(baseline[1] / ours[1], 3),
    }


def bench_write(root: Path, rows: int, repeat: int) -> dict[str, Any]:
    """Write one partition into a new table: `OfflineStore.write_partition` (pandas in, checked) vs `write_deltalake`."""
    frame = day_frame(FIRST_DAY, rows, seed=1)
    key = FIRST_DAY.isoformat()
    table = conform(group, frame, written_at=datetime.now(timezone.utc))

    def ours(attempt: int) -> None:
        OfflineStore(str(root / f"ours-{attempt}")).write_partition(group, key, frame)

    def baseline(attempt: int) -> None:
        write_deltalake(str(root / f"raw-{attempt}"), table, partition_by=["_partition"], mode="append")

    store = OfflineStore(str(root / "ours-overwrite"))
    store.write_partition(group, key, frame)
    write_deltalake(str(root / "raw-overwrite"), table, partition_by=["_partition"], mode="append")
    raw_overwrite = DeltaTable(str(root / "raw-overwrite"))

    def ours_overwrite(attempt: int) -> None:
        store.write_partition(group, key, frame)

    def baseline_overwrite(attempt: int) -> None:
        write_deltalake(
            raw_overwrite, table, partition_by=["_partition"], mode="overwrite", predicate=f"_partition = '{key}'"
        )

    check, check_cpu = best_of(repeat, lambda _: conform(group, frame, written_at=datetime.now(timezone.utc)))
    return {
        "contract_check_seconds": round(check, 3),  # the part of `ours` the baseline skips
        "contract_check_cpu_seconds": round(check_cpu, 3),
        "new_table": measure(rows, best_of(repeat, ours), best_of(repeat, baseline)),
        "overwrite_partition": measure(rows, best_of(repeat, ours_overwrite), best_of(repeat, baseline_overwrite)),
    }


def bench_read(root: Path, rows: int, days: int, repeat: int) -> dict[str, Any]:
    """Read a `rows`-row group spread over `days` days: one day by time range (pruned), and everything."""
    per_day = rows // days
    store = OfflineStore(str(root / "read"))
    last = FIRST_DAY + timedelta(days=days - 1)
    frame = pd.concat([day_frame(FIRST_DAY + timedelta(days=i), per_day, seed=i) for i in range(days)], ignore_index=True)
    store.write_partitions(group, FIRST_DAY.isoformat(), last.isoformat(), frame)
    del frame
    uri = store.table_uri(group)
    middle = FIRST_DAY + timedelta(days=days // 2)
    start = datetime(middle.year, middle.month, middle.day, tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    columns = [*group.input_columns, "_written_at"]

    day_rows = store.read(group, start=start, end=end).num_rows
    assert day_rows == per_day, (day_rows, per_day)
    pruned = measure(
        day_rows,
        best_of(repeat, lambda _: store.read(group, start=start, end=end)),
        best_of(repeat, lambda _: DeltaTable(uri).to_pyarrow_table(columns=columns, filters=[("_partition", "=", middle)])),
    )
    full = measure(
        per_day * days,
        best_of(repeat, lambda _: store.read(group)),
        best_of(repeat, lambda _: DeltaTable(uri).to_pyarrow_table(columns=columns)),
    )
    return {"group_rows": per_day * days, "days": days, "one_day_pruned": pruned, "full_scan": full}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-rows", type=int, default=1_000_000)
    parser.add_argument("--read-rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=100, help="days the read group spans")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the fastest counts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        root = Path(tmp)
        result = {
            "benchmark": "offline_write",
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "versions": {"deltalake": deltalake.__version__, "pyarrow": pa.__version__, "pandas": pd.__version__},
            "repeat": args.repeat,
            "write_partition": bench_write(root, args.write_rows, args.repeat),
            "read_group": bench_read(root, args.read_rows, args.days, args.repeat),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
