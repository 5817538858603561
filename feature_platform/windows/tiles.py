"""Tiles: per-entity partial aggregates of fixed-length time slices, and windows as sums of tiles.

A window of length W read at time t covers the tiles `floor(t / tile) - W/tile + 1 ..
floor(t / tile)`, so events with `window_start(t) <= event_time`, up to t. A tile
holds `[count, last event time, *one value per (op, field)]` (see `layout`);
partial tiles of a batch merge into stored ones by adding counts and sums, and
taking minima, maxima and register-wise HyperLogLog maxima (`Layout.merge`).
"""

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.windows import hll

MICROSECOND = timedelta(microseconds=1)
# Merge codes: add, minimum, maximum, HyperLogLog registers.
_CODES = {"count": "a", "last": "x", "sum": "a", "min": "n", "max": "x", "hll": "h"}
_MEASURE = {"sum": "sum", "mean": "sum", "min": "min", "max": "max", "approx_count_distinct": "hll"}


@dataclass(frozen=True)
class Layout:
    """What each position of a tile holds: `count`, `last`, then `(op, field)` per measure."""

    measures: tuple[tuple[str, str], ...]

    @cached_property
    def codes(self) -> str:
        return "ax" + "".join(_CODES[op] for op, _ in self.measures)

    def position(self, op: str, column: str) -> int:
        return 2 + self.measures.index((op, column))

    @cached_property
    def _operations(self) -> tuple[Callable[[Any, Any], Any], ...]:
        return tuple(_OPERATIONS[code] for code in self.codes)

    def merge(self, stored: Sequence[Any], partial: Sequence[Any]) -> list[Any]:
        """A tile of `stored` with a partial tile of the same entity and tile merged in (a new list).

        HyperLogLog pairs are appended (a register may repeat; readers take the
        maximum) and compacted to one pair per register when they grow long.
        """
        return [operation(a, b) for operation, a, b in zip(self._operations, stored, partial)]


def _append_pairs(stored: list[int], partial: list[int]) -> list[int]:
    pairs = stored + partial
    return hll.compact(pairs) if len(pairs) > hll.MAX_PAIRS else pairs


# Ties keep the stored value (`min` and `max` return the first of equals).
_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {"a": operator.add, "n": min, "x": max, "h": _append_pairs}


def layout(group: StreamFeatureGroup) -> Layout:
    measures: list[tuple[str, str]] = []
    for aggregation in group.aggregations:
        if aggregation.column is None:
            continue
        measure = (_MEASURE[aggregation.function], aggregation.column)
        if measure not in measures:
            measures.append(measure)
    return Layout(tuple(measures))


def tile_micros(group: StreamFeatureGroup) -> int:
    return group.tile // MICROSECOND


def tiles_in(group: StreamFeatureGroup, window: timedelta) -> int:
    return window // group.tile


def window_start(t_us: int | np.ndarray, window: timedelta, tile_us: int) -> Any:
    """The earliest event time (µs) a window of length `window` read at `t_us` counts."""
    return (np.floor_divide(t_us, tile_us) - window // timedelta(microseconds=tile_us) + 1) * tile_us


@dataclass(frozen=True)
class TileBatch:
    """The partial tiles of a batch, column by column: per tile its entity (an index into `entities`),
    its tile index, then `count`, `last` and one column per measure of the layout.

    Tiles come entity after entity (`entity_index` does not decrease), each entity's in tile order.
    """

    entities: list[tuple[Any, ...]]
    entity_index: list[int]
    tiles: list[int]
    columns: list[list[Any]]

    def __len__(self) -> int:
        return len(self.tiles)


def partial_tiles(group: StreamFeatureGroup, table: pa.Table) -> TileBatch:
    """The partial tile of each entity and tile the events of `table` touch (one Arrow group-by)."""
    keys = group.join_keys
    spec = layout(group)
    if table.num_rows == 0:
        return TileBatch([], [], [], [[] for _ in range(2 + len(spec.measures))])
    times = table.column(group.event_time).cast(pa.int64()).to_numpy()
    work = {k: table.column(k) for k in keys}
    work["__tile"] = pa.array(np.floor_divide(times, tile_micros(group)))
    work["__t"] = pa.array(times)
    aggregations: list[tuple[str, str]] = [("__t", "count"), ("__t", "max")]
    for position, (op, column) in enumerate(spec.measures):
        if op == "hll":
            register, rank = hll.registers_and_ranks(table.column(column))
            work[f"__r{position}"], work[f"__k{position}"] = pa.array(register), pa.array(rank)
            aggregations += [(f"__r{position}", "list"), (f"__k{position}", "list")]
        else:
            work[column] = table.column(column)
            aggregations.append((column, op))
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
    columns = [grouped.column("__t_count").to_pylist(), grouped.column("__t_max").to_pylist()]
    for position, (op, column) in enumerate(spec.measures):
        if op == "hll":
            columns.append(_pairs(grouped.column(f"__r{position}_list"), grouped.column(f"__k{position}_list")))
        else:
            columns.append(grouped.column(f"{column}_{op}").to_pylist())
    entity_index = (np.cumsum(first) - 1).tolist()
    return TileBatch(entities, entity_index, grouped.column("__tile").to_pylist(), columns)


def _pairs(registers: pa.ChunkedArray, ranks: pa.ChunkedArray) -> list[list[int]]:
    """Per tile, the flat `[register, rank, ...]` of its events (a register may repeat: readers take the maximum)."""
    registers, ranks = registers.combine_chunks(), ranks.combine_chunks()
    flat = np.empty(2 * len(registers.values), dtype=np.int64)
    flat[0::2], flat[1::2] = registers.values.to_numpy(), ranks.values.to_numpy()
    offsets = pa.array(registers.offsets.to_numpy() * 2, pa.int32())
    tiles = pa.ListArray.from_arrays(offsets, pa.array(flat)).to_pylist()
    return [hll.compact(pairs) if len(pairs) > hll.MAX_PAIRS else pairs for pairs in tiles]


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


def window_values(group: StreamFeatureGroup, tiles: dict[int, list[Any]], now_us: int) -> tuple[list[Any] | None, int | None]:
    """The group's features at `now_us` from an entity's tiles, and its last event time (None: no event in any window)."""
    tile_us = tile_micros(group)
    current = now_us // tile_us
    oldest = current - tiles_in(group, group.largest_window) + 1
    live = {t: p for t, p in sorted(tiles.items()) if oldest <= t <= current}
    if not live:
        return None, None
    spec = layout(group)
    values = []
    for aggregation, feature in zip(group.aggregations, group.features):
        first = current - tiles_in(group, aggregation.window) + 1
        window = [p for t, p in live.items() if t >= first]
        count = sum(p[0] for p in window)
        total = low = high = None
        distinct = 0
        if aggregation.column is not None:
            position = spec.position(_MEASURE[aggregation.function], aggregation.column)
            parts = [p[position] for p in window]
            if aggregation.function in ("sum", "mean"):
                total = sum(parts)
            elif aggregation.function == "min":
                low = min(parts, default=None)
            elif aggregation.function == "max":
                high = max(parts, default=None)
            else:
                distinct = hll.estimate(hll.dense([x for pairs in parts for x in pairs]))
        is_float = feature.arrow_type == pa.float64()
        values.append(feature_value(aggregation.function, is_float, count, total, low, high, distinct))
    return values, max(p[1] for p in live.values())
