"""`feature-platform`: find, understand and run the feature repository from a terminal.

    feature-platform list | describe NAME | search TEXT | lineage NAME | history GROUP
    feature-platform plan | apply | retire GROUP --version N | registry-history
    feature-platform materialize GROUP [--partition DAY] | backfill GROUP... --start DAY --end DAY
    feature-platform serve [--host H] [--port P] | redis start|stop|status
    feature-platform init DIR --package NAME
    feature-platform stream GROUP [--consumer NAME] [--max-seconds S] [--until-idle]

Every command takes `--repo` (default `.`) and `--json` (machine-readable output).
Subcommands are entries of `COMMANDS`; `register(Command(...))` adds one (e.g. `serve`).
"""

import argparse
import json
import math
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from feature_platform import discovery
from feature_platform.errors import FeaturePlatformError
from feature_platform.scaffold import create_repository
from feature_platform.store import DEFAULT_HOME, FeatureStore
from feature_platform.streaming.processor import DEFAULT_MIN_READ_INTERVAL, DEFAULT_STREAM_RETENTION


@dataclass(frozen=True)
class Command:
    """A subcommand: its arguments, what it computes (JSON-able) and how a terminal shows that."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Any]
    render: Callable[[Any], str]


COMMANDS: dict[str, Command] = {}


def register(command: Command) -> Command:
    COMMANDS[command.name] = command
    return command


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned text columns under a header."""
    if not rows:
        return "  (none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join("  " + line for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def store_of(args: argparse.Namespace) -> FeatureStore:
    return FeatureStore.from_repo(args.repo)


# Discovery


def render_list(result: dict[str, list[dict[str, Any]]]) -> str:
    return "\n\n".join(
        [
            "Feature groups\n" + table(result["groups"], ["name", "version", "entities", "features", "partitioned", "owner", "tags"]),
            "Feature views\n" + table(result["views"], ["name", "version", "features", "owner"]),
            "Raw sources\n" + table(result["sources"], ["name", "partitioned", "owner"]),
            "Training datasets\n" + table(result["training_datasets"], ["name", "version", "view", "created"]),
        ]
    )


