"""The HTTP feature server under load, next to `feast serve`; prints JSON.

    python bench/server_load.py [--data DIR] [--workers N] [--duration S] [--rounds R] [--connections 1,8,64] [--feast-venv DIR]

Data: the peers' Feast-shaped set (`--data`, default `$FEAST_DATA` or
/tmp/peers-feast/data/small: `user_stats` with 10 features, `user_activity` with
5, 100k users); the latest row per user of each group is pushed online. Our
server (`python -m feature_platform.serving.server --workers N`) and, when
`--feast-venv` has Feast, `feast serve -w N` on the same rows in their own
Redis answer the same one-entity request (15 references, a random user per
request, the peer figure's request) under `wrk` at each connection count; ours
also serves the 15 features as a view and as a view with one on-demand
transformation. During the largest run of each of our cases a client times
`/health`. With `--rounds R` our cases take turns R times (so a change in the
machine's load hits them alike) and each figure is the round of median
requests/s. At the end the server gets SIGTERM while busy: exit code and time.
"""

import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feature_platform.online.redis_server import free_port, start_server  # noqa: E402

PEERS = Path("/work/shared/peers/feast")
STATS = [f"s_f{i}" for i in range(7)] + [f"s_i{i}" for i in range(3)]
ACTIVITY = [f"a_f{i}" for i in range(3)] + [f"a_i{i}" for i in range(2)]
REFERENCES = [f"user_stats:{f}" for f in STATS] + [f"user_activity:{f}" for f in ACTIVITY]

ASSETS = textwrap.dedent(
    """
    from feature_platform import Entity, Feature, FeatureGroup, FeatureView, OnDemandTransformation

    user = Entity("user", join_keys={"user_id": "int64"})
    stats = [f"s_f{i}" for i in range(7)] + [f"s_i{i}" for i in range(3)]
    activity = [f"a_f{i}" for i in range(3)] + [f"a_i{i}" for i in range(2)]


    def group(name, features):
        return FeatureGroup(
            name, entities=[user], partitions=None, event_time="event_timestamp", created_time="created",
            features=[Feature(f, "int64" if "_i" in f else "float64") for f in features],
        )


    def amount_ratio(columns):
        pairs = zip(columns["amount"], columns["s_f0"])
        return {"amount_ratio": [None if a is None or s is None else a / (abs(s) + 1.0) for a, s in pairs]}


    ratio = OnDemandTransformation(
        "amount_ratio", function=amount_ratio, mode="python", outputs=[Feature("amount_ratio", "float64")],
        inputs=["s_f0"], request_inputs=[Feature("amount", "float64")],
    )
    references = [f"user_stats:{f}" for f in stats] + [f"user_activity:{f}" for f in activity]
    feature_groups = [group("user_stats", stats), group("user_activity", activity)]
    feature_views = [FeatureView("plain", features=references), FeatureView("scored", features=references, on_demand=[ratio])]
    raw_sources = []
    """
)

WRK_SCRIPT = """
math.randomseed(7)
local users = {users}
local template = {template}
request = function()
  return wrk.format("POST", "/get-online-features", {{["Content-Type"] = "application/json"}},
                    string.format(template, math.random(0, users - 1)))
end
"""


def latest_rows(path: Path) -> pd.DataFrame:
    """The row of greatest (event, created) per user: what a sync or a Feast materialize puts online."""
    frame = pd.read_parquet(path)
    return frame.sort_values(["user_id", "event_timestamp", "created"]).drop_duplicates("user_id", keep="last")


def synthetic_rows(features: list[str], users: int) -> pd.DataFrame:
    """One row per user of a group with these features (ints for `*_i*`, floats else), for runs without the peers' data."""
    frame = pd.DataFrame({"user_id": range(users), "event_timestamp": pd.Timestamp("2024-03-01", tz="UTC"),
                          "created": pd.Timestamp("2024-03-01", tz="UTC")})
    for i, name in enumerate(features):
        frame[name] = [u * (i + 1) for u in range(users)] if "_i" in name else [u / (i + 1) for u in range(users)]
    return frame


def wait_until_up(port: int, process: subprocess.Popen, timeout_s: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s} s")


