"""Point-in-time retrieval: the features each entity row could have known at its time.

For an entity row (keys k, time t) and a group g, the candidates are g's rows
with keys k and `t - ttl <= event_time <= t` (no lower bound without a ttl);
the row with the greatest `(event_time, created_time)` wins, an exact tie goes
to the later write, and no candidate gives nulls. Per group the engine finds
the winning row of each entity row, then gathers just the requested feature
columns of the winners: with the version's join index (`offline/join_index.py`)
by a binary search per entity row, else by reading the key and time columns of
the partitions of `[min(t) - ttl, max(t)]` into a DuckDB ASOF join.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds

from feature_platform.definitions.aggregations import is_stream_group
from feature_platform.definitions.concepts import FeatureView
from feature_platform.definitions.contract import UTC_MICROS
from feature_platform.definitions.on_demand import Column, OnDemandPlan
from feature_platform.definitions.references import GroupSelection, Catalog, ResolvedFeatures
from feature_platform.errors import ArgumentError, EntityFrameError, FeaturePlatformError
from feature_platform.offline import duckdb_sorting
from feature_platform.offline.store import OfflineStore
from feature_platform.retrieval.entity_frames import entity_key_array, entity_times, to_pandas_column
from feature_platform.retrieval.windows import join_windows

AsOf = int | datetime | str | pd.Timestamp | Mapping[str, int | None] | None
Features = Sequence[str] | FeatureView | str


@dataclass(frozen=True)
class HistoricalRetrieval:
    """A point-in-time join and the Delta version of every group it read (None: no table)."""

    frame: pd.DataFrame
    versions: dict[str, int | None]
    resolved: ResolvedFeatures


def get_historical_features(
    catalog: Catalog,
    offline: OfflineStore,
    entity_df: pd.DataFrame,
    features: Features,
    *,
    full_feature_names: bool = False,
    as_of: AsOf = None,
    timestamp_column: str = "event_time",
    group_versions: Mapping[str, int] | None = None,
) -> HistoricalRetrieval:
    """Join the requested features onto `entity_df` as of each row's time (see the module docstring).

    `group_versions` says which version of each group to read (default: the view's applied ones, else the latest).
    Every check (references, columns, key dtypes, `as_of`) runs before any table is read.
    """
    resolved = catalog.resolve(features, full_feature_names, versions=group_versions)
    _check_columns(entity_df, resolved, timestamp_column)
    upper, lower = entity_times(entity_df[timestamp_column], timestamp_column)
    keys: dict[str, pa.Array] = {}
    for selection in resolved.selections:
        for key, dtype in selection.group.key_types.items():
            array = entity_key_array(entity_df[key], key, dtype, selection.group.name)
            if key in keys and keys[key].type != array.type:
                raise EntityFrameError(f"join key '{key}' has different dtypes in the requested groups")
            keys[key] = array
    versions = resolve_versions(offline, resolved, as_of)

    columns_out: dict[str, pd.Series | Any] = {}
    bare: dict[str, Column] = {}
    for selection in resolved.selections:
        join = join_windows if is_stream_group(selection.group) else _join_group
        arrays = join(offline, selection, versions[selection.group.name], keys, upper, lower)
        for feature, output, array in zip(selection.features, selection.output_names, arrays):
            columns_out[output] = to_pandas_column(array)
            if resolved.on_demand:
                bare[feature] = Column(array.type, array=array.combine_chunks())
        pa.default_memory_pool().release_unused()  # the next group's scan reuses memory we hand back

    frame = entity_df.copy()
    for name, values in columns_out.items():
        frame[name] = values
    if resolved.on_demand:
        requests = {c: entity_df[c].tolist() for c in resolved.request_inputs}
        for name, column in OnDemandPlan(resolved.on_demand).run(bare, requests, len(entity_df)).items():
            frame[name] = to_pandas_column(pa.chunked_array([column.arrow()]))
    return HistoricalRetrieval(frame, versions, resolved)


def _check_columns(entity_df: pd.DataFrame, resolved: ResolvedFeatures, timestamp_column: str) -> None:
    """The entity frame has the time, key and request columns, and no column an output would overwrite."""
    if not isinstance(entity_df, pd.DataFrame):
        raise EntityFrameError(f"the entity frame must be a pandas DataFrame, got {type(entity_df).__name__}")
    check_entity_columns([str(c) for c in entity_df.columns], resolved, timestamp_column)


def check_entity_columns(columns: Sequence[str], resolved: ResolvedFeatures, timestamp_column: str) -> None:
    """The entity frame's column names (of any engine's frame) have the time, keys and request inputs, and no output."""
    if len(set(columns)) != len(columns):
        raise EntityFrameError(f"the entity frame has repeated column names: {sorted({c for c in columns if columns.count(c) > 1})}")
    if timestamp_column not in columns:
        raise EntityFrameError(f"the entity frame has no time column '{timestamp_column}'; pass timestamp_column= to name it")
    for selection in resolved.selections:
        missing = [k for k in selection.group.join_keys if k not in columns]
        if missing:
            raise EntityFrameError(f"the entity frame lacks join key column(s) {missing} of feature group '{selection.group.name}'")
    missing_requests = [c for c in resolved.request_inputs if c not in columns]
    if missing_requests:
        raise EntityFrameError(f"the entity frame lacks request-time column(s) {missing_requests} of the on-demand transformations")
    clashes = [n for n in resolved.output_names if n in columns]
    if clashes:
        raise EntityFrameError(f"output column(s) {clashes} already exist in the entity frame; rename them or use full_feature_names=True")


def resolve_versions(offline: OfflineStore, resolved: ResolvedFeatures, as_of: AsOf) -> dict[str, int | None]:
    """The Delta version to read per group: now, as of a time or version, or as listed per group."""
    groups = [s.group for s in resolved.selections]
    if isinstance(as_of, Mapping):
        names = {g.name for g in groups}
        unknown = sorted(set(as_of) - names)
        if unknown:
            raise ArgumentError(f"as_of names group(s) {unknown} that the request does not read; it reads {sorted(names)}")
        missing = sorted(names - set(as_of))
        if missing:
            raise ArgumentError(f"as_of gives no Delta version for group(s) {missing}")
        for name, version in as_of.items():
            if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
                raise ArgumentError(f"as_of version of group '{name}' must be a non-negative int or None, got {version!r}")
        return {g.name: (None if as_of[g.name] is None else offline.resolve_version(g, as_of[g.name])) for g in groups}
    if isinstance(as_of, int) and not isinstance(as_of, bool):
        raise ArgumentError("as_of must be a time or a dict of Delta versions per group; one version number is ambiguous across groups")
    return {g.name: offline.resolve_version(g, as_of) for g in groups}


def _join_group(
    offline: OfflineStore,
    selection: GroupSelection,
    version: int | None,
    keys: Mapping[str, pa.Array],
    upper: np.ndarray,
    lower: np.ndarray,
) -> list[pa.ChunkedArray]:
    """The selected features of `selection.group` for every entity row, in entity row order."""
    group = selection.group
    schema = group.schema
    types = [schema.field(f).type for f in selection.features]
    rows = len(upper)
    if version is None or rows == 0:
        return [pa.chunked_array([pa.nulls(rows, t)]) for t in types]
    snapshot = offline.snapshot(group, version)
    if snapshot is None:
        raise FeaturePlatformError(f"feature group '{group.name}': Delta version {version} vanished while it was read")
    ttl_us = None if group.ttl is None else group.ttl // timedelta(microseconds=1)
    index = snapshot.join_index()
    if index is not None:
        # The version's rows are sorted already: a lookup per entity row, then only the winners' files are read.
        table_keys = pa.table({k: keys[k] for k in group.join_keys})
        entity_rows, positions = index.lookup(table_keys, upper, None if ttl_us is None else lower - ttl_us)
        files, positions, stored_rows = index.files_holding(positions)
        features = snapshot.subset(files).scanner(columns=list(selection.features), batch_readahead=4, fragment_readahead=2)
        gathered, entity_rows = _gather(features, {"__rid": positions, "__row": entity_rows}, stored_rows, group.name)
        return _in_entity_order(gathered, entity_rows, rows, selection.features, types)
    start = None if ttl_us is None else _timestamp(int(lower.min()) - ttl_us)
    end = _timestamp(int(upper.max()) + 1)
    tie_columns = [] if group.created_time is None and snapshot.single_write else snapshot.tie_columns
    # Both passes scan the same dataset and window in the same order, so a row's position identifies it in the second.
    scanner = snapshot.scanner([*group.join_keys, group.event_time, *tie_columns], start, end)
    narrow = pa.Table.from_batches(scanner.to_batches(), schema=scanner.projected_schema)
    if narrow.num_rows == 0:
        return [pa.chunked_array([pa.nulls(rows, t)]) for t in types]
    stored_rows = narrow.num_rows
    rid_type = np.int32 if stored_rows < 2**31 else np.int64  # a narrower column for DuckDB to sort
    narrow = narrow.append_column("__rid", pa.array(np.arange(stored_rows, dtype=rid_type)))
    entity = pa.table(
        {
            "__row": pa.array(np.arange(rows, dtype=np.int64)),
            **{k: keys[k] for k in group.join_keys},
            "__t": pa.array(upper, pa.int64()).cast(UTC_MICROS),
            **({"__lo": pa.array(lower - ttl_us, pa.int64()).cast(UTC_MICROS)} if ttl_us is not None else {}),
        }
    )
    created = group.created_time if group.created_time in tie_columns else None
    winners = _asof(group.join_keys, group.event_time, created, bool(tie_columns), ttl_us is not None, entity, narrow)
    del narrow, entity
    # Little read-ahead: the features of every stored row would otherwise be decoded into memory at once.
    features = snapshot.scanner(list(selection.features), start, end, batch_readahead=4, fragment_readahead=2)
    gathered, entity_rows = _gather(features, winners, stored_rows, group.name)
    return _in_entity_order(gathered, entity_rows, rows, selection.features, types)


def _in_entity_order(gathered: pa.Table, entity_rows: np.ndarray, rows: int, features: Sequence[str],
                     types: list[pa.DataType]) -> list[pa.ChunkedArray]:
    """The columns of `gathered` (row i belongs to entity row `entity_rows[i]`) for all `rows`, null where none won."""
    missing = np.ones(rows, dtype=bool)
    missing[entity_rows] = False
    position = np.full(rows, -1, dtype=np.int64)
    position[entity_rows] = np.arange(len(entity_rows), dtype=np.int64)
    taken = pa.array(position, mask=missing)
    columns = []
    for feature, arrow_type in zip(features, types):
        column = gathered.column(feature)
        if (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)) and column.null_count == 0:
            # A numpy scatter: several times faster than a take with null indices.
            values = np.zeros(rows, dtype=column.type.to_pandas_dtype())
            values[entity_rows] = column.to_numpy()
            column = pa.chunked_array([pa.array(values, type=column.type, mask=missing)])
        else:
            column = column.take(taken)
        columns.append(column.cast(arrow_type))
    return columns


def _gather(scanner: pds.Scanner, winners: dict[str, np.ndarray], stored_rows: int, group: str) -> tuple[pa.Table, np.ndarray]:
    """The winning rows' features, streamed batch by batch (memory stays at one batch plus the result).

    Returns them in stored order with the entity row each belongs to.
    """
    order = np.argsort(winners["__rid"], kind="stable")
    rids, entity_rows = winners["__rid"][order], winners["__row"][order]
    pieces, offset, cursor = [], 0, 0
    for batch in scanner.to_batches():
        stop = int(np.searchsorted(rids, offset + batch.num_rows, side="left"))
        if stop > cursor:
            pieces.append(pa.Table.from_batches([batch.take(pa.array(rids[cursor:stop] - offset))]))
            cursor = stop
        offset += batch.num_rows
    if offset != stored_rows:
        raise FeaturePlatformError(f"feature group '{group}': the table changed while it was read ({stored_rows} then {offset} rows)")
    schema = scanner.projected_schema
    return (pa.concat_tables(pieces) if pieces else schema.empty_table()), entity_rows


def _asof(
    join_keys: Sequence[str],
    event_time: str,
    created_time: str | None,
    ties: bool,
    has_ttl: bool,
    entity: pa.Table,
    narrow: pa.Table,
) -> dict[str, np.ndarray]:
    """Entity row → winning table row (`__rid`), for the entity rows that have a candidate."""
    q = duckdb_sorting.quote
    equal = " AND ".join(f"e.{q(k)} = n.{q(k)}" for k in join_keys)
    # Only a stored row inside [min(t - ttl), max(t)] of the entity rows with its keys can win:
    # joining on those per-key bounds first halves what ASOF sorts (more than a plain semi-join).
    keys = ", ".join(q(k) for k in join_keys)
    on_bounds = " AND ".join(f"b.{q(k)} = n.{q(k)}" for k in join_keys)
    low = ", min(__lo) AS __lo" if has_ttl else ""
    above = f" AND n.{q(event_time)} >= b.__lo" if has_ttl else ""
    bounds = f"(SELECT {keys}, max(__t) AS __hi{low} FROM entity GROUP BY {keys})"
    candidates = f"(SELECT n.* FROM narrow n JOIN {bounds} b ON {on_bounds} WHERE n.{q(event_time)} <= b.__hi{above})"
    if ties:
        # Greatest (event_time, created_time, written_at): a struct compares field by field.
        created = f"coalesce(n.{q(created_time)}, '-infinity'::TIMESTAMPTZ)" if created_time else None
        fields = [f"'t': n.{q(event_time)}", *([f"'c': {created}"] if created else []), "'w': n._written_at"]
        probe = ["'t': e.__t", *(["'c': 'infinity'::TIMESTAMPTZ"] if created else []), "'w': 'infinity'::TIMESTAMPTZ"]
        right = f"(SELECT {', '.join(q(k) for k in join_keys)}, __rid, {q(event_time)}, {{{', '.join(fields)}}} AS __o FROM {candidates} n)"
        inequality = f"{{{', '.join(probe)}}} >= n.__o"
    else:
        right = candidates
        inequality = f"e.__t >= n.{q(event_time)}"
    ttl = f" WHERE n.{q(event_time)} >= e.__lo" if has_ttl else ""
    connection = duckdb_sorting.connect()  # one per join, closed after it
    try:
        connection.register("entity", entity)
        connection.register("narrow", narrow)
        sql = f"SELECT e.__row, n.__rid FROM entity e ASOF JOIN {right} n ON {equal} AND {inequality}{ttl}"
        result = connection.execute(sql).fetchnumpy()
    finally:
        connection.close()
    return {"__row": np.asarray(result["__row"], dtype=np.int64), "__rid": np.asarray(result["__rid"], dtype=np.int64)}


def _timestamp(micros: int) -> pd.Timestamp:
    return pd.Timestamp(micros, unit="us", tz="UTC")
