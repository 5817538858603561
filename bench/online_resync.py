"""What online lineage costs: syncs, re-syncs after a recompute, and the Redis memory of the index.

One daily group of an int64 key and two features on a throwaway redis-server.
Prints JSON: rows/s of a first sync, of a re-sync of the same partition, of a
re-sync after a recompute that drops a tenth of the entities (found through
the index, re-derived from an older partition or deleted), and the memory of
the values and of the lineage index.

    .venv/bin/python bench/online_resync.py --entities 200000
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import redis

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.online import lineage
from feature_platform.online.redis_server import start_server

user = Entity("user", join_keys={"user_id": "int64"})
group = FeatureGroup(
    "activity",
    entities=[user],
    features=[Feature("count", "int64"), Feature("amount", "float64")],
    partitions=DailyPartitions(start="2024-01-01"),
)


def rows(day: str, users: range | list[int], offset: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": list(users), "event_time": pd.Timestamp(day, tz="UTC"), "count": offset, "amount": float(offset)}
    )


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=200_000)
    args = parser.parse_args()
    n = args.entities
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(Path(folder) / "redis", persistent=False)
        try:
            store = FeatureStore([group], offline_root=Path(folder) / "offline", online_url=server.url, project="bench")
            store.write_partition("activity", "2024-01-01", rows("2024-01-01", range(n), 1))
            store.write_partition("activity", "2024-01-02", rows("2024-01-02", range(n), 2))
            first_sync = timed(lambda: store.sync_to_online("activity", "2024-01-01"))
            newer_sync = timed(lambda: store.sync_to_online("activity", "2024-01-02"))
            same_resync = timed(lambda: store.sync_to_online("activity", "2024-01-02"))
            kept = [u for u in range(n) if u % 10]
            store.write_partition("activity", "2024-01-02", rows("2024-01-02", kept, 3))
            report = None

            def recompute_resync() -> None:
                nonlocal report
                report = store.sync_to_online("activity", "2024-01-02")

            dropped_resync = timed(recompute_resync)
            client = redis.Redis.from_url(server.url)
            index = lineage.index_key(store.online.prefix(group))
            index_bytes = client.memory_usage(index, samples=0) or 0
            used = client.info("memory")["used_memory"]
            assert report is not None
            print(json.dumps({
                "entities": n,
                "first_sync_rows_per_s": round(n / first_sync),
                "newer_partition_sync_rows_per_s": round(n / newer_sync),
                "same_partition_resync_rows_per_s": round(n / same_resync),
                "resync_after_recompute_dropping_10pct": {
                    "seconds": round(dropped_resync, 2),
                    "entities_rederived": report.entities_rederived,
                    "entities_removed": report.entities_removed,
                },
                "redis_used_memory_mb": round(used / 2**20, 1),
                "lineage_index_mb": round(index_bytes / 2**20, 1),
                "lineage_bytes_per_entity": round(index_bytes / n, 1),
            }, indent=2))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