def render_describe(facts: dict[str, Any]) -> str:
    lists = {k: v for k, v in facts.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
    head = [f"{facts['kind']} {facts['name']}"] + [f"  {k}: {_cell(v)}" for k, v in facts.items() if k not in lists and k not in ("kind", "name")]
    sections = [f"{k.replace('_', ' ').capitalize()}\n" + table(v, list(v[0])) for k, v in lists.items()]
    return "\n\n".join(["\n".join(head), *sections])


def render_search(hits: list[dict[str, Any]]) -> str:
    if not hits:
        return "No definition matches."
    rows = []
    for hit in hits:
        features = [m.removeprefix("feature ") for m in hit["matched"] if m.startswith("feature ")]
        fields = [m for m in hit["matched"] if not m.startswith("feature ")] + ([f"features {', '.join(features)}"] if features else [])
        rows.append({**hit, "matched": "; ".join(fields)})
    return table(rows, ["kind", "name", "matched", "description"])


def render_lineage(result: dict[str, Any]) -> str:
    lines = [f"{result['name'][0]}", "  upstream:   " + _cell(result["upstream"]), "  downstream: " + _cell(result["downstream"])]
    if result.get("assets"):
        lines += [f"  dagster asset {result['assets']['key']}:", "    upstream:   " + _cell(result["assets"]["upstream"]),
                  "    downstream: " + _cell(result["assets"]["downstream"])]
    return "\n".join(lines)


def run_lineage(args: argparse.Namespace) -> dict[str, Any]:
    store = store_of(args)
    result: dict[str, Any] = discovery.lineage(store, args.name)
    kind, _ = discovery.find(store, args.name)
    if kind in ("group", "source"):
        from feature_platform.orchestration.operations import asset_neighbours  # the asset graph needs Dagster

        neighbours = asset_neighbours(args.repo, ["features" if kind == "group" else "raw", args.name])
        if neighbours is not None:
            result["assets"] = neighbours
    return result


def name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a feature group, view or raw source")


register(Command("list", "groups, views, raw sources and training datasets", lambda p: None, lambda a: discovery.list_all(store_of(a)), render_list))
register(Command("describe", "schema, owner, tags, partitions, Delta versions of a group (or a view, a source)", name_argument,
                 lambda a: discovery.describe(store_of(a), a.name), render_describe))
register(Command("search", "keyword search over names, descriptions, tags, owners and feature names",
                 lambda p: p.add_argument("text", nargs="+", help="words that must all appear"),
                 lambda a: [asdict(h) for h in discovery.search(store_of(a), " ".join(a.text))], render_search))
register(Command("lineage", "upstream and downstream of a group, view or raw source", name_argument, run_lineage, render_lineage))
register(Command("history", "Delta versions of a group's table with time and operation",
                 lambda p: p.add_argument("group", help="a feature group"),
                 lambda a: discovery.history(store_of(a), a.group),
                 lambda rows: table(rows, ["version", "timestamp", "operation", "partition_key", "dagster_run_id"])))

register(Command("index", "build the join index of a group's current table version (as maintenance does after its pass)",
                 lambda p: p.add_argument("group", help="a feature group"),
                 lambda a: run_index(store_of(a), a.group),
                 lambda r: f"{r['group']}: version {r['version']}, {r['rows_indexed']} rows indexed" if r["rows_indexed"] is not None
                 else f"{r['group']}: nothing indexed (no table yet, or a remote table)"))


def run_index(store: FeatureStore, group: str) -> dict[str, Any]:
    rows = store.build_join_index(group)
    return {"group": group, "version": store.offline.version(store.group(group)), "rows_indexed": rows}


# Definitions: plan, apply, retire


def run_plan(args: argparse.Namespace) -> dict[str, Any]:
    plan = store_of(args).plan()
    return {"success": not plan.refused, "items": [i.as_dict() for i in plan.items], "text": plan.render()}


def run_apply(args: argparse.Namespace) -> dict[str, Any]:
    plan = store_of(args).apply()
    return {"success": True, "items": [i.as_dict() for i in plan.items], "text": plan.render().replace("apply would change", "applied")}


def retire_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group", help="a feature group")
    parser.add_argument("--version", type=int, required=True, help="the group version to retire")
    parser.add_argument("--delete-offline", action="store_true", help="also delete its offline table")
    parser.add_argument("--force", action="store_true", help="delete the table even though training datasets read it")
    parser.add_argument("--dry-run", action="store_true", help="say what would happen, change nothing")


def run_retire(args: argparse.Namespace) -> dict[str, Any]:
    result = store_of(args).retire(args.group, args.version, delete_offline=args.delete_offline, force=args.force, dry_run=args.dry_run)
    return result.as_dict()


def render_retire(result: dict[str, Any]) -> str:
    verb = "would retire" if result["dry_run"] else "retired"
    lines = [f"{verb} feature group {result['group']} v{result['version']}: {result['online_keys_deleted']} online key(s) deleted, "
             f"offline table {result['offline_table']}"]
    if result["training_datasets"]:
        lines.append(f"training datasets reading it: {', '.join(result['training_datasets'])}")
        if result["offline_table"] == "deleted":
            lines.append("WARNING: the offline table was deleted although training datasets read it: they can no longer be rebuilt")
    return "\n".join(lines)


register(Command("plan", "what apply would do to the registry (exit 1 when apply would refuse)", lambda p: None, run_plan, lambda r: r["text"]))
register(Command("apply", "record the definitions in the registry and evolve tables in place", lambda p: None, run_apply, lambda r: r["text"]))
register(Command("retire", "remove a group version's online keys and mark it retired", retire_arguments, run_retire, render_retire))
register(Command("registry-history", "every apply and retire: when, who, what changed", lambda p: None,
                 lambda a: store_of(a).registry_history(),
                 lambda rows: table([{**r, "changes": [f"{c['kind']} {c['name']} v{c['version']} {c['action']}" for c in r["changes"]]} for r in rows],
                                    ["sequence", "applied_at", "applied_by", "action", "changes"])))


# Operations (through Dagster, on the instance under DAGSTER_HOME)


def dagster_home(repo: str) -> str:
    """DAGSTER_HOME, or the repository's `.feature_platform/dagster` (as `make` sets it), set up from dagster.yaml."""
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(repo).resolve() / DEFAULT_HOME / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        config = Path(os.environ.get("DAGSTER_INSTANCE_CONFIG", Path(repo).resolve() / "dagster.yaml"))
        if not (home / "dagster.yaml").exists() and config.exists():
            shutil.copy(config, home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    return os.environ["DAGSTER_HOME"]


def progress(total: int) -> Callable[[int, Any], None]:
    """Prints a bar line to stderr after each finished run."""

    def done(index: int, outcome: Any) -> None:
        filled = int(20 * (index + 1) / total)
        span = outcome.run.first if outcome.run.first == outcome.run.last else f"{outcome.run.first}..{outcome.run.last}"
        state = "ok" if outcome.success else "FAILED"
        print(f"[{'#' * filled}{'.' * (20 - filled)}] {index + 1}/{total} runs  {span or 'unpartitioned'}  {state}  {outcome.seconds:.1f}s",
              file=sys.stderr, flush=True)

    return done


def run_operation(args: argparse.Namespace, groups: Sequence[str], first: str | None, last: str | None) -> dict[str, Any]:
    from feature_platform.orchestration.operations import materialize_range  # Dagster loads for this command only

    store = store_of(args)
    names = [n if n in store.sources else store.group(n).name for n in groups]
    home = dagster_home(args.repo)
    planned: list[int] = []

    def announce(count: int, keys: list[str]) -> None:
        planned.append(count)
        print(f"{count} run(s) for {', '.join(keys)} on the instance at {home}", file=sys.stderr, flush=True)

    def done(index: int, outcome: Any) -> None:
        progress(planned[0])(index, outcome)

    count, outcomes = materialize_range(
        args.repo, names, set(store.sources), first, last, with_downstream_assets=args.with_downstream,
        partitions_per_run=getattr(args, "partitions_per_run", None), workers=args.workers, on_planned=announce, on_done=done,
    )
    return {
        "success": len(outcomes) == count and all(o.success for o in outcomes),
        "runs": [{"run_id": o.run_id, "assets": [k.to_user_string() for k in o.run.assets], "first": o.run.first, "last": o.run.last,
                  "success": o.success, "seconds": round(o.seconds, 2), "error": o.error} for o in outcomes],
        "planned_runs": count,
        "dagster_home": home,
    }


def operation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=0, help="step processes per run with the multiprocess executor; 0 (default, fastest in docs/benchmarks.md) runs in this process")
    parser.add_argument("--with-downstream", action="store_true", help="also materialize drift, online sync and other downstream assets")


def materialize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group", help="a feature group (or a raw source Dagster produces)")
    parser.add_argument("--partition", help="the day YYYY-MM-DD (partitioned groups)")
    operation_arguments(parser)


def backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("groups", nargs="+", help="feature groups or raw sources; they share runs when their backfill policies agree")
    parser.add_argument("--start", required=True, help="first day YYYY-MM-DD")
    parser.add_argument("--end", required=True, help="last day YYYY-MM-DD (inclusive)")
    parser.add_argument("--partitions-per-run", type=int, help="days per run (default: the assets' backfill policies)")
    operation_arguments(parser)


def render_operation(result: dict[str, Any]) -> str:
    summary = f"{sum(r['success'] for r in result['runs'])}/{result['planned_runs']} run(s) succeeded"
    failed = [f"  run {r['run_id']} ({r['first']}..{r['last']}): {r['error']}" for r in result["runs"] if not r["success"]]
    return "\n".join([table(result["runs"], ["run_id", "first", "last", "success", "seconds"]), summary, *failed])


register(Command("materialize", "materialize one group (one partition) through Dagster", materialize_arguments,
                 lambda a: run_operation(a, [a.group], a.partition, a.partition), render_operation))
register(Command("backfill", "materialize groups over a day range through Dagster, in range runs", backfill_arguments,
                 lambda a: run_operation(a, a.groups, a.start, a.end), render_operation))


# Serving


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=6566)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")


