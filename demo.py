"""The main job end to end on the embedded defaults: `python -m demo`.

Loads the repository's `definitions.py`, materializes every raw source and
feature group over the demo window through Dagster (one run for the
unpartitioned assets, one range run for the daily ones) on the instance under
`$DAGSTER_HOME` (so `make ui` shows the runs), then prints a summary.

Quality: the range run fails on purpose when an ERROR rule blocks a partition
(the demo data has a broken day); the valid partitions are committed, and the
demo then runs the assets that failure skipped. Drift is checked over the last
days only (`DEMO_DRIFT_FIRST_DAY`), and the alert sensor is evaluated once.
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from feature_platform.definitions.repository import load_module, package_name
from feature_platform.orchestration.alerting import AlertCursor, run_alerts
from feature_platform.orchestration.backfill import load_definitions
from feature_platform.quality.alerts import read_alerts
from feature_platform.store import FeatureStore

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The console shows INFO and up (each group's "wrote N rows"); every event stays in the UI's run log.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _is_quality_block(result: dg.ExecuteInProcessResult) -> bool:
    """Whether every failed step of the run failed because ERROR rules blocked partitions."""
    failures = [e for e in result.all_events if e.is_step_failure]
    return bool(failures) and all(
        e.step_failure_data.user_failure_data is not None
        and "blocked_partitions" in e.step_failure_data.user_failure_data.metadata
        for e in failures
    )


def _skipped(selection: list[dg.AssetsDefinition], result: dg.ExecuteInProcessResult) -> list[dg.AssetsDefinition]:
    """The assets of `selection` a failed run neither materialized nor failed on (skipped downstream)."""
    touched = {e.asset_key for e in result.all_events if e.asset_key is not None}
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    return [a for a in selection if not (set(a.keys) & touched) and not any(k.to_python_identifier() in failed for k in a.keys)]


def quality_summary(defs: dg.Definitions, instance: dg.DagsterInstance, run_ids: list[str], cursor: AlertCursor) -> dict[str, Any]:
    """Blocked partitions and drift alarms of the demo's runs, and the alerts the sensor sent for them."""
    alerts = [a for run_id in run_ids for a in run_alerts(instance, run_id)]
    blocked = [
        {"group": a.group, "rule": a.check, "partitions": a.partition, "message": a.message}
        for a in alerts
        if a.kind == "check_failed" and a.severity == "ERROR"
    ]
    drift = [
        {"group": a.group, "partitions": a.partition, "report": a.details.get("report_path"), "message": a.message}
        for a in alerts
        if a.kind == "drift"
    ]
    home = Path(os.environ.get("FEATURE_PLATFORM_HOME", ".feature_platform"))
    alert_file = os.environ.get("FEATURE_PLATFORM_ALERT_FILE", str(home / "alerts.jsonl"))
    before = len(read_alerts(alert_file))
    sensor = defs.resolve_sensor_def("feature_quality_alerts")
    sensor(dg.build_sensor_context(instance=instance, cursor=cursor.dump(), resources=defs.resources))
    sent = [f"[{a['severity']}] {a['title']}" + (f" ({a['partition']})" if a.get("partition") else "") for a in read_alerts(alert_file)[before:]]
    return {"blocked": blocked, "drift_alarms": drift, "alerts_sent": sent, "alert_file": alert_file}


