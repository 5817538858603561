"""Backfills and one-off materializations through Dagster, in-process, on the instance under DAGSTER_HOME.

A backfill of `first..last` is cut into range runs by the assets' backfill
policies (at most `max_partitions_per_run` days per run, like a UI backfill).
Each run executes with Dagster's multiprocess executor (`workers` step
processes; assets of one run materialize in parallel) or in this process
(`workers=0`), and is recorded on the instance, so the UI lists it.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from feature_platform.definitions.repository import load_module
from feature_platform.errors import DefinitionError
from feature_platform.orchestration.automation import downstream_keys
from feature_platform.orchestration.sensors import RANGE_END, RANGE_START

BACKFILL_JOB = "feature_platform_backfill"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a backfill: these assets over the days `first..last` (None: unpartitioned)."""

    assets: tuple[dg.AssetKey, ...]
    first: str | None
    last: str | None


@dataclass(frozen=True)
class RunOutcome:
    run: PlannedRun
    run_id: str
    success: bool
    seconds: float
    error: str = ""


def load_definitions(repo: str | Path) -> dg.Definitions:
    """The `defs` of the repository's `definitions.py` (the code location), loaded afresh from that folder."""
    module = load_module(repo, "definitions")
    if not isinstance(getattr(module, "defs", None), dg.Definitions):
        raise DefinitionError(f"{Path(repo).resolve() / 'definitions.py'} must define `defs`, a dagster Definitions")
    return module.defs


def backfill_job(repo: str, asset_paths: Sequence[Sequence[str]]) -> dg.JobDefinition:
    """The job materializing these assets; rebuilt by name in each step process of the multiprocess executor."""
    defs = load_definitions(repo)
    job = dg.define_asset_job(BACKFILL_JOB, selection=[dg.AssetKey(list(p)) for p in asset_paths])
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(BACKFILL_JOB)


def with_downstream(defs: dg.Definitions, keys: Sequence[dg.AssetKey]) -> list[dg.AssetKey]:
    """`keys` plus the assets downstream of them that share their partitions (drift, online sync, ...)."""
    graph = defs.resolve_asset_graph()
    partitions = {graph.get(k).partitions_def for k in keys}
    extra = [k for k in sorted(downstream_keys(defs, keys)) if graph.has(k) and graph.get(k).partitions_def in partitions]
    return [*keys, *extra]


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a day; use YYYY-MM-DD") from None


def _check_inside(partitions: dg.PartitionsDefinition, keys: Sequence[dg.AssetKey], first: str, last: str) -> None:
    """A range wholly before the first partition, or reaching past the last one, is an error naming the partitions.

    A range that starts before the first partition starts at it.
    """
    first_key, last_key = partitions.get_first_partition_key(), partitions.get_last_partition_key()
    names = ", ".join(k.to_user_string() for k in keys)
    span = f"from {first_key} to {last_key}" if last_key else f"from {first_key} (none has closed yet)"
    if first_key is None or last_key is None or last < first_key or last > last_key:
        raise ValueError(f"backfill range {first}..{last} is outside the partitions of {names} ({span}); choose days inside them")