def run_serve(args: argparse.Namespace) -> dict[str, Any]:
    from feature_platform.serving.server import serve  # FastAPI and uvicorn load for this command only

    serve(args.host, args.port, args.repo, args.workers)
    return {"host": args.host, "port": args.port, "stopped": True}


def redis_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"], help="the embedded Redis server of the repository")


def _port(url: str | None) -> int | None:
    return int(url.rsplit(":", 1)[1].split("/")[0]) if url else None  # the URL holds the password: never shown


def run_redis(args: argparse.Namespace) -> dict[str, Any]:
    from feature_platform.online import redis_server

    home = Path(os.environ.get("FEATURE_PLATFORM_HOME", Path(args.repo).resolve() / DEFAULT_HOME))
    before = redis_server.running_url(home)
    if args.action == "start":
        redis_server.ensure_server(home)
    elif args.action == "stop":
        redis_server.stop_server(home)
    url = redis_server.running_url(home)
    return {"action": args.action, "was_running": before is not None, "running": url is not None,
            "port": _port(url or before), "data": str(Path(home) / "redis")}


def render_redis(result: dict[str, Any]) -> str:
    where = f"127.0.0.1:{result['port']}"
    if result["action"] == "stop":
        done = f"stopped the embedded Redis on {where}" if result["was_running"] else "the embedded Redis was not running; nothing to stop"
        return f"{done} (data kept in {result['data']})"
    if result["action"] == "start":
        done = f"the embedded Redis was already running on {where}" if result["was_running"] else f"started the embedded Redis on {where}"
        return f"{done} (data in {result['data']})"
    state = f"running on {where}" if result["running"] else "not running"
    return f"embedded Redis {state} (data in {result['data']})"


