"""On-demand transformations online: what one transformation adds to a 1-entity request; prints JSON.

The demo's `fraud_detection` view (12 features of 5 groups plus `amount_vs_history`)
over `--entities` users pushed to a throwaway redis-server. Times
`get_online_features` for one random entity, each request through every variant in turn, through the Python API: the 12
features alone (the baseline), and with the same transformation written in each
mode (`pandas`, `python`, `row`). `added_ms` is a mode's p50 minus the p50 of
the baseline timed alternately with it (python and row interleaved with it; pandas timed on its own after them).

    PYTHONPATH=. python bench/on_demand.py [--entities 10000] [--lookups 5000]
"""

import argparse
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import assets  # noqa: E402
from assets.fraud import fraud_detection  # noqa: E402
from feature_platform import FeatureStore, FeatureView, OnDemandTransformation  # noqa: E402
from feature_platform.online.redis_server import start_server  # noqa: E402

TARGET_ADDED_MS = 0.05


def ratios_python(columns: dict) -> dict:
    """The demo's transformation, column-wise on Python lists."""
    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    return {
        "amount_to_user_mean_30d": [ratio(a, m) for a, m in zip(columns["amount"], columns["amount_mean_30d"])],
        "amount_to_merchant_mean_7d": [ratio(a, m) for a, m in zip(columns["amount"], columns["merchant_amount_mean_7d"])],
    }


def ratios_row(row: dict) -> dict:
    """The demo's transformation, one row at a time."""
    a, user_mean, merchant_mean = row["amount"], row["amount_mean_30d"], row["merchant_amount_mean_7d"]
    return {
        "amount_to_user_mean_30d": None if a is None or not user_mean else a / user_mean,
        "amount_to_merchant_mean_7d": None if a is None or not merchant_mean else a / merchant_mean,
    }


def ratios_pandas(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"amount_to_user_mean_30d": df["amount"] / df["amount_mean_30d"], "amount_to_merchant_mean_7d": df["amount"] / df["merchant_amount_mean_7d"]}
    )


def views() -> dict[str, FeatureView]:
    demo = fraud_detection.on_demand[0]
    variants = {"baseline_no_transformation": dataclasses.replace(fraud_detection, name="plain", on_demand=())}
    for mode, function in (("pandas", ratios_pandas), ("python", ratios_python), ("row", ratios_row)):
        transformation = OnDemandTransformation(
            demo.name, function, outputs=demo.outputs, inputs=demo.inputs, request_inputs=demo.request_inputs, mode=mode
        )
        variants[mode] = dataclasses.replace(fraud_detection, name=f"fraud_{mode}", on_demand=[transformation])
    return variants


def frame_for(group, entities: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per entity for `group`, values drawn by dtype, event time now."""
    now = pd.Timestamp.now(tz="UTC").floor("s")
    data = {}
    for key, arrow in group.key_types.items():
        data[key] = np.arange(entities) if "int" in str(arrow) else [f"{key}{i % 50}" for i in range(entities)]
    data[group.event_time] = now
    if group.created_time:
        data[group.created_time] = now
    for feature in group.features:
        kind = str(feature.arrow_type)
        if kind.startswith("int"):
            data[feature.name] = rng.integers(0, 100, entities)
        elif kind == "bool":
            data[feature.name] = rng.random(entities) < 0.5
        elif kind == "string":
            data[feature.name] = [f"s{i % 7}" for i in range(entities)]
        elif kind.startswith("timestamp"):
            data[feature.name] = now
        else:
            data[feature.name] = rng.random(entities) * 100 + 1
    frame = pd.DataFrame(data)
    return frame.drop_duplicates(list(group.join_keys))


def timed(calls: dict, requests: list, warmup: int = 300) -> dict[str, list[float]]:
    """Each request through every variant in turn, so load on a shared machine hits all variants alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i, request in enumerate(requests):
        for name, call in calls.items():
            started = time.perf_counter()
            call(request)
            if i >= warmup:
                samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 4), "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as folder:
        redis = start_server(Path(folder) / "redis", persistent=False)
        try:
            variants = views()
            store = FeatureStore(groups=assets.feature_groups, views=list(variants.values()), offline_root=Path(folder) / "offline",
                                 online_url=redis.url, project="bench")
            store.apply()
            for group in {s.group.name: s.group for s in store.catalog.resolve(variants["python"]).selections}.values():
                if group.online:
                    store.push(group.name, frame_for(group, args.entities, rng), to="online", validate=False)  # random values, not the demo's rules
            keys = [k for s in store.catalog.resolve(variants["python"]).selections for k in s.group.join_keys]
            pick = random.Random(1)
            requests = [
                {**{k: (pick.randrange(args.entities) if k != "country" else f"country{pick.randrange(50)}") for k in keys},
                 "amount": pick.random() * 500}
                for _ in range(args.lookups + 300)
            ]
            calls = {name: (lambda row, v=view: store.get_online_features([row], v)) for name, view in variants.items()}
            # pandas apart: the garbage its frames leave makes the call after it pay for collection.
            fast = timed({n: calls[n] for n in ("baseline_no_transformation", "python", "row")}, requests)
            slow = {**timed({"pandas": calls["pandas"]}, requests), "baseline_no_transformation": fast["baseline_no_transformation"]}
            check = {name: store.get_online_features([requests[0]], v).to_dict() for name, v in variants.items() if name != "baseline_no_transformation"}
            assert check["python"] == check["row"], check
        finally:
            redis.stop()
    result = {}
    for block, names in ((fast, ("python", "row")), (slow, ("pandas",))):
        base = summary(block["baseline_no_transformation"])
        for name in names:
            result[name] = {**summary(block[name]), "baseline_p50_ms": base["p50_ms"], "baseline_p99_ms": base["p99_ms"]}
            result[name]["added_ms"] = round(result[name]["p50_ms"] - base["p50_ms"], 4)
    result["target_added_ms"] = TARGET_ADDED_MS
    result["entities"], result["lookups_per_variant"] = args.entities, args.lookups
    print(json.dumps(result))


if __name__ == "__main__":
    main()
