"""The main job end to end on the embedded defaults: `python -m feature_platform.demo`.

Loads the repository's `definitions.py`, materializes every raw source and
feature group over the demo window through Dagster (one run for the
unpartitioned assets, one range run for the daily ones) on the instance under
`$DAGSTER_HOME` (so `make ui` shows the runs), then prints a summary.
"""

import argparse
import importlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from feature_platform.store import FeatureStore

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The console shows INFO and up (each group's "wrote N rows"); every event stays in the UI's run log.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_demo(repo: Path, first_day: str, last_day: str) -> dict[str, Any]:
    """Materialize the whole repository over `[first_day, last_day]`; return the summary."""
    sys.path.insert(0, str(repo))
    definitions = importlib.import_module("definitions")
    defs: dg.Definitions = definitions.defs
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    all_assets = list(defs.assets or [])
    resources = defs.resources or {}
    partitioned = [a for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None]
    training = [a for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.key.path[0] == "training"]
    unpartitioned = [
        a for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is None and a not in training
    ]

    started = time.monotonic()
    runs = []
    for selection, tags in (
        (unpartitioned, {}),
        (partitioned, {RANGE_START: first_day, RANGE_END: last_day}),
        (training, {}),  # after the feature groups they read
    ):
        if not selection:
            continue
        result = dg.materialize(
            selection, resources=resources, instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
        )
        runs.append({"run_id": result.run_id, "success": result.success})
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            message = failure.step_failure_data.error.message if failure and failure.step_failure_data.error else ""
            raise SystemExit(f"demo run {result.run_id} failed: {message.strip()}")

    store = FeatureStore.from_repo(repo)
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
    return {
        "window": [first_day, last_day],
        "seconds": round(time.monotonic() - started, 1),
        "dagster_home": os.environ.get("DAGSTER_HOME", "(ephemeral instance)"),
        "runs": runs,
        "groups": groups,
    }


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nDemo window {summary['window'][0]} .. {summary['window'][1]}, done in {summary['seconds']} s")
    print(f"Dagster runs: {', '.join(r['run_id'][:8] for r in summary['runs'])} (instance: {summary['dagster_home']})\n")
    print(f"{'feature group':<28} {'partitions':>13} {'rows':>9} {'delta v':>8}  table")
    for g in summary["groups"]:
        print(f"{g['group']:<28} {g['partitions']!s:>13} {g['rows']:>9} {g['delta_version']!s:>8}  {g['table']}")
    print("\nOpen the UI with `make ui` (http://127.0.0.1:3000): the runs above are in its run list.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".", help="repository folder holding definitions.py and assets/")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill policies are beta; known and chosen
    repo = Path(args.repo).resolve()
    sys.path.insert(0, str(repo))
    partitions = importlib.import_module("assets.partitions")
    summary = run_demo(repo, partitions.DEMO_FIRST_DAY, partitions.DEMO_LAST_DAY)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)


if __name__ == "__main__":
    main()