register(Command("serve", "the HTTP feature server (FastAPI + uvicorn) on 127.0.0.1:6566 by default", serve_arguments,
                 run_serve, lambda r: f"feature server on {r['host']}:{r['port']} stopped"))
register(Command("redis", "start, stop or show the embedded Redis online store", redis_arguments, run_redis, render_redis))


# Streams


def finite_number(text: str) -> float:
    """A command-line number that is finite: NaN would compare false everywhere (a limit never reached)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def duration_in(unit: str) -> Callable[[str], timedelta]:
    """A command-line duration counted in `unit` (e.g. "minutes"); negative ones go on to the check that names them."""

    def duration(text: str) -> timedelta:
        try:
            return timedelta(**{unit: finite_number(text)})
        except OverflowError:
            raise argparse.ArgumentTypeError(f"too long a duration: {text} {unit}") from None

    return duration


def stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group", help="a stream feature group")
    parser.add_argument("--consumer", help="the name this worker reads under (default: host-pid); any restart resumes from the durable watermarks")
    parser.add_argument("--batch-size", type=int, default=10_000, help="entries per online batch")
    parser.add_argument("--retention-minutes", type=duration_in("minutes"), default=DEFAULT_STREAM_RETENTION,
                        help="how long the stream keeps entries both sinks stored, for replays and backfills (Redis "
                             "memory: an hour at 50,000 events/s is 180 million entries, about 7 GB)")
    parser.add_argument("--min-read-interval-ms", type=duration_in("milliseconds"), default=DEFAULT_MIN_READ_INTERVAL,
                        help="the least time between reads while the consumer keeps up: bigger batches, less CPU per event")
    parser.add_argument("--max-seconds", type=finite_number, help="stop after this long (default: run until SIGTERM or Ctrl-C)")
    parser.add_argument("--max-events", type=int, help="stop after this many events")
    parser.add_argument("--until-idle", action="store_true", help="stop when no new event arrives")
    parser.add_argument("--report-every", type=finite_number, default=10.0, help="seconds between progress lines on stderr")


def run_stream(args: argparse.Namespace) -> dict[str, Any]:
    """Consume a stream group's events until stopped; a progress line per `--report-every` seconds."""
    import signal
    import time

    stopping: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, _frame: stopping.append(signum))
    store = store_of(args)
    processor = store.stream_processor(args.group, consumer=args.consumer, batch_size=args.batch_size,
                                       retention=args.retention_minutes, min_read_interval=args.min_read_interval_ms)
    began = time.monotonic()
    totals = {"events": 0, "dead_letters": 0, "offline_rows": 0, "redelivered": 0}
    report: dict[str, Any] = {"group": args.group}
    last_event = None  # over all runs: the last run of --until-idle found none
    try:
        while not stopping:
            left = None if args.max_seconds is None else args.max_seconds - (time.monotonic() - began)
            if left is not None and left <= 0:
                break
            budget = args.report_every if left is None else min(args.report_every, left)
            remaining = None if args.max_events is None else args.max_events - totals["events"] - totals["dead_letters"]
            stats = processor.run(max_seconds=budget, max_events=remaining, until_idle=args.until_idle, should_stop=lambda: bool(stopping))
            for key in totals:
                totals[key] += getattr(stats, key)
            report = stats.as_dict()
            last_event = max(filter(None, (last_event, stats.last_event_time)), default=None)
            print(f"{args.group}: {report['events']} events ({report['events_per_second']}/s), {report['dead_letters']} dead letters, "
                  f"lag {report['lag_events']} events / {report['lag_seconds']} s, last event {report['last_event_time']}",
                  file=sys.stderr, flush=True)
            if (args.until_idle and stats.events + stats.dead_letters + stats.redelivered == 0) or (
                remaining is not None and stats.events + stats.dead_letters >= remaining
            ):
                break
    finally:
        processor.close()
    seconds = time.monotonic() - began
    return {**report, **totals, "seconds": round(seconds, 3), "events_per_second": round(totals["events"] / seconds, 1),
            "last_event_time": last_event.isoformat() if last_event else None, "stopped_by_signal": bool(stopping)}


