"""Cost of the write-path guarantees: the quality gate and the idempotent offline append of a push.

    PYTHONPATH=. python bench/push_offline.py [--pushes 200] [--rows 10]

Pushes small batches to the offline store of a fresh table (so each push finds
up to 64 earlier commits to compare its content key with), with and without
an ERROR rule (against `ingest`, which appends without the content-key
lookup), and times `write_partition` of one day with and without the gate. Prints one JSON document with median and p95 milliseconds.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.definitions.rules import Rule

user = Entity("user", join_keys={"user_id": "int64"})


def group(rules: list[Rule]) -> FeatureGroup:
    return FeatureGroup("events", entities=[user], features=[Feature("amount", "float64")], partitions=DailyPartitions("2024-01-01"), rules=rules)


def batch(number: int, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.arange(rows) + number * rows,
            "event_time": pd.Timestamp("2024-05-01 12:00", tz="UTC") + pd.Timedelta(seconds=number),
            "amount": np.random.default_rng(number).random(rows),
        }
    )


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 2), "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2)}


def pushes(rules: list[Rule], count: int, rows: int, validate: bool) -> dict[str, float]:
    store = FeatureStore([group(rules)], offline_root=Path(tempfile.mkdtemp()) / "offline", project="bench")
    return summary([timed(lambda n=n: store.push("events", batch(n, rows), to="offline", validate=validate)) for n in range(count)])


def ingests(count: int, rows: int) -> dict[str, float]:
    """The same batches through `ingest`, which appends without the content-key lookup."""
    store = FeatureStore([group([])], offline_root=Path(tempfile.mkdtemp()) / "offline", project="bench")
    return summary([timed(lambda n=n: store.ingest("events", batch(n, rows))) for n in range(count)])


def partition_writes(rules: list[Rule], count: int, rows: int, validate: bool) -> dict[str, float]:
    store = FeatureStore([group(rules)], offline_root=Path(tempfile.mkdtemp()) / "offline", project="bench")
    frame = batch(0, rows)
    return summary([timed(lambda: store.write_partition("events", "2024-05-01", frame, validate=validate)) for _ in range(count)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10)
    args = parser.parse_args()
    rule = [Rule.in_range("amount", min=0)]
    result = {
        "pushes": args.pushes,
        "rows_per_push": args.rows,
        "ingest_no_rules": ingests(args.pushes, args.rows),
        "push_offline_no_rules": pushes([], args.pushes, args.rows, True),
        "push_offline_error_rule": pushes(rule, args.pushes, args.rows, True),
        "push_offline_error_rule_validate_false": pushes(rule, args.pushes, args.rows, False),
        "write_partition_100k_rows_error_rule": partition_writes(rule, 5, 100_000, True),
        "write_partition_100k_rows_validate_false": partition_writes(rule, 5, 100_000, False),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
