"""The quality gate of a write: validate every partition, commit only those no ERROR rule blocks.

A write may cover a range of daily partitions (a backfill). Each partition is
validated on its own; the partitions that pass are committed, each contiguous
stretch in one atomic Delta commit, and a blocked partition keeps its previous
state. Nothing is committed when the frame breaks the contract (`ContractError`).

The library's own writes (`write_partition`, `ingest`, `push`, also over HTTP)
pass `check_gate`: any blocked partition refuses the whole write with
`QualityGateError`, nothing written.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa

from feature_platform.definitions.concepts import DailyPartitions, FeatureGroup
from feature_platform.definitions.contract import conform
from feature_platform.errors import QualityGateError
from feature_platform.offline.store import OfflineStore, WriteResult
from feature_platform.quality.validation import ValidationReport, split_by_partition, validate_table

RESERVED = ["_partition", "_written_at"]


@dataclass(frozen=True)
class GatedWrite:
    """What a gated write validated, committed and blocked; `tables` holds each partition's conformed rows."""

    reports: dict[str | None, ValidationReport]
    writes: tuple[WriteResult, ...]
    committed: tuple[str | None, ...]
    blocked: tuple[str | None, ...]
    tables: dict[str | None, pa.Table]


def stretches(keys: Sequence[str]) -> list[tuple[str, str]]:
    """Consecutive days of `keys` as (first, last) ranges, e.g. 1,2,4 -> (1,2),(4,4)."""
    days = sorted(date.fromisoformat(k) for k in keys)
    ranges: list[tuple[date, date]] = []
    for day in days:
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return [(a.isoformat(), b.isoformat()) for a, b in ranges]


def partition_reports(group: FeatureGroup, table: pa.Table) -> dict[str | None, ValidationReport]:
    """The validation of each partition a conformed table touches (one report for an unpartitioned group)."""
    if group.partitions is None:
        return {None: validate_table(group, table)}
    days = sorted(d.isoformat() for d in table.column("_partition").unique().to_pylist())
    return {day: validate_table(group, rows, partition=day) for day, rows in split_by_partition(table, days).items()}


def check_gate(group: FeatureGroup, table: pa.Table) -> None:
    """Refuse conformed rows that an ERROR rule blocks in any partition, with `QualityGateError`."""
    if not any(rule.severity == "ERROR" for rule in group.rules) or table.num_rows == 0:
        return
    reports = partition_reports(group, table)
    blocked = tuple(key for key, report in reports.items() if report.blocked)
    if blocked:
        lines = "; ".join(reports[key].summary() for key in blocked)
        raise QualityGateError(
            group.name, blocked,
            f"{lines}. ERROR rules refused these rows and nothing was written; fix the rows "
            "(or, to store them anyway, pass validate=False)",
        )


def write_validated(
    offline: OfflineStore,
    group: FeatureGroup,
    frame: "pd.DataFrame | pa.Table",
    partition_keys: Sequence[str] | None,
    *,
    commit_metadata: dict[str, str] | None = None,
) -> GatedWrite:
    """Validate `frame` per partition and commit the partitions that pass (all of them for `None` = unpartitioned).

    Raises `ContractError` (nothing written) when the frame breaks the group's contract.
    """
    if isinstance(frame, pd.DataFrame):
        frame = frame.reset_index(drop=True)
    now = datetime.now(timezone.utc)
    if partition_keys is None:
        table = conform(group, frame, written_at=now)
        tables: dict[str | None, pa.Table] = {None: table}
    else:
        keys = list(partition_keys)
        window = (DailyPartitions.window(keys[0])[0], DailyPartitions.window(keys[-1])[1])
        table = conform(group, frame, window=window, written_at=now)
        tables = dict(split_by_partition(table, keys))
    reports = {key: validate_table(group, part, partition=key) for key, part in tables.items()}
    blocked = tuple(k for k, r in reports.items() if r.blocked)
    passing = [k for k in tables if k not in blocked]
    writes = []
    if partition_keys is None:
        if not blocked:
            writes.append(offline.write_partition(group, None, table.drop_columns(RESERVED), commit_metadata=commit_metadata))
    else:
        for first, last in stretches([k for k in passing if k is not None]):
            rows = pa.concat_tables([tables[k] for k in tables if k is not None and first <= k <= last]).drop_columns(RESERVED)
            writes.append(offline.write_partitions(group, first, last, rows, commit_metadata=commit_metadata))
    return GatedWrite(reports, tuple(writes), tuple(passing), blocked, tables)
