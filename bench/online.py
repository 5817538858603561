"""Online store benchmark; prints JSON. `python bench/online.py [--entities N] [--source-rows N]`.

Two groups (10 + 5 features) over `--entities` users, `--source-rows` offline
rows split over daily partitions of both groups. Measures, against a throwaway
redis-server: sync throughput and peak RSS (in a fresh process), lookup
latency through the Python API next to a raw redis-py MGET of the same keys,
the cost of the definition check against the registry,
packed values next to Redis hashes, and the HTTP server's latency and start time.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feature_platform.online import codec  # noqa: E402
from feature_platform.online.redis_server import free_port, start_server  # noqa: E402

ASSETS = textwrap.dedent(
    """
    from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup

    user = Entity("user", join_keys={"user_id": "int64"})
    activity = FeatureGroup(
        "activity", entities=[user], partitions=DailyPartitions(start="2024-01-01"),
        features=[Feature(f"a{i}", "float64" if i % 2 else "int64") for i in range(10)],
    )
    profile = FeatureGroup(
        "profile", entities=[user], partitions=DailyPartitions(start="2024-01-01"),
        features=[Feature(f"p{i}", "float64" if i % 2 else "int64") for i in range(5)],
    )
    feature_groups = [activity, profile]
    feature_views = []
    raw_sources = []
    """
)
FEATURES = [f"activity:a{i}" for i in range(10)] + [f"profile:p{i}" for i in range(5)]


def make_repo(folder: Path) -> None:
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    (folder / "assets" / "__init__.py").write_text(ASSETS)


def open_store(repo: Path, redis_url: str):
    os.environ["FEATURE_PLATFORM_REDIS_URL"] = redis_url
    os.environ["FEATURE_PLATFORM_HOME"] = str(repo / ".feature_platform")
    from feature_platform import FeatureStore

    return FeatureStore.from_repo(repo)


def probing_store(repo: Path, redis_url: str):
    """A store of the same repository that asks the registry for a newer version on every online call."""
    os.environ["FEATURE_PLATFORM_REGISTRY_CHECK_S"] = "0"
    try:
        return open_store(repo, redis_url)
    finally:
        del os.environ["FEATURE_PLATFORM_REGISTRY_CHECK_S"]


def day_frame(group, day: pd.Timestamp, entities: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = {"user_id": np.arange(entities, dtype="int64"), "event_time": day + pd.to_timedelta(rng.integers(0, 86_400, entities), unit="s")}
    for feature in group.features:
        values = rng.random(entities) * 100
        frame[feature.name] = values if feature.dtype == "float64" else values.astype("int64")
    return pd.DataFrame(frame)


def write_offline(store, entities: int, source_rows: int) -> dict:
    days = max(1, source_rows // (2 * entities))
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    for group_name in ("activity", "profile"):
        group = store.group(group_name)
        for d in range(days):
            day = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=d)
            store.write_partition(group_name, day.date().isoformat(), day_frame(group, day, entities, rng))
    return {"days_per_group": days, "source_rows": 2 * days * entities, "offline_write_s": round(time.perf_counter() - started, 1)}


def sync_child(repo: str, redis_url: str, out: "multiprocessing.Queue") -> None:
    """Runs in a fresh process so its peak RSS is the sync's alone."""
    sys.path.insert(0, repo)  # this script's folder has another `assets` package
    store = open_store(Path(repo), redis_url)
    started = time.perf_counter()
    reports = [store.sync_to_online(name) for name in ("activity", "profile")]
    seconds = time.perf_counter() - started
    rows = sum(r.rows_read for r in reports)
    # Redis write speed alone: the last day again, stamped as a later write, so every row replaces its value.
    group = store.group("activity")
    last_day = store.offline.partitions(group)[-1].isoformat()
    table = store.offline.read(group, start=last_day)
    later = pa.array([pd.Timestamp.now(tz="UTC")] * table.num_rows, pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("_written_at"), "_written_at", later)
    write_started = time.perf_counter()
    count = store.online.write(group, table)
    write_seconds = time.perf_counter() - write_started
    out.put(
        {
            "rows_read": rows,
            "rows_written": sum(r.rows_written for r in reports),
            "seconds": round(seconds, 2),
            "source_rows_per_s": round(rows / seconds),
            "redis_rows_replaced": count.written,
            "redis_write_rows_per_s": round(count.written / write_seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    )


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 4),
    }


