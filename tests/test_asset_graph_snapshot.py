"""A reviewed snapshot of the whole asset graph, so that no asset changes by accident.

For every asset key: its deps (with partition mappings), partitions, group,
owners, tags, kinds, automation condition and asset checks. After an intended
change, regenerate and review the diff of `tests/snapshots/asset_graph.json`:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_asset_graph_snapshot.py
"""

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

import definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
REGENERATE = "UPDATE_SNAPSHOTS"


def describe_partitions(partitions: dg.PartitionsDefinition | None) -> str | None:
    return None if partitions is None else str(partitions)


def describe_condition(condition: dg.AutomationCondition | None) -> str | None:
    """The condition's label (`eager`, `on_cron(...)`) or, unlabelled, its full structure."""
    if condition is None:
        return None
    return condition.get_label() or repr(condition)


def describe_dep(dep: dg.AssetDep) -> dict[str, Any]:
    mapping = dep.partition_mapping
    return {"key": dep.asset_key.to_user_string(), "partition_mapping": None if mapping is None else repr(mapping)}


def asset_graph(defs: dg.Definitions) -> dict[str, dict[str, Any]]:
    """Everything the snapshot pins, per asset key, in a JSON-ready, sorted form."""
    checks: dict[str, list[str]] = {}
    for check in defs.resolve_asset_graph().asset_check_keys:
        checks.setdefault(check.asset_key.to_user_string(), []).append(check.name)
    graph = {}
    for spec in defs.resolve_all_asset_specs():
        key = spec.key.to_user_string()
        graph[key] = {
            "deps": sorted((describe_dep(d) for d in spec.deps), key=lambda d: d["key"]),
            "partitions": describe_partitions(spec.partitions_def),
            "group": spec.group_name,
            "owners": sorted(spec.owners),
            "tags": {k: v for k, v in sorted(spec.tags.items()) if not k.startswith("dagster/kind/")},
            "kinds": sorted(spec.kinds),
            "automation_condition": describe_condition(spec.automation_condition),
            "checks": sorted(checks.get(key, [])),
        }
    return dict(sorted(graph.items()))


def test_asset_graph_matches_the_reviewed_snapshot() -> None:
    actual = json.dumps(asset_graph(definitions.defs), indent=2) + "\n"
    if os.environ.get(REGENERATE):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "snapshot", "definitions"))
    assert not diff, (
        f"the asset graph differs from {SNAPSHOT.name}; if intended, regenerate with "
        f"`{REGENERATE}=1 python -m pytest {Path(__file__).name}` and review the diff:\n{diff}"
    )
