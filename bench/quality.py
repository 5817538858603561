"""Validation and drift time for one 1M-row partition; prints JSON.

Baseline, measured in the same run: the contract check alone (`conform`),
which every write pays anyway. Targets: validation <= 1.5 s, drift (sampled) <= 5 s.

    PYTHONPATH=. python bench/quality.py [--rows 1000000] [--sample 20000]
"""

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup
from feature_platform.definitions.contract import conform
from feature_platform.definitions.rules import DriftSettings, Rule
from feature_platform.quality.drift import detect_drift
from feature_platform.quality.validation import validate


def frame(rows: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": np.arange(rows, dtype="int64"),
            "event_time": pd.Timestamp("2024-05-08 12:00"),
            "amount_sum_7d": rng.lognormal(4, 1, rows) * scale,
            "txn_count_7d": rng.poisson(6, rows),
            "txn_count_30d": rng.poisson(6, rows) + 30,
            "segment": rng.choice(["retail", "travel", "food", "other"], rows),
            "amount_mean_30d": np.where(rng.random(rows) < 0.01, np.nan, rng.lognormal(3, 1, rows)),
        }
    )


def timed(function, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()
    group = FeatureGroup(
        "bench",
        entities=[Entity("user", join_keys={"user_id": "int64"})],
        features=[
            Feature("amount_sum_7d"),
            Feature("txn_count_7d", "int64"),
            Feature("txn_count_30d", "int64"),
            Feature("segment", "string"),
            Feature("amount_mean_30d"),
        ],
        partitions=DailyPartitions("2024-05-01"),
        rules=[
            Rule.in_range("amount_sum_7d", min=0),
            Rule.in_range("txn_count_7d", min=0, max=10_000),
            Rule.allowed_values("segment", ["retail", "travel", "food", "other"]),
            Rule.max_null_fraction("amount_mean_30d", 0.05, severity="WARN"),
            Rule.custom("window_counts_consistent", lambda df: df["txn_count_7d"] <= df["txn_count_30d"]),
        ],
        drift=DriftSettings(sample_size=args.sample),
    )
    current = frame(args.rows, 1, scale=1.3)
    reference = pd.concat([frame(args.rows, seed) for seed in (2, 3)], ignore_index=True)
    now = datetime.now(timezone.utc)
    contract = timed(lambda: conform(group, current, written_at=now))
    validation = timed(lambda: validate(group, current))
    report = validate(group, current)
    with tempfile.TemporaryDirectory() as folder:
        drift = timed(lambda: detect_drift(group, "2024-05-08", current, reference, html_path=f"{folder}/r.html"), repeat=2)
        result = detect_drift(group, "2024-05-08", current, reference)
    print(
        json.dumps(
            {
                "rows": args.rows,
                "rules": len(group.rules) + 1,
                "contract_seconds": round(contract, 3),
                "validation_seconds": round(validation, 3),
                "validation_vs_contract": round(validation / contract, 2),
                "validation_passed": not report.blocked,
                "drift_sample_size": args.sample,
                "reference_rows": len(reference),
                "drift_seconds_with_html": round(drift, 3),
                "drift_vs_contract": round(drift / contract, 2),
                "drifted_features": result.drifted_features,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
