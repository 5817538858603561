"""Ingest and partition-write speed and memory against a plain `write_deltalake` of the same rows; prints JSON.

A Feast-shaped frame (`user_id`, `event_timestamp` and `created` as pandas
nanosecond UTC times, 3 float64 and 2 int64 features; `--rows` rows over 90
days) is built in a fresh process per measurement:

- `ingest`: `FeatureStore.ingest` into an unpartitioned group (contract check,
  quality gate, one Delta commit);
- `write_partitions`: `OfflineStore.write_partitions` of all 90 days of a daily
  group in one commit;
- `raw_write_deltalake`: `deltalake.write_deltalake` of `pa.Table.from_pandas(frame)`
  plus the same `_partition` column, partitioned the same way (no checks).

Peak RSS is the process's peak from the moment the frame exists (the kernel's
high-water mark, reset through `/proc/self/clear_refs` once the frame is built, so
the frame's own construction does not count); `peak_over_frame` divides what the
write added to the RSS at that moment by the frame's Arrow size.

    PYTHONPATH=. python bench/ingest.py --rows 10000000
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore  # noqa: E402

TARGET_ROWS_PER_S = 1_000_000
TARGET_PEAK_OVER_FRAME = 2.0
START = pd.Timestamp("2024-01-02", tz="UTC")
DAYS = 90
user = Entity("user", join_keys={"user_id": "int64"})
FEATURES = [Feature(f"a_f{i}", "float64") for i in range(3)] + [Feature(f"a_i{i}", "int64") for i in range(2)]


def group(partitioned: bool) -> FeatureGroup:
    return FeatureGroup(
        "user_activity", entities=[user], features=FEATURES, event_time="event_timestamp", created_time="created",
        partitions=DailyPartitions(start="2024-01-01") if partitioned else None, ttl=timedelta(days=30),
    )


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    seconds = rng.integers(0, DAYS * 86_400, rows)
    event = START + pd.to_timedelta(seconds, unit="s")
    data = {
        "user_id": rng.integers(0, rows // 10, rows),
        "event_timestamp": event,
        "created": event + pd.to_timedelta(rng.integers(0, 600_000_000, rows), unit="us"),
    }
    data.update({f.name: rng.standard_normal(rows) for f in FEATURES[:3]})
    data.update({f.name: rng.integers(0, 1000, rows) for f in FEATURES[3:]})
    df = pd.DataFrame(data)
    return df[~df.duplicated(["user_id", "event_timestamp", "created"])].reset_index(drop=True)


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024


def reset_peak() -> None:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def child(kind: str, rows: int) -> dict:
    df = frame(rows)
    arrow_mb = pa.Table.from_pandas(df, preserve_index=False).nbytes / 2**20
    reset_peak()
    before = status_mb("VmRSS")
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), time.process_time()
        if kind == "raw_write_deltalake":
            from deltalake import write_deltalake

            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.append_column("_partition", table.column("event_timestamp").cast(pa.timestamp("us", tz="UTC")).cast(pa.date32()))
            write_deltalake(f"{folder}/raw", table, partition_by=["_partition"])
        else:
            partitioned = kind == "write_partitions"
            store = FeatureStore(groups=[group(partitioned)], offline_root=folder, project="bench")
            store.apply()
            if partitioned:
                last = (START + timedelta(days=DAYS - 1)).date().isoformat()
                store.offline.write_partitions(store.group("user_activity"), START.date().isoformat(), last, df)
            else:
                store.ingest("user_activity", df)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak = status_mb("VmHWM")
    return {
        "rows": len(df), "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "rows_per_s": round(len(df) / seconds), "frame_arrow_mb": round(arrow_mb), "rss_before_write_mb": round(before),
        "peak_rss_mb": round(peak), "peak_over_frame": round((peak - before) / arrow_mb, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", choices=["ingest", "write_partitions", "raw_write_deltalake"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return
    results: dict[str, list] = {}
    for _ in range(args.repeat):
        for kind in ("raw_write_deltalake", "ingest", "write_partitions"):
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--rows", str(args.rows)], capture_output=True, text=True, check=True)
            results.setdefault(kind, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({**results, "targets": {"rows_per_s": TARGET_ROWS_PER_S, "peak_over_frame": TARGET_PEAK_OVER_FRAME}}))


if __name__ == "__main__":
    main()