def timed(call, arguments: list, warmup: int = 200) -> list[float]:
    for a in arguments[:warmup]:
        call(a)
    samples = []
    clock = time.perf_counter
    for a in arguments:
        t = clock()
        call(a)
        samples.append(clock() - t)
    return samples


def lookups(store, entities: int, n: int) -> dict:
    rng = random.Random(2)
    ids = [rng.randrange(entities) for _ in range(n)]
    rows = [[{"user_id": i}] for i in ids]
    api = percentiles(timed(lambda r: store.get_online_features(r, FEATURES), rows))
    prefixes = [codec.key_prefix(store.project, store.group(g)) for g in ("activity", "profile")]
    key_sets = [[p + codec.encode_keys(b"", [[i]])[0] for p in prefixes] for i in ids]
    client = store.online.client
    raw = percentiles(timed(lambda keys: client.execute_command("MGET", *keys), key_sets))
    result = store.get_online_features(rows[0], FEATURES).to_dict()
    assert all(v[0] is not None for v in result.values()), result
    batches = {}
    for size, count in ((100, 300), (1000, 60)):
        requests = [{"user_id": [rng.randrange(entities) for _ in range(size)]} for _ in range(count)]
        batches[f"{size}_entities_p50_ms"] = percentiles(timed(lambda r: store.get_online_features(r, FEATURES), requests, 10))["p50_ms"]
    return {
        "one_entity_15_features_api": api,
        "one_entity_raw_redis_py_mget": raw,
        "api_to_raw_mget_p50_ratio": round(api["p50_ms"] / raw["p50_ms"], 2),
        **batches,
    }


def definition_check(store, probing, raw_mget_p50_ms: float, n: int) -> dict:
    """What checking definitions against the registry costs online.

    A lookup checks its groups when its read plan is built (once per request
    shape, cached with the plan); after that a call pays only the 4-byte layout
    id compare per value, which the API-to-MGET ratio above includes. Measured
    here: a full check of an already checked request (`require_applied`, what
    a new request shape pays), the registry read a process pays once per group
    version, and both next to the raw MGET. Another process may apply or retire:
    a lookup asks the registry for a newer version (a stat of the next commit
    file) at most once per `FEATURE_PLATFORM_REGISTRY_CHECK_S` (default 1 s);
    `probing` is a store that asks on every call, the worst case.
    """
    check = percentiles(timed(lambda _: store.require_applied(FEATURES), list(range(n))))
    # The per-call part: each fetched value's layout id compared with the plan's before it is decoded.
    prefixes = [codec.key_prefix(store.project, store.group(g)) for g in ("activity", "profile")]
    values = store.online.mget([p + codec.encode_keys(b"", [[0]])[0] for p in prefixes])
    layout, start, end = values[0][codec.HEADER.size : codec.LAYOUT_END], codec.HEADER.size, codec.LAYOUT_END
    value, repeat = values[0], 1_000_000
    began = time.perf_counter()
    for _ in range(repeat):
        value[start:end] == layout  # noqa: B015 (the compare is what is timed)
    per_value = (time.perf_counter() - began) / repeat  # an upper bound: the loop itself is included
    per_call_ms = per_value * len(values) * 1000
    reads = []
    for _ in range(20):
        started = time.perf_counter()
        store.registry.store.load()
        reads.append(time.perf_counter() - started)
    version = store.registry.snapshot().version
    probe = percentiles(timed(lambda _: store.registry.store.latest_version(version), list(range(n))))
    rng = random.Random(3)
    rows = [[{"user_id": rng.randrange(1000)}] for _ in range(n)]
    every_call = percentiles(timed(lambda r: probing.get_online_features(r, FEATURES), rows))
    return {
        "registry_probe": probe,
        "registry_probe_to_raw_mget_p50_ratio": round(probe["p50_ms"] / raw_mget_p50_ms, 2),
        "api_probing_every_call": every_call,
        "api_probing_every_call_to_raw_mget_p50_ratio": round(every_call["p50_ms"] / raw_mget_p50_ms, 2),
        "layout_check_per_call_ms": round(per_call_ms, 5),
        "layout_check_to_raw_mget_p50_ratio": round(per_call_ms / raw_mget_p50_ms, 3),
        "require_applied_checked": check,
        "require_applied_to_raw_mget_p50_ratio": round(check["p50_ms"] / raw_mget_p50_ms, 2),
        "registry_read_once_per_process": percentiles(reads),
    }


