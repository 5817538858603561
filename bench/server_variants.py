"""The feature server's lookup: awaited on the pipelined redis.asyncio connection (what ships) against a blocking lookup on the thread pool; prints JSON.

    python bench/server_variants.py [--calls N] [--concurrency C]

Both variants run the same request (the 15-feature view of bench/server_load.py,
one entity) through the ASGI app in this process, without HTTP parsing, against
a throwaway redis-server: wall and CPU time per request, one at a time and
`--concurrency` at once. CPU per request is the figure that holds on a shared
machine; the thread-pool variant is built here only, to compare.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import server_load  # noqa: E402

from feature_platform import FeatureStore  # noqa: E402
from feature_platform.online.redis_server import start_server  # noqa: E402
from feature_platform.serving import server  # noqa: E402
from feature_platform.serving.json_values import dumps  # noqa: E402
from feature_platform.serving.lookup import LookupRouter, parse  # noqa: E402

BODY = b'{"feature_view": "plain", "entities": {"user_id": [3]}}'


def thread_pool_app(store: FeatureStore) -> LookupRouter:
    """The alternative: the same route, parse and answer, with the blocking lookup on Starlette's thread pool."""

    async def lookup(body: bytes) -> bytes:
        request = parse(server.OnlineFeaturesRequest, body)
        view = store.catalog.view(request.feature_view)
        result = await run_in_threadpool(store.get_online_features, request.entities, view)
        return dumps({"features": result.to_dict(), "statuses": result.statuses})

    return LookupRouter(FastAPI(), lookup)


async def call(app: Any, body: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/get-online-features", "raw_path": b"/get-online-features", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {}}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent


async def measure(app: Any, calls: int, concurrency: int) -> dict:
    for _ in range(200):
        await call(app, BODY)
    result = {}
    for label, width in (("one_at_a_time", 1), (f"{concurrency}_at_once", concurrency)):
        wall, cpu = time.perf_counter(), time.process_time()

        async def worker() -> None:
            for _ in range(calls // width):
                await call(app, BODY)

        await asyncio.gather(*[worker() for _ in range(width)])
        done = calls // width * width
        result[label] = {"wall_us_per_request": round((time.perf_counter() - wall) / done * 1e6, 1),
                         "cpu_us_per_request": round((time.process_time() - cpu) / done * 1e6, 1)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the variants this many times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="server-variants-") as tmp:
        folder = Path(tmp)
        redis = start_server(folder / "redis", persistent=False)
        try:
            repo = folder / "repo"
            (repo / "assets").mkdir(parents=True)
            (repo / "assets" / "__init__.py").write_text(server_load.ASSETS)
            os.environ["FEATURE_PLATFORM_REDIS_URL"] = redis.url
            store = FeatureStore.from_repo(repo)
            store.apply()
            store.push("user_stats", server_load.synthetic_rows(server_load.STATS, 1000), to="online")
            store.push("user_activity", server_load.synthetic_rows(server_load.ACTIVITY, 1000), to="online")
            server.warm(store)
            apps = {"async_redis": server.create_app(store), "thread_pool": thread_pool_app(store)}
            report: dict = {"load_average": os.getloadavg(), "rounds": []}
            for _ in range(args.rounds):
                report["rounds"].append({name: uvloop.run(measure(app, args.calls, args.concurrency)) for name, app in apps.items()})
        finally:
            redis.stop()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
