"""Stream consumer throughput and event-to-online latency on a real redis-server; prints JSON.

    python bench/streaming.py --mode throughput --events 500000
    python bench/streaming.py --mode latency --rate 50000 --seconds 20
    python bench/streaming.py --mode latency --rate 50000 --seconds 60 --redis-cpu 1
    python bench/streaming.py --mode latency --rate 50000 --seconds 120 --retention-minutes 1

`throughput`: publish first, then consume as fast as possible (online tiles and
offline Delta appends); reports the CPU time per event of the consumer and of
redis-server, which bounds the rate on an unshared machine, and apart from
them what publishing cost the producer (`publish`: redis-py pipelines) and
redis-server (`XADD`). `latency`: a producer process publishes at `--rate`
while the consumer runs; the latency of a batch is the time from its oldest
entry reaching Redis to the batch being visible online (p50/p99 over batches;
`latency_ms_p99_events` counts each event at its batch's oldest entry).
"""

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import redis  # noqa: E402

from feature_platform import Aggregation, Entity, FeatureStore, StreamFeatureGroup  # noqa: E402
from feature_platform.online.redis_server import start_server  # noqa: E402
from feature_platform.streaming.processor import DEFAULT_STREAM_RETENTION  # noqa: E402

card = Entity("card", join_keys={"card_id": "int64"})
GROUP = StreamFeatureGroup(
    "card_windows",
    entities=[card],
    fields={"amount": "float64", "merchant_id": "int64"},
    aggregations=[
        Aggregation("count", timedelta(minutes=10), name="txn_count_10m"),
        Aggregation("count", timedelta(hours=1), name="txn_count_1h"),
        Aggregation("sum", timedelta(hours=1), column="amount"),
        Aggregation("mean", timedelta(days=1), column="amount"),
        Aggregation("max", timedelta(hours=1), column="amount"),
        Aggregation("approx_count_distinct", timedelta(days=1), column="merchant_id", name="merchants_1d"),
    ],
)


def make_store(root: Path, url: str) -> FeatureStore:
    store = FeatureStore(groups=[GROUP], offline_root=root / "offline", online_url=url, project="bench")
    store.apply()  # every read and write requires applied definitions
    return store