def packed_vs_hash(store, entities: int, n: int) -> dict:
    """Reading one entity's 15 features: two packed values by MGET against two hashes by pipelined HGETALL."""
    client = store.online.client
    pipe = client.pipeline(transaction=False)
    for i in range(entities):
        pipe.hset(f"hash:a:{i}", mapping={f"a{j}": float(j) for j in range(10)} | {"event_time": 1})
        pipe.hset(f"hash:p:{i}", mapping={f"p{j}": float(j) for j in range(5)} | {"event_time": 1})
        if i % 5000 == 0:
            pipe.execute()
    pipe.execute()
    rng = random.Random(3)
    ids = [rng.randrange(entities) for _ in range(n)]

    def read_hashes(i: int) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(f"hash:a:{i}")
        pipe.hgetall(f"hash:p:{i}")
        pipe.execute()

    hashes = percentiles(timed(read_hashes, ids))
    packed = percentiles(timed(lambda i: store.get_online_features([{"user_id": i}], FEATURES), ids))
    memory = client.info("memory")["used_memory"]
    for cursor_keys in _chunks(list(client.scan_iter(match="hash:*", count=10_000)), 10_000):
        client.unlink(*cursor_keys)
    return {
        "hash_hgetall_pipeline": hashes,
        "packed_via_api": packed,
        "hash_to_packed_p50_ratio": round(hashes["p50_ms"] / packed["p50_ms"], 2),
        "used_memory_mb_with_both": round(memory / 2**20),
        "used_memory_mb_packed_only": round(client.info("memory")["used_memory"] / 2**20),
    }


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def http_server(repo: Path, redis_url: str, entities: int, n: int) -> dict:
    port = free_port()
    env = {**os.environ, "FEATURE_PLATFORM_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    env.pop("FEATURE_PLATFORM_SERVER_TOKEN", None)
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "feature_platform.serving.server", "--repo", str(repo), "--port", str(port)], env=env
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.01)
            ready = time.perf_counter() - started
        rng = random.Random(4)
        bodies = [json.dumps({"features": FEATURES, "entities": {"user_id": [rng.randrange(entities)]}}) for _ in range(n)]
        # A plain keep-alive http.client connection, so the numbers are the server's, not a heavy client's.
        connection = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Content-Type": "application/json"}

        def post(body: str) -> None:
            connection.request("POST", "/get-online-features", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            assert response.status == 200, payload

        latency = percentiles(timed(post, bodies))
        connection.close()
        return {"server_ready_s": round(ready, 2), "one_entity": latency, "client": "http.client keep-alive"}
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--source-rows", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder) / "repo"
        make_repo(repo)
        redis = start_server(Path(folder) / "redis", persistent=False)
        try:
            store = open_store(repo, redis.url)
            store.apply()
            offline = write_offline(store, args.entities, args.source_rows)
            queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
            child = multiprocessing.get_context("spawn").Process(target=sync_child, args=(str(repo), redis.url, queue))
            child.start()
            child.join()
            sync = queue.get(timeout=5)
            report = {
                "entities": args.entities,
                "offline": offline,
                "sync": sync,
                "lookup": (lookup := lookups(store, args.entities, args.lookups)),
                "definition_check": definition_check(
                    store, probing_store(repo, redis.url), lookup["one_entity_raw_redis_py_mget"]["p50_ms"], args.lookups
                ),
                "packed_vs_hash": packed_vs_hash(store, args.entities, args.lookups),
                "http": http_server(repo, redis.url, args.entities, args.lookups),
                "cpus": os.cpu_count(),
            }
        finally:
            redis.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