register(Command("stream", "consume a stream group's events into its online windows and offline table", stream_arguments, run_stream,
                 lambda r: f"{r['group']}: {r['events']} events, {r['dead_letters']} dead letters, {r['offline_rows']} offline rows in {r['seconds']} s"))


# A new repository


def init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the new repository's folder (new or empty)")
    parser.add_argument("--package", required=True, help="the repository's Python package of definitions, e.g. shop_features")


def run_init(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.directory).resolve()
    files = create_repository(root, args.package)
    return {"directory": str(root), "package": args.package, "files": [str(f.relative_to(root)) for f in files]}


def render_init(result: dict[str, Any]) -> str:
    lines = [f"created the feature repository {result['directory']} (package {result['package']}, {len(result['files'])} files)"]
    lines += [f"  {f}" for f in result["files"] if not f.startswith("data/")]
    lines += ["next:", f"  cd {result['directory']} && python -m pytest && dagster dev -w workspace.yaml"]
    return "\n".join(lines)


register(Command("init", "scaffold a runnable feature repository with its own package name", init_arguments, run_init, render_init))


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", default=".", help="the feature repository (definitions.py and the package named in its pyproject.toml)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    root = argparse.ArgumentParser(prog="feature-platform", description=__doc__.splitlines()[0])
    subcommands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.arguments(subcommands.add_parser(command.name, help=command.help, description=command.help, parents=[common]))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; exit status 0 on success, 1 when a run failed, 2 on bad input."""
    args = parser().parse_args(argv)
    # Dagster flags the beta and preview APIs the platform chose on purpose; a terminal user cannot act on them.
    warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
    command = COMMANDS[args.command]
    try:
        result = command.run(args)
    except (FeaturePlatformError, ValueError) as exc:
        print(f"feature-platform {args.command}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str) if args.json else command.render(result))
    return 1 if isinstance(result, dict) and result.get("success") is False else 0


if __name__ == "__main__":
    sys.exit(main())