def events(count: int, cards: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    now_ms = int(time.time() * 1000)
    card_ids = rng.integers(0, cards, count).tolist()
    amounts = np.round(rng.gamma(2.0, 30.0, count), 2).tolist()
    merchants = rng.integers(0, 5000, count).tolist()
    return [{"card_id": c, "event_time": now_ms, "amount": a, "merchant_id": m} for c, a, m in zip(card_ids, amounts, merchants)]


def produce(root: str, url: str, rate: int, seconds: float, cards: int) -> None:
    """Publish `rate` events per second for `seconds` (a separate process), as a producer elsewhere would.

    The XADD commands are packed into RESP bytes before the clock starts, 500 per
    write, and sent with replies off: publishing then costs this process well under
    a microsecond per event, so the 2 cores go to the consumer and redis-server,
    which still does every XADD. Entries get their ids (the latency's start) from
    Redis when they arrive; each write's event times are stamped when it is sent
    (the pool's one time, 13 digits, replaced), so tiles roll over every minute as
    in a live stream.
    """
    stream = make_store(Path(root), url).stream("card_windows")
    pool = events(100_000, cards, 1)
    stamp = b"%d" % pool[0]["event_time"]
    connection = redis.Connection(**stream.client.connection_pool.connection_kwargs)
    writes = [b"".join(b"".join(connection.pack_command("XADD", stream.key, "*", *_fields(e))) for e in pool[start : start + 500])
              for start in range(0, len(pool), 500)]
    connection.connect()
    connection.send_command("CLIENT", "REPLY", "OFF")
    began = time.monotonic()
    sent = 0
    while time.monotonic() - began < seconds:
        due = int((time.monotonic() - began) * rate)
        while sent < due:
            now = b"%d" % int(time.time() * 1000)
            connection.send_packed_command([writes[(sent // 500) % len(writes)].replace(stamp, now)], check_health=False)
            sent += 500
        time.sleep(0.001)
    connection.disconnect()


def _fields(event: dict) -> list:
    return [item for pair in event.items() for item in pair]


def redis_cpu(store: FeatureStore) -> float:
    info = store.online.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def machine_cpu() -> tuple[float, float]:
    """Seconds of CPU time the whole machine was idle and stolen by the hypervisor (other tenants), so far."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    hertz = os.sysconf("SC_CLK_TCK")
    return fields[3] / hertz, (fields[7] if len(fields) > 7 else 0) / hertz


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def throughput(store: FeatureStore, count: int, cards: int, batch: int) -> dict:
    stream = store.stream("card_windows")
    chunks = [events(min(100_000, count - start), cards, start) for start in range(0, count, 100_000)]
    began, redis_before, own_before = time.perf_counter(), redis_cpu(store), process_cpu()
    for chunk in chunks:
        stream.publish(chunk)
    publish_s = time.perf_counter() - began
    publish_redis, publish_own = redis_cpu(store) - redis_before, process_cpu() - own_before
    redis_before, own_before = redis_cpu(store), process_cpu()
    with store.stream_processor("card_windows", consumer="bench", batch_size=batch) as processor:
        stats = processor.run(until_idle=True)
    redis_used, own_used = redis_cpu(store) - redis_before, process_cpu() - own_before
    return {
        "consumer_cpu_us_per_event": round(own_used / count * 1e6, 1), "redis_cpu_us_per_event": round(redis_used / count * 1e6, 1),
        "events_per_s_if_each_had_a_core": round(count / max(own_used, redis_used)),
        "producer_cpu_us_per_event": round(publish_own / count * 1e6, 1), "redis_xadd_cpu_us_per_event": round(publish_redis / count * 1e6, 1),
        "events": stats.events, "publish_events_per_s": round(count / publish_s), "consume_seconds": round(stats.seconds, 2),
        "events_per_s_online_and_offline": stats.events_per_second, "offline_rows": stats.offline_rows,
    }


def latency(store: FeatureStore, root: Path, url: str, rate: int, seconds: float, cards: int, batch: int, retention: timedelta) -> dict:
    producer = multiprocessing.get_context("spawn").Process(target=produce, args=(str(root), url, rate, seconds, cards))
    with store.stream_processor("card_windows", consumer="bench", batch_size=batch, retention=retention) as processor:
        processor.start()
        redis_before, own_before, machine_before = redis_cpu(store), process_cpu(), machine_cpu()
        producer.start()
        stats = processor.run(max_seconds=seconds + 2)
        redis_used, own_used = redis_cpu(store) - redis_before, process_cpu() - own_before
        idle, stolen = (after - before for after, before in zip(machine_cpu(), machine_before))
        producer.join()
        rest = processor.run(until_idle=True)
    latencies = np.array(stats.latencies_ms)
    # Each event counted at its batch's oldest entry (an upper bound of the events' own p99): late batches are big.
    order = np.argsort(latencies, kind="stable")
    events_before = np.cumsum(np.array(stats.batch_events)[order])
    p99_events = latencies[order][np.searchsorted(events_before, 0.99 * events_before[-1])]
    persistence = store.online.client.info("persistence")
    return {
        "rate_target": rate, "seconds": seconds, "published_per_s": round((stats.events + rest.events) / seconds),  # all consumed by the end
        "events": stats.events + rest.events,
        "events_per_s": round(stats.events / stats.seconds), "batches": len(latencies),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
        "latency_ms_p99_events": round(float(p99_events), 1),
        "latency_ms_max": round(float(latencies.max()), 1),
        "consumer_cpu_us_per_event": round(own_used / stats.events * 1e6, 1),
        "redis_cpu_us_per_event": round(redis_used / stats.events * 1e6, 1),  # with the producer's XADDs
        "idle_cores": round(idle / stats.seconds, 2), "stolen_cores": round(stolen / stats.seconds, 2),
        "offline_rows": stats.offline_rows + rest.offline_rows,
        # Writes Redis held back while the disk was still syncing the append-only file (a stall on a busy disk).
        "aof_delayed_fsync": persistence.get("aof_delayed_fsync"), "forks": store.online.client.info("stats").get("total_forks"),
        "aof_mb": round(persistence.get("aof_current_size", 0) / 1e6), "aof_last_rewrite_s": persistence.get("aof_last_rewrite_time_sec"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["throughput", "latency"], default="throughput")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--retention-minutes", type=float, default=DEFAULT_STREAM_RETENTION / timedelta(minutes=1),
                        help="how long the stream keeps what both sinks stored (latency mode; the consumer's default)")
    parser.add_argument("--redis-cpu", type=int, help="pin redis-server to this CPU and the consumer and producer to the others "
                        "(as with Redis on its own machine)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        server = start_server(root / "redis", persistent=True)
        try:
            if args.redis_cpu is not None:
                os.sched_setaffinity(server.process.pid, {args.redis_cpu})
                os.sched_setaffinity(0, os.sched_getaffinity(0) - {args.redis_cpu})  # the producer process inherits it
            store = make_store(root, server.url)
            if args.mode == "throughput":
                result = throughput(store, args.events, args.cards, args.batch)
            else:
                retention = timedelta(minutes=args.retention_minutes)
                result = latency(store, root, server.url, args.rate, args.seconds, args.cards, args.batch, retention)
                result["retention_minutes"] = args.retention_minutes
        finally:
            server.stop()
    result.update({"mode": args.mode, "cards": args.cards, "batch": args.batch, "cpus": os.cpu_count(), "redis_cpu": args.redis_cpu,
                   "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