def group_cpu_s(group: int, *, pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process group `group` (or process `pid` alone).

    With the CPU of the children they reaped: a worker that died or was replaced (Feast's time out
    under load) still counts, through its supervisor.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in [Path(f"/proc/{pid}")] if pid else Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if pid or int(fields[2]) == group:  # fields[2] is the process group; utime, stime, cutime, cstime at 11-14
            total += sum(int(f) for f in fields[11:15])
    return total / ticks


def children_cpu_s() -> float:
    """CPU seconds used by this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(port: int, body_template: str, users: int, connections: int, duration_s: int, folder: Path,
        group: int | None = None, redis_pid: int | None = None) -> dict:
    """One wrk run (after a one-second warm-up at the same load): requests/s, latency percentiles, errors.

    With `group` (the server's process group) and `redis_pid`, also the CPU time per request of the
    server, its Redis and wrk, and `cpu_bound_rps`: the cores divided by their sum, the rate the machine
    would sustain with nothing else running. On a shared machine requests/s follow what else runs; CPU
    per request much less.
    """
    script = folder / f"wrk_{connections}.lua"
    script.write_text(WRK_SCRIPT.format(users=users, template=json.dumps(body_template)))
    threads = 1 if connections == 1 else 2
    base = ["wrk", f"-t{threads}", f"-c{connections}", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"]
    subprocess.run([*base[:4], "-d1s", *base[4:]], capture_output=True, check=True)
    before = (group_cpu_s(group) if group else 0.0, group_cpu_s(0, pid=redis_pid) if redis_pid else 0.0, children_cpu_s())
    output = subprocess.run([*base[:4], f"-d{duration_s}s", *base[4:]], capture_output=True, text=True, check=True).stdout
    cpu = group_cpu_s(group) - before[0] if group else None
    redis_cpu = group_cpu_s(0, pid=redis_pid) - before[1] if redis_pid else None
    client_cpu = children_cpu_s() - before[2]
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)$", output, re.M)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return {
        "connections": connections,
        "rps": float(re.search(r"Requests/sec:\s+(\S+)", output).group(1)),
        **({"server_cpu_us_per_request": round(cpu / requests * 1e6, 1)} if cpu is not None else {}),
        **({"redis_cpu_us_per_request": round(redis_cpu / requests * 1e6, 1)} if redis_cpu is not None else {}),
        "wrk_cpu_us_per_request": round(client_cpu / requests * 1e6, 1),
        **({"cpu_bound_rps": round(len(os.sched_getaffinity(0)) * requests / (cpu + redis_cpu + client_cpu))}
           if cpu is not None and redis_cpu is not None else {}),
        **{f"p{p}_ms": _ms(v) for p, v in percentiles.items()},
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def health_while(port: int, stop: threading.Event, seen: list[float]) -> None:
    """Time GET /health every 100 ms until `stop`."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            seen.append((time.perf_counter() - started) * 1000)
            time.sleep(0.1)


def load_runs(port: int, body: str, users: int, connections: list[int], duration_s: int, folder: Path, *, health: bool, group: int,
              redis_pid: int) -> dict:
    runs = []
    for count in connections:
        stop, seen = threading.Event(), []
        watcher = threading.Thread(target=health_while, args=(port, stop, seen))
        if health and count == max(connections):
            watcher.start()
        runs.append(wrk(port, body, users, count, duration_s, folder, group, redis_pid))
        stop.set()
        if seen:
            watcher.join()
            runs[-1]["health_ms"] = {"count": len(seen), "p50": round(statistics.median(seen), 2), "max": round(max(seen), 2)}
    return {f"c{r['connections']}": r for r in runs}


def median_run(runs: list[dict]) -> dict:
    """The run of median requests/s (the lower one of an even count), with every round's requests/s and server CPU."""
    chosen = sorted(runs, key=lambda r: r["rps"])[(len(runs) - 1) // 2]
    return {**chosen, "rps_rounds": [r["rps"] for r in runs],
            "server_cpu_us_rounds": [r.get("server_cpu_us_per_request") for r in runs]}


def ours(args: argparse.Namespace, data: Path, users: int, folder: Path) -> dict:
    from feature_platform import FeatureStore

    redis = start_server(folder / "redis", persistent=False)
    repo = folder / "repo"
    (repo / "assets").mkdir(parents=True)
    (repo / "assets" / "__init__.py").write_text(ASSETS)
    env = {**os.environ, "FEATURE_PLATFORM_REDIS_URL": redis.url, "FEATURE_PLATFORM_HOME": str(folder / "home"),
           "PYTHONPATH": str(ROOT)}
    os.environ.update({k: env[k] for k in ("FEATURE_PLATFORM_REDIS_URL", "FEATURE_PLATFORM_HOME")})
    store = FeatureStore.from_repo(repo)
    store.apply()
    for name in ("user_stats", "user_activity"):
        store.push(name, latest_rows(data / f"{name}.parquet"), to="online")
    port = free_port()
    command = [sys.executable, "-m", "feature_platform.serving.server", "--repo", str(repo), "--port", str(port),
               "--workers", str(args.workers)]
    server = subprocess.Popen(command, env=env, cwd=folder, start_new_session=True)
    result: dict = {"workers": args.workers}
    try:
        result["ready_s"] = round(wait_until_up(port, server), 2)
        requests = {
            "references": '{"features": %s, "entities": {"user_id": [%%d]}}' % json.dumps(REFERENCES),
            "view": '{"feature_view": "plain", "entities": {"user_id": [%d]}}',
            "view_with_transformation": '{"feature_view": "scored", "entities": {"user_id": [%d], "amount": [120.5]}}',
        }
        sample = httpx.post(f"http://127.0.0.1:{port}/get-online-features", content=requests["view_with_transformation"] % 3,
                            headers={"content-type": "application/json"})
        result["sample"] = sample.json()
        rounds: dict[str, dict[str, list[dict]]] = {}
        for _ in range(args.rounds):  # the cases take turns, so a change in the machine's load hits them alike
            for case, body in requests.items():
                runs = load_runs(port, body, users, args.connections, args.duration, folder, health=True, group=server.pid,
                                 redis_pid=redis.process.pid)
                for key, run in runs.items():
                    rounds.setdefault(case, {}).setdefault(key, []).append(run)
        for case, by_connections in rounds.items():
            result[case] = {key: median_run(runs) for key, runs in by_connections.items()}
        result["shutdown"] = sigterm_while_busy(port, server, requests["view"], users, folder)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        redis.stop()
    return result


def sigterm_while_busy(port: int, server: subprocess.Popen, body: str, users: int, folder: Path) -> dict:
    """SIGTERM during a 64-connection load: the exit code and how long the server took to exit."""
    load = threading.Thread(target=wrk, args=(port, body, users, 64, 3, folder))
    load.start()
    time.sleep(2)
    sent = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=30)
    load.join()
    return {"exit_code": code, "exit_s": round(time.monotonic() - sent, 2)}


def feast(args: argparse.Namespace, data: Path, users: int, folder: Path) -> dict:
    """`feast serve` over the same rows (materialized into its own Redis) under the same request."""
    python = Path(args.feast_venv) / "bin" / "python"
    redis = start_server(folder / "feast-redis", persistent=False)
    repo = folder / "feast-repo"
    helper = str(PEERS / "bench_feast.py")
    try:
        subprocess.run([python, helper, "setup", "--data", data, "--repo", repo, "--offline", "file",
                        "--redis-port", str(redis.port)], check=True, capture_output=True)
        started = time.monotonic()
        materialized = subprocess.run([python, helper, "child-materialize", "--repo", repo, "--data", data,
                                       "--redis-port", str(redis.port)], capture_output=True, text=True)
        result: dict = {"workers": args.workers, "materialize_s": round(time.monotonic() - started, 1)}
        if materialized.returncode:
            return {**result, "error": materialized.stderr[-2000:]}
        port = free_port()
        server = subprocess.Popen([Path(args.feast_venv) / "bin" / "feast", "-c", repo, "serve", "-h", "127.0.0.1",
                                   "-p", str(port), "--no-access-log", "-w", str(args.workers)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            result["ready_s"] = round(wait_until_up(port, server), 2)
            body = '{"features": %s, "entities": {"user_id": [%%d]}}' % json.dumps(REFERENCES)
            result["sample"] = httpx.post(f"http://127.0.0.1:{port}/get-online-features", content=body % 3,
                                          headers={"content-type": "application/json"}).json()
            result["references"] = load_runs(port, body, users, args.connections, args.duration, folder, health=False,
                                             group=server.pid, redis_pid=redis.process.pid)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        return result
    finally:
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FEAST_DATA", "/tmp/peers-feast/data/small"))
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every case of ours, taking turns; the median is reported")
    parser.add_argument("--connections", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 64])
    parser.add_argument("--feast-venv", default="/tmp/peers-feast/venv", help="a venv with feast[redis] 0.67; '' skips Feast")
    args = parser.parse_args()
    data = Path(args.data)
    users = json.loads((data / "meta.json").read_text())["users"]
    report: dict = {"data": str(data), "users": users, "cores": len(os.sched_getaffinity(0)),
                    "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="server-load-") as tmp:
        folder = Path(tmp)
        report["ours"] = ours(args, data, users, folder)
        if args.feast_venv and (Path(args.feast_venv) / "bin" / "feast").exists():
            report["feast"] = feast(args, data, users, folder)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
