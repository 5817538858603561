"""Point-in-time join on Feast's workload, the command `side_by_side.sh` runs against Feast 0.67.

Reads `$FEAST_DATA` (user_stats, user_activity: 10 + 5 features with `created`
ties; entity_df), writes both groups to Delta once (not timed; partitioned by
day or unpartitioned, `--layout`), then times `get_historical_features` of the
15 features, prints one JSON line with `hist_s` and writes the joined frame to
`$OUT_PARQUET`. Run it once with `--prepare` first, so that no timed run's peak
RSS includes the writes; `--join-index build` also builds each group's join index
(as table maintenance does after writes), `--join-index drop` removes it, and a
run joins with whatever is there (its JSON says which):

    FEAST_DATA=/tmp/peers-feast/data/small .venv/bin/python bench/pit_feast.py --prepare --layout partitioned --join-index build
    bash ../shared/peers/feast/side_by_side.sh small 3 -- env PYTHONPATH=. .venv/bin/python bench/pit_feast.py --layout partitioned
"""

import argparse
import json
import os
import resource
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.offline import join_index

user = Entity("user", join_keys={"user_id": "int64"})
STATS = [Feature(f"s_f{i}", "float64") for i in range(7)] + [Feature(f"s_i{i}", "int64") for i in range(3)]
ACTIVITY = [Feature(f"a_f{i}", "float64") for i in range(3)] + [Feature(f"a_i{i}", "int64") for i in range(2)]
FEATURES = [f"user_stats:{f.name}" for f in STATS] + [f"user_activity:{f.name}" for f in ACTIVITY]


def groups(layout: str) -> list[FeatureGroup]:
    partitions = DailyPartitions(start="2023-01-01") if layout == "partitioned" else None
    common = dict(entities=[user], event_time="event_timestamp", created_time="created", ttl=timedelta(days=30), partitions=partitions)
    return [FeatureGroup("user_stats", features=STATS, **common), FeatureGroup("user_activity", features=ACTIVITY, **common)]


def store_for(data: Path, layout: str) -> FeatureStore:
    root = Path(os.environ.get("PIT_FEAST_ROOT", "/tmp/perf-pit-feast")) / data.name / layout
    store = FeatureStore(groups=groups(layout), offline_root=root, project="feast_bench")
    store.apply()  # record the definitions (reads and writes check them); a no-op once applied
    return store


def prepare(store: FeatureStore, data: Path) -> dict[str, int]:
    """Write each group's parquet file unless its table exists; exact (key, event, created) repeats go in a later append."""
    written = {}
    for group in store.catalog.groups.values():
        if store.offline.exists(group):
            continue
        table = pq.read_table(data / f"{group.name}.parquet")
        frame = table.to_pandas()
        repeated = frame.duplicated(["user_id", "event_timestamp", "created"], keep="first")
        first, later = frame[~repeated], frame[repeated]
        if group.partitions is None:
            store.ingest(group.name, first)
        else:
            days = first["event_timestamp"].dt.strftime("%Y-%m-%d")
            store.offline.write_partitions(group, days.min(), days.max(), first)
        if len(later):
            store.offline.append(group, later)  # the later write wins the exact tie, as it would in Feast's last row
        written[group.name] = len(frame)
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=["partitioned", "unpartitioned"], default="partitioned")
    parser.add_argument("--prepare", action="store_true", help="only write the tables (and see --join-index)")
    parser.add_argument("--join-index", choices=["build", "drop", "keep"], default="keep",
                        help="with --prepare: build each group's join index (as maintenance does), drop it, or leave it")
    args = parser.parse_args()
    data = Path(os.environ["FEAST_DATA"])
    store = store_for(data, args.layout)
    written = prepare(store, data)
    if args.prepare:
        report = {"prepared": written, "layout": args.layout}
        for group in store.catalog.groups.values():
            if args.join_index == "drop":
                shutil.rmtree(Path(store.offline.table_uri(group)) / join_index.FOLDER, ignore_errors=True)
            elif args.join_index == "build":
                began = time.perf_counter()
                store.build_join_index(group.name)
                report[f"join_index_build_s_{group.name}"] = round(time.perf_counter() - began, 2)
        print(json.dumps(report))
        return
    indexed = {g.name: any((Path(store.offline.table_uri(g)) / join_index.FOLDER).glob(f"*{join_index.ROWS}")) for g in store.catalog.groups.values()}
    entity_df = pq.read_table(data / "entity_df.parquet").to_pandas()
    started, cpu = time.perf_counter(), time.process_time()
    result = store.get_historical_features(entity_df, FEATURES, timestamp_column="event_timestamp")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    out = os.environ.get("OUT_PARQUET")
    if out:
        result.to_parquet(out, index=False)
    print(json.dumps({
        "hist_s": round(seconds, 3),
        "hist_cpu_s": round(cpu_seconds, 3),  # all threads: steadier than wall time on a shared machine
        "layout": args.layout,
        "join_index": indexed,
        "rows": len(result),
        "matched_user_stats": round(float(pd.notna(result["s_f0"]).mean()), 4),
        "peak_rss_mb_after_join": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "wrote_tables_now": bool(written),
    }))


if __name__ == "__main__":
    main()
