"""Tiles: per-entity partial aggregates of fixed-length time slices, and windows as sums of tiles.

A window of length W read at time t covers the tiles `floor(t / tile) - W/tile + 1 ..
floor(t / tile)`, so events with `window_start(t) <= event_time`, up to t. A tile
holds the count, the last event time and one value per (op, field) of the
layout; how it is stored, and how partial tiles of a batch merge into stored
ones, is `tile_bytes`.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.windows import hll
from feature_platform.windows.tile_bytes import MEASURE, TileBytes, sum_overflow, tile_bytes

MICROSECOND = timedelta(microseconds=1)


def tile_micros(group: StreamFeatureGroup) -> int:
    return group.tile // MICROSECOND


def tiles_in(group: StreamFeatureGroup, window: timedelta) -> int:
    return window // group.tile


def window_start(t_us: int | np.ndarray, window: timedelta, tile_us: int) -> Any:
    """The earliest event time (µs) a window of length `window` read at `t_us` counts."""
    return (np.floor_divide(t_us, tile_us) - window // timedelta(microseconds=tile_us) + 1) * tile_us


@dataclass(frozen=True)
class TileBatch:
    """The partial tiles of a batch: per tile its entity (an index into `entities`), its tile index, its
    header and, per HyperLogLog measure, its codes (`tile_bytes`).

    Tiles come entity after entity (`entity_index` does not decrease), each entity's in tile order.
    """

    entities: list[tuple[Any, ...]]
    entity_index: list[int]
    tiles: list[int]
    header: np.ndarray
    codes: list[list[bytes]]

    def __len__(self) -> int:
        return len(self.tiles)


def partial_tiles(group: StreamFeatureGroup, table: pa.Table) -> TileBatch:
    """The partial tile of each entity and tile the events of `table` touch (one Arrow group-by)."""
    keys = group.join_keys
    form = tile_bytes(group)
    spec = form.layout
    if table.num_rows == 0:
        return TileBatch([], [], [], np.zeros(0, form.header), [[] for _ in form.sketches])
    times = table.column(group.event_time).cast(pa.int64()).to_numpy()
    work = {k: table.column(k) for k in keys}
    work["__tile"] = pa.array(np.floor_divide(times, tile_micros(group)))
    work["__t"] = pa.array(times)
    aggregations: list[tuple[str, str]] = [("__t", "count"), ("__t", "max")]
    for position, (op, column) in enumerate(spec.measures):
        if op == "hll":
            work[f"__h{position}"] = pa.array(hll.codes_of(*hll.registers_and_ranks(table.column(column))))
            aggregations.append((f"__h{position}", "list"))
        else:
            work[column] = table.column(column)
            aggregations.append((column, op))
            if op == "sum" and form.integer[position]:  # Arrow's integer sums wrap around: checked with a float sum
                work[f"__f{position}"] = table.column(column).cast(pa.float64(), safe=False)
                aggregations.append((f"__f{position}", "sum"))
    grouped = pa.table(work).group_by([*keys, "__tile"], use_threads=False).aggregate(aggregations)
    grouped = grouped.sort_by([(k, "ascending") for k in [*keys, "__tile"]])
    # A new entity starts where any key differs from the row before.
    first = np.zeros(grouped.num_rows, dtype=bool)
    first[0] = True
    for k in keys:
        column = grouped.column(k)
        first[1:] |= pc.not_equal(column.slice(1), column.slice(0, grouped.num_rows - 1)).to_numpy(zero_copy_only=False)
    starts = pa.array(np.flatnonzero(first))
    entities = list(zip(*[grouped.column(k).take(starts).to_pylist() for k in keys]))
    header = np.zeros(grouped.num_rows, form.header)
    header["count"], header["last"] = grouped.column("__t_count").to_numpy(), grouped.column("__t_max").to_numpy()
    codes, counts = [], []
    for position, (op, column) in enumerate(spec.measures):
        if op == "hll":
            lists = grouped.column(f"__h{position}_list").combine_chunks()
            codes.append(_codes(lists))
            counts.append(pc.list_value_length(lists).to_numpy())
        else:
            header[f"m{position}"] = grouped.column(f"{column}_{op}").to_numpy()
            if op == "sum" and form.integer[position] and pc.max(pc.abs(grouped.column(f"__f{position}_sum"))).as_py() >= 2.0**63:
                raise sum_overflow(group, column)
    form.count_codes(header, codes, counts)
    entity_index = (np.cumsum(first) - 1).tolist()
    return TileBatch(entities, entity_index, grouped.column("__tile").to_pylist(), header, codes)


def _codes(lists: pa.ListArray) -> list[bytes]:
    """Per tile, the HyperLogLog codes of its events as bytes (a register may repeat: readers take the maximum)."""
    buffer = lists.values.to_numpy().astype("<u2").tobytes()
    bounds = (lists.offsets.to_numpy() * 2).tolist()
    return [buffer[a:b] for a, b in zip(bounds, bounds[1:])]


def feature_value(function: str, is_float: bool, count: int, total: Any, low: Any, high: Any, distinct: int) -> Any:
    """A window feature from its window's count, sum, minimum, maximum and distinct estimate."""
    if function == "count":
        return count
    if function == "approx_count_distinct":
        return distinct if count else 0
    if function == "sum":
        total = total if count else 0
        return float(total) if is_float else int(total)
    if not count:
        return None
    if function == "mean":
        return float(total) / count
    value = low if function == "min" else high
    return float(value) if is_float else int(value)


def window_values(
    group: StreamFeatureGroup, form: TileBytes, tiles: dict[int, bytes], now_us: int
) -> tuple[list[Any] | None, int | None]:
    """The group's features at `now_us` from an entity's stored tiles (`form`: `tile_bytes(group)`), and its last
    event time (None: no event in any window)."""
    tile_us = tile_micros(group)
    current = now_us // tile_us
    oldest = current - tiles_in(group, group.largest_window) + 1
    live = sorted((t, tile) for t, tile in tiles.items() if oldest <= t <= current)
    if not live:
        return None, None
    index = np.array([t for t, _ in live])
    header, codes = form.split([tile for _, tile in live])
    values = []
    for aggregation, feature in zip(group.aggregations, group.features):
        inside = index >= current - tiles_in(group, aggregation.window) + 1
        count = int(header["count"][inside].sum())
        total = low = high = None
        distinct = 0
        if aggregation.column is not None:
            position = form.layout.measures.index((MEASURE[aggregation.function], aggregation.column))
            if aggregation.function == "approx_count_distinct":
                column = codes[form.sketches.index(position)]
                distinct = hll.estimate(hll.dense(b"".join([c for c, keep in zip(column, inside.tolist()) if keep])))
            else:
                parts = header[f"m{position}"][inside].tolist()
                if aggregation.function in ("sum", "mean"):
                    total = sum(parts)  # in tile order, in Python: an integer sum of many tiles may pass int64
                elif aggregation.function == "min":
                    low = min(parts, default=None)
                else:
                    high = max(parts, default=None)
        values.append(feature_value(aggregation.function, feature.arrow_type == pa.float64(), count, total, low, high, distinct))
    return values, int(header["last"].max())