def run_demo(repo: Path, first_day: str, last_day: str, drift_first_day: str | None = None) -> dict[str, Any]:
    """Materialize the whole repository over `[first_day, last_day]`; return the summary."""
    defs = load_definitions(repo)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    all_assets = list(defs.assets or [])
    resources = defs.resources or {}
    partitioned = [a for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None]
    training = [a for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.key.path[0] == "training"]
    unpartitioned = [
        a for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is None and a not in training
    ]

    drift = [a for a in partitioned if a.key.path[0] == "drift"]
    partitioned = [a for a in partitioned if a not in drift]
    cursor = AlertCursor.starting_now(instance)
    # The workflow: plan, apply, then materialize (runs refuse definitions that were not applied).
    applied = FeatureStore.from_repo(repo).apply()
    print(applied.render(), file=sys.stderr)

    started = time.monotonic()
    runs = []
    steps = [
        (unpartitioned, {}),
        (partitioned, {RANGE_START: first_day, RANGE_END: last_day}),
        (drift, {RANGE_START: drift_first_day or first_day, RANGE_END: last_day}),
        (training, {}),  # after the feature groups they read
    ]
    while steps:
        selection, tags = steps.pop(0)
        if not selection:
            continue
        result = dg.materialize(
            selection, resources=resources, instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
        )
        runs.append({"run_id": result.run_id, "success": result.success})
        if not result.success and _is_quality_block(result):
            steps.insert(0, (_skipped(selection, result), tags))
        elif not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            message = failure.step_failure_data.error.message if failure and failure.step_failure_data.error else ""
            raise SystemExit(f"demo run {result.run_id} failed: {message.strip()}")

    store = FeatureStore.from_repo(repo)
    stream = stream_demo(defs, instance, store)
    groups = []
    for name in store.list_groups():
        group = store.group(name)
        table = store.offline.read(group, columns=["_partition"])
        history = store.history(name)
        groups.append(
            {
                "group": name,
                "partitions": len(set(table.column("_partition").to_pylist())) if group.partitions else "unpartitioned",
                "rows": table.num_rows,
                "delta_version": history[0]["version"] if history else None,
                "table": store.offline.table_uri(group),
            }
        )
    quality = quality_summary(defs, instance, [r["run_id"] for r in runs], cursor)
    return {
        "quality": quality,
        "online": online_lookups(store, last_day),
        "stream": stream,
        "window": [first_day, last_day],
        "seconds": round(time.monotonic() - started, 1),
        "dagster_home": os.environ.get("DAGSTER_HOME", "(ephemeral instance)"),
        "runs": runs,
        "groups": groups,
    }


def stream_demo(defs: dg.Definitions, instance: dg.DagsterInstance, store: FeatureStore, events: int = 3_000) -> dict[str, Any]:
    """The streaming group: generated transactions of the last hour published to its stream, consumed by one tick
    of its Dagster sensor (its observation goes to the instance, so the UI shows it), then read online and as
    a training dataset of the `realtime_fraud` view with the windows as of each transaction."""
    from assets.streaming import generate_transactions

    transactions = generate_transactions(events, seed=16)
    store.publish_events("card_activity", [{k: v for k, v in t.items() if k != "is_fraud"} for t in transactions])
    sensor = defs.resolve_sensor_def("card_activity_stream")
    with dg.build_sensor_context(instance=instance, resources=defs.resources) as context:
        result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    observed = {k: v.value for k, v in result.asset_events[0].metadata.items()}
    busiest = pd.DataFrame(transactions)["user_id"].value_counts().index[:3].tolist()
    online = store.get_online_features([{"user_id": int(u)} for u in busiest], "realtime_fraud")
    labels = pd.DataFrame(transactions)[["user_id", "event_time", "amount", "is_fraud"]]
    labels["event_time"] = pd.to_datetime(labels["event_time"], utc=True)
    dataset = store.create_training_dataset("realtime_fraud", labels, name="realtime_fraud_training", label="is_fraud")
    frame = store.load_training_dataset("realtime_fraud_training", dataset.version)
    return {
        "published": events,
        "observation": observed,
        "online": online.to_dict(include_statuses=True),
        "training_dataset": {"name": dataset.name, "version": dataset.version, "rows": len(frame),
                             "with_earlier_activity": int(frame["txn_count_10m"].gt(1).sum())},
        "dead_letters": len(store.stream("card_activity").dead_letters()),
    }


def online_lookups(store: FeatureStore, last_day: str, view: str = "fraud_detection") -> dict[str, Any]:
    """Vectors of a few card holders from Redis (synced by the online assets), before and after a push.

    The demo data is from the past, so groups with a ttl read as OUTSIDE_MAX_AGE;
    pushing their last values stamped now, as a streaming job would, makes them fresh.
    """
    latest = store.read_group("user_last_transaction", start=last_day).sort_values("user_id").head(3)
    rows = [
        {"user_id": int(r.user_id), "merchant_id": int(r.last_merchant_id), "country": "US", "amount": 120.0}
        for r in latest.itertuples()
    ]
    before = store.get_online_features(rows, view)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    for selection in store.catalog.resolve(view).selections:
        group = selection.group
        if group.ttl is None:
            continue
        keys = pd.DataFrame(rows)[group.join_keys].drop_duplicates()
        stored = store.read_group(group.name, start=last_day).merge(keys, on=group.join_keys)
        store.push(group.name, stored.assign(**{group.event_time: now}), to="online")
    after = store.get_online_features(rows, view)
    return {
        "view": view,
        "before_push": before.to_dict(include_statuses=True),
        "after_push": after.to_dict(include_statuses=True),
    }