def plan_backfill(
    defs: dg.Definitions,
    keys: Sequence[dg.AssetKey],
    first: str | None,
    last: str | None,
    *,
    partitions_per_run: int | None = None,
) -> list[PlannedRun]:
    """Runs covering `first..last` for `keys`: assets sharing a policy share runs of at most its size.

    `partitions_per_run` overrides the policies (to measure them, or to keep runs small).
    """
    if partitions_per_run is not None and partitions_per_run < 1:
        raise ValueError(f"partitions per run must be at least 1, got {partitions_per_run}")
    graph = defs.resolve_asset_graph()
    by_size: dict[tuple[int, str], list[dg.AssetKey]] = {}  # runs share a policy and a partitions definition
    unpartitioned = []
    for key in keys:
        node = graph.get(key)
        if node.partitions_def is None:
            unpartitioned.append(key)
            continue
        policy = node.backfill_policy
        if partitions_per_run:
            size = partitions_per_run
        elif policy is None:
            size = 1
        else:  # a single-run policy has no maximum: the whole range in one run
            size = policy.max_partitions_per_run or 100_000
        by_size.setdefault((size, node.partitions_def.get_first_partition_key() or ""), []).append(key)
    plans = [PlannedRun(tuple(unpartitioned), None, None)] if unpartitioned else []
    if by_size and (first is None or last is None):
        names = [k.to_user_string() for ks in by_size.values() for k in ks]
        raise ValueError(f"partitioned assets {names} need days: materialize --partition DAY, or backfill --start DAY --end DAY")
    for (size, first_key), group_keys in sorted(by_size.items()):
        day, end = _day(first), _day(last)  # type: ignore[arg-type]
        if end < day:
            raise ValueError(f"backfill range {first}..{last} is empty: the end is before the start")
        _check_inside(graph.get(group_keys[0]).partitions_def, group_keys, first, last)  # type: ignore[arg-type]
        day = max(day, date.fromisoformat(first_key)) if first_key else day
        while day <= end:
            chunk_end = min(end, day + timedelta(days=size - 1))
            plans.append(PlannedRun(tuple(group_keys), day.isoformat(), chunk_end.isoformat()))
            day = chunk_end + timedelta(days=1)
    return plans


def root_cause(error: Any) -> str:
    """What a person needs from a step failure: our failure's description (it names group and partitions), else the innermost error."""
    chain = [error]
    while chain[-1].cause is not None:
        chain.append(chain[-1].cause)
    failure = next((e for e in chain if e.cls_name == "Failure"), None)
    if failure is not None:
        return failure.message.split(": ", 1)[-1].strip()
    return chain[-1].message.strip()


def execute_run(
    repo: str | Path,
    run: PlannedRun,
    instance: dg.DagsterInstance,
    *,
    workers: int = 2,
    tags: dict[str, str] | None = None,
    log_level: str = "WARNING",
) -> RunOutcome:
    """Execute one planned run; `workers=0` runs in this process, else the multiprocess executor."""
    run_tags = dict(tags or {})
    if run.first is not None and run.last is not None:
        run_tags.update({RANGE_START: run.first, RANGE_END: run.last})
    executor = {"in_process": {}} if workers == 0 else {"multiprocess": {"max_concurrent": workers}}
    job = dg.build_reconstructable_job(
        __name__, "backfill_job", reconstructable_args=(str(Path(repo).resolve()), [list(k.path) for k in run.assets]),
        reconstructor_working_directory=str(Path(repo).resolve()),
    )
    started = time.monotonic()
    run_config = {"execution": {"config": executor}, "loggers": {"console": {"config": {"log_level": log_level}}}}
    with dg.execute_job(job, instance=instance, run_config=run_config, tags=run_tags, raise_on_error=False) as result:
        error = ""
        if not result.success:
            failures = [e for e in result.all_events if e.is_step_failure and e.step_failure_data.error]
            error = root_cause(failures[0].step_failure_data.error) if failures else "run failed"
        return RunOutcome(run, result.run_id, result.success, time.monotonic() - started, error)


def run_backfill(
    repo: str | Path,
    runs: Sequence[PlannedRun],
    instance: dg.DagsterInstance,
    *,
    workers: int = 2,
    on_done: Callable[[int, RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Execute the planned runs one after another (each parallel inside); stops at the first failure."""
    outcomes = []
    backfill_id = f"cli-{int(time.time())}"
    for index, run in enumerate(runs):
        outcome = execute_run(repo, run, instance, workers=workers, tags={"feature_platform/backfill": backfill_id})
        outcomes.append(outcome)
        if on_done:
            on_done(index, outcome)
        if not outcome.success:
            break
    return outcomes
