"""What the CLI asks of Dagster: an asset's neighbours in the graph, and materializations on the instance."""

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import dagster as dg

from feature_platform.errors import ArgumentError
from feature_platform.orchestration.assets import group_key, source_key
from feature_platform.orchestration.backfill import RunOutcome, load_definitions, plan_backfill, run_backfill, with_downstream


def asset_neighbours(repo: str, path: Sequence[str]) -> dict[str, Any] | None:
    """The asset at `path` and its upstream and downstream keys in the repository's graph (None: no such asset)."""
    graph = load_definitions(repo).resolve_asset_graph()
    key = dg.AssetKey(list(path))
    if not graph.has(key):
        return None
    node = graph.get(key)
    return {
        "key": "/".join(path),
        "upstream": sorted(k.to_user_string() for k in node.parent_keys),
        "downstream": sorted(k.to_user_string() for k in node.child_keys),
    }


def materialize_range(
    repo: str,
    names: Sequence[str],
    sources: AbstractSet[str],
    first: str | None,
    last: str | None,
    *,
    with_downstream_assets: bool,
    partitions_per_run: int | None,
    workers: int,
    on_planned: Callable[[int, list[str]], None],
    on_done: Callable[[int, RunOutcome], None],
) -> tuple[int, list[RunOutcome]]:
    """Plan and run materializations of these groups (or raw sources, the names in `sources`) over `first..last`.

    Returns the number of planned runs and the outcome of each run that ran.
    """
    keys = [source_key(n) if n in sources else group_key(n) for n in names]
    defs = load_definitions(repo)
    executable = defs.resolve_asset_graph().executable_asset_keys
    in_place = [n for n, k in zip(names, keys) if k not in executable]
    if in_place and not with_downstream_assets:
        raise ArgumentError(
            f"raw source(s) {in_place} are read in place, so Dagster does not materialize them; "
            "backfill the feature groups that read them, or add --with-downstream"
        )
    if with_downstream_assets:
        keys = [k for k in with_downstream(defs, keys) if k in executable]
    runs = plan_backfill(defs, keys, first, last, partitions_per_run=partitions_per_run)
    on_planned(len(runs), [k.to_user_string() for k in keys])
    with dg.DagsterInstance.get() as instance:
        outcomes = run_backfill(repo, runs, instance, workers=workers, on_done=on_done)
    return len(runs), outcomes