def print_vectors(title: str, vectors: dict[str, list[Any]]) -> None:
    """A table with a row per column of the vectors and a column per entity; nulls show their status."""
    names = [n for n in vectors if not n.endswith("__status")]
    print(f"\n{title}")
    for name in names:
        cells = []
        for i, value in enumerate(vectors[name]):
            status = vectors.get(f"{name}__status", ["PRESENT"] * (i + 1))[i]
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            cells.append(f"{text if status == 'PRESENT' else status:>16}")
        print(f"  {name:<28}" + "".join(cells))


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nDemo window {summary['window'][0]} .. {summary['window'][1]}, done in {summary['seconds']} s")
    print(f"Dagster runs: {', '.join(r['run_id'][:8] for r in summary['runs'])} (instance: {summary['dagster_home']})\n")
    print(f"{'feature group':<28} {'partitions':>13} {'rows':>9} {'delta v':>8}  table")
    for g in summary["groups"]:
        print(f"{g['group']:<28} {g['partitions']!s:>13} {g['rows']:>9} {g['delta_version']!s:>8}  {g['table']}")
    quality = summary["quality"]
    print("\nBlocked by ERROR rules (not committed; the rest of the range was):")
    for b in quality["blocked"] or [{"group": "none", "rule": "-", "partitions": "-"}]:
        print(f"  {b['group']:<28} rule {b['rule']:<24} partition(s) {b['partitions']}")
    print("Drift alarms:")
    for d in quality["drift_alarms"] or [{"group": "none", "partitions": "-", "report": "-"}]:
        print(f"  {d['group']:<28} partition(s) {d['partitions']}  report {d['report']}")
    print(f"Alerts sent ({len(quality['alerts_sent'])}, to {quality['alert_file']}):")
    for line in quality["alerts_sent"]:
        print(f"  {line}")
    online = summary["online"]
    print(f"\nOnline vectors of view '{online['view']}' from Redis (synced by the ['online', group] assets):")
    print("Values older than their group's ttl read as null with status OUTSIDE_MAX_AGE (the demo data is from 2024).")
    print_vectors("read after the sync:", online["before_push"])
    print_vectors("after pushing their latest values stamped now (as a stream would):", online["after_push"])
    stream = summary["stream"]
    seen = stream["observation"]
    print(f"\nStreaming group card_activity: {stream['published']} generated transactions consumed by a tick of the "
          f"card_activity_stream sensor ({seen['events']} events, {seen['events_per_second']}/s, lag {seen['consumer_lag_events']}, "
          f"{stream['dead_letters']} dead letters)")
    print_vectors("its windows online, for the busiest card holders:", stream["online"])
    dataset = stream["training_dataset"]
    print(f"training dataset {dataset['name']} v{dataset['version']}: {dataset['rows']} labelled transactions with the windows "
          f"as of each one ({dataset['with_earlier_activity']} with another transaction in the 10 minutes before)")
    print("Feed it live: `python -m demo_stream` and `feature-platform stream card_activity` (or turn the sensor on).")
    print("\nOpen the UI with `make ui` (http://127.0.0.1:3000): the runs above are in its run list.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".", help="repository folder holding definitions.py and assets/")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill policies are beta; known and chosen
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)  # partitioned asset checks are preview; chosen
    repo = Path(args.repo).resolve()
    partitions = load_module(repo, f"{package_name(repo)}.partitions")
    drift_first_day = getattr(partitions, "DEMO_DRIFT_FIRST_DAY", None)
    summary = run_demo(repo, partitions.DEMO_FIRST_DAY, partitions.DEMO_LAST_DAY, drift_first_day)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)


if __name__ == "__main__":
    main()
