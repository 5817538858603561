"""Historical window features of a stream group: each entity row's windows recomputed from the stored events.

For an entity row (keys k, time t) a window of length W counts the events of k
with `window_start(t, W) <= event_time <= t` — the events of the tiles an
online read at t sums — so a training row holds what serving returned at t.
No event in the largest window, or a last event older than `t - ttl`, gives
nulls, as online gives NOT_FOUND or OUTSIDE_MAX_AGE.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.definitions.references import GroupSelection
from feature_platform.errors import FeaturePlatformError
from feature_platform.offline.duckdb_sorting import quote as _q
from feature_platform.offline.store import OfflineStore
from feature_platform.windows import hll
from feature_platform.windows.tiles import feature_value, tile_micros, window_start


def join_windows(
    offline: OfflineStore,
    selection: GroupSelection,
    version: int | None,
    keys: Mapping[str, pa.Array],
    upper: np.ndarray,
    lower: np.ndarray,
) -> list[pa.ChunkedArray]:
    """The selected window features of a stream group for every entity row, in entity row order."""
    group = selection.group
    assert isinstance(group, StreamFeatureGroup)
    rows = len(upper)
    features = [group.feature(name) for name in selection.features]
    if version is None or rows == 0:
        return [pa.chunked_array([pa.nulls(rows, f.arrow_type)]) for f in features]
    snapshot = offline.snapshot(group, version)
    if snapshot is None:
        raise FeaturePlatformError(f"feature group '{group.name}': Delta version {version} vanished while it was read")
    tile_us = tile_micros(group)
    start = _timestamp(int(window_start(int(upper.min()), group.largest_window, tile_us)))
    fields = list(group.fields)
    scanner = snapshot.scanner([*group.join_keys, group.event_time, *fields], start, _timestamp(int(upper.max()) + 1))
    events = pa.Table.from_batches(scanner.to_batches(), schema=scanner.projected_schema)
    events = events.set_column(events.column_names.index(group.event_time), "__e", events.column(group.event_time).cast(pa.int64()))
    distinct = sorted({a.column for a in group.aggregations if a.function == "approx_count_distinct" and a.column})
    for column in distinct:
        register, rank = hll.registers_and_ranks(events.column(column))
        events = events.append_column(f"__reg_{column}", pa.array(register)).append_column(f"__rank_{column}", pa.array(rank))
    windows = sorted({a.window for a in group.aggregations})
    entity = {"__row": pa.array(np.arange(rows, dtype=np.int64)), **{k: keys[k] for k in group.join_keys}, "__t": pa.array(upper, pa.int64())}
    for i, window in enumerate(windows):
        entity[f"__lo{i}"] = pa.array(window_start(upper, window, tile_us), pa.int64())
    aggregates = _aggregate(group, pa.table(entity), events, windows, fields, distinct)
    largest = aggregates[group.largest_window]
    ttl_us = None if group.ttl is None else group.ttl // timedelta(microseconds=1)
    columns: list[list[Any]] = [[None] * rows for _ in features]
    picked = [group.feature_names.index(f.name) for f in features]
    for row, last in largest["last"].items():
        if ttl_us is not None and last < int(lower[row]) - ttl_us:
            continue
        for column, index in enumerate(picked):
            aggregation, feature = group.aggregations[index], group.features[index]
            values = aggregates[aggregation.window]
            count = values["count"].get(row, 0)
            name = aggregation.column
            columns[column][row] = feature_value(
                aggregation.function, feature.arrow_type == pa.float64(), count,
                values.get(f"sum_{name}", {}).get(row), values.get(f"min_{name}", {}).get(row),
                values.get(f"max_{name}", {}).get(row), values.get(f"distinct_{name}", {}).get(row, 0),
            )
    return [pa.chunked_array([pa.array(c, type=f.arrow_type)]) for c, f in zip(columns, features)]


def _aggregate(
    group: StreamFeatureGroup, entity: pa.Table, events: pa.Table, windows: list[timedelta], fields: list[str], distinct: list[str]
) -> dict[timedelta, dict[str, dict[int, Any]]]:
    """Per window: count, last event, sum/min/max per field and distinct estimates, by entity row (rows with events only)."""
    equal = " AND ".join(f"e.{_q(k)} = n.{_q(k)}" for k in group.join_keys)
    numeric = [f for f in fields if pa.types.is_integer(events.schema.field(f).type) or pa.types.is_floating(events.schema.field(f).type)]
    measures = ", ".join(f"sum(n.{_q(f)}) AS {_q('sum_' + f)}, min(n.{_q(f)}) AS {_q('min_' + f)}, max(n.{_q(f)}) AS {_q('max_' + f)}" for f in numeric)
    connection = duckdb.connect()
    try:
        connection.register("entity", entity)
        connection.register("events", events)
        result: dict[timedelta, dict[str, dict[int, Any]]] = {}
        for i, window in enumerate(windows):
            join = f"FROM entity e JOIN events n ON {equal} AND n.__e >= e.__lo{i} AND n.__e <= e.__t"
            sql = f"SELECT e.__row, count(*) AS count, max(n.__e) AS last{', ' + measures if measures else ''} {join} GROUP BY e.__row"
            table = connection.sql(sql).to_arrow_table()
            row_ids = table.column("__row").to_pylist()
            values = {name: dict(zip(row_ids, table.column(name).to_pylist())) for name in table.column_names if name != "__row"}
            for column in distinct:
                sql = f"SELECT e.__row, n.__reg_{column} AS r, max(n.__rank_{column}) AS k {join} GROUP BY e.__row, r ORDER BY e.__row"
                cells = connection.sql(sql).fetchnumpy()
                values[f"distinct_{column}"] = _estimates(cells["__row"], cells["r"], cells["k"])
            result[window] = values
        return result
    finally:
        connection.close()


def _estimates(row: np.ndarray, register: np.ndarray, rank: np.ndarray) -> dict[int, int]:
    """The HyperLogLog estimate of each entity row from its `(register, rank)` cells (sorted by row)."""
    estimates: dict[int, int] = {}
    bounds = np.flatnonzero(np.diff(row)) + 1
    for cells in np.split(np.arange(len(row)), bounds):
        if len(cells):
            dense = np.zeros(hll.REGISTERS, dtype=np.int64)
            dense[register[cells]] = rank[cells]
            estimates[int(row[cells[0]])] = hll.estimate(dense)
    return estimates


def _timestamp(micros: int) -> pd.Timestamp:
    return pd.Timestamp(micros, unit="us", tz="UTC")
