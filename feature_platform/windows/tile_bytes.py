"""How a tile is stored: fixed-width bytes, so that a whole batch of tiles merges in a few NumPy operations.

A tile is a header — a format byte, the count, the last event time (µs), one
8-byte value per sum, minimum or maximum (int64 or float64, as its field) and
one code count per HyperLogLog measure — followed by each HyperLogLog
measure's codes (`hll.codes_of`). Merging a stored tile with a partial one
adds counts and sums, takes minima and maxima, and appends codes: the headers
of a batch's tiles merge as NumPy columns and the codes as byte strings, where
msgpack tiles took an unpack, a Python merge and a pack each. Codes past
`hll.REGISTERS` are compacted to one per register (the same estimate).

Tiles of the earlier format (msgpack arrays) are still read (`split`), and the
consumer converts them when it loads them (`upgrade`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import msgpack
import numpy as np
import pyarrow as pa

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.errors import FeaturePlatformError
from feature_platform.windows import hll

FORMAT = 1  # the first byte of a tile of this format; a msgpack array starts with 0x90 or more
# The measure each aggregation reads from the tiles.
MEASURE = {"sum": "sum", "mean": "sum", "min": "min", "max": "max", "approx_count_distinct": "hll"}


@dataclass(frozen=True)
class Layout:
    """What a tile holds after its count and last event time: one `(op, field)` per measure."""

    measures: tuple[tuple[str, str], ...]


def layout(group: StreamFeatureGroup) -> Layout:
    measures: list[tuple[str, str]] = []
    for aggregation in group.aggregations:
        if aggregation.column is not None and (MEASURE[aggregation.function], aggregation.column) not in measures:
            measures.append((MEASURE[aggregation.function], aggregation.column))
    return Layout(tuple(measures))


@dataclass(frozen=True)
class TileBytes:
    """The byte layout of one stream group's tiles (see the module docstring)."""

    layout: Layout
    integer: tuple[bool, ...]  # per measure of the layout: whether its field is an integer

    @cached_property
    def numeric(self) -> tuple[int, ...]:
        """Positions in `layout.measures` of the sums, minima and maxima."""
        return tuple(p for p, (op, _) in enumerate(self.layout.measures) if op != "hll")

    @cached_property
    def sketches(self) -> tuple[int, ...]:
        """Positions in `layout.measures` of the HyperLogLog measures."""
        return tuple(p for p, (op, _) in enumerate(self.layout.measures) if op == "hll")

    @cached_property
    def header(self) -> np.dtype:
        fields = [("format", "u1"), ("count", "<i8"), ("last", "<i8")]
        fields += [(f"m{p}", "<i8" if self.integer[p] else "<f8") for p in self.numeric]
        return np.dtype(fields + [(f"h{p}", "<u2") for p in self.sketches])

    def pack(self, header: np.ndarray, codes: Sequence[Sequence[bytes]]) -> list[bytes]:
        """Tiles from their headers and, per HyperLogLog measure, each tile's codes (as counted in the headers)."""
        size, blob = header.dtype.itemsize, header.tobytes()
        if len(codes) == 1:
            return [blob[i : i + size] + tail for i, tail in zip(range(0, len(blob), size), codes[0])]
        heads = [blob[i : i + size] for i in range(0, len(blob), size)]
        return [b"".join(parts) for parts in zip(heads, *codes)] if codes else heads

    def count_codes(self, header: np.ndarray, codes: list[list[bytes]], counts: Sequence[np.ndarray]) -> None:
        """Set the format byte and each HyperLogLog measure's code counts, compacting the codes of tiles with more
        than the registers (in place)."""
        header["format"] = FORMAT
        for position, column, count in zip(self.sketches, codes, counts):
            header[f"h{position}"] = count
            for i in np.flatnonzero(count > hll.REGISTERS).tolist():
                column[i] = hll.compact(np.frombuffer(column[i], "<u2")).tobytes()
                header[f"h{position}"][i] = len(column[i]) // 2

    def merge(
        self, group: StreamFeatureGroup, stored: Sequence[bytes], partial: np.ndarray, codes: Sequence[Sequence[bytes]]
    ) -> list[bytes]:
        """Each stored tile (of this format) with the partial tile of the same entity and tile merged in; partial
        tiles as headers and, per HyperLogLog measure, codes (as `TileBatch` has them)."""
        if not stored:
            return []
        size = self.header.itemsize
        old, new = np.frombuffer(b"".join([s[:size] for s in stored]), self.header), partial
        merged = np.empty(len(old), self.header)
        merged["count"] = old["count"] + new["count"]
        merged["last"] = np.maximum(old["last"], new["last"])
        for position in self.numeric:
            op, column = self.layout.measures[position]
            a, b = old[f"m{position}"], new[f"m{position}"]
            if op == "sum":
                total = a + b
                if self.integer[position] and np.any(((a ^ total) & (b ^ total)) < 0):
                    raise sum_overflow(group, column)
                merged[f"m{position}"] = total
            else:
                merged[f"m{position}"] = np.minimum(a, b) if op == "min" else np.maximum(a, b)
        if len(self.sketches) == 1:  # the codes are the rest of each stored tile
            joined = [[s[size:] + tail for s, tail in zip(stored, codes[0])]]
        else:
            joined = [[a + b for a, b in zip(mine, theirs)] for mine, theirs in zip(self._codes(stored, old), codes)]
        self.count_codes(merged, joined, [old[f"h{p}"] + new[f"h{p}"] for p in self.sketches])
        return self.pack(merged, joined)

    def combine(self, group: StreamFeatureGroup, stored: Sequence[bytes | None], partial: np.ndarray,
                codes: Sequence[Sequence[bytes]]) -> list[bytes]:
        """Each partial tile merged into its stored tile (of this format), or alone where none is stored."""
        if None not in stored:  # (in a steady stream, most tiles were touched before)
            return self.merge(group, stored, partial, codes)  # type: ignore[arg-type]
        tiles = self.pack(partial, codes)
        existing = [p for p, tile in enumerate(stored) if tile is not None]
        if existing:
            merged = self.merge(group, [stored[p] for p in existing], partial[existing],  # type: ignore[arg-type]
                                [[column[p] for p in existing] for column in codes])
            for p, tile in zip(existing, merged):
                tiles[p] = tile
        return tiles

    def split(self, tiles: Sequence[bytes]) -> tuple[np.ndarray, list[list[bytes]]]:
        """Stored tiles (of any format) as their headers and, per HyperLogLog measure, their codes: `pack` undone."""
        tiles = [self.upgrade(tile) for tile in tiles]
        size = self.header.itemsize
        header = np.frombuffer(b"".join([tile[:size] for tile in tiles]), self.header)
        return header, self._codes(tiles, header)

    def _codes(self, tiles: Sequence[bytes], header: np.ndarray) -> list[list[bytes]]:
        """Per HyperLogLog measure, the codes of each tile (of this format; `header`: their headers)."""
        codes, start = [], np.full(len(tiles), self.header.itemsize, dtype=np.int64)
        for position in self.sketches:
            end = start + 2 * header[f"h{position}"]
            codes.append([tile[a:b] for tile, a, b in zip(tiles, start.tolist(), end.tolist())])
            start = end
        return codes

    def upgrade(self, tile: bytes) -> bytes:
        """A tile of this format from one stored in it or in the earlier msgpack format."""
        if tile[0] == FORMAT:
            return tile
        values = msgpack.unpackb(tile)
        header = np.zeros(1, self.header)
        header["count"], header["last"] = values[0], values[1]
        for position in self.numeric:
            header[f"m{position}"] = values[2 + position]
        codes = []
        for position in self.sketches:
            pairs = np.asarray(values[2 + position], dtype=np.int64)
            codes.append([hll.codes_of(pairs[0::2], pairs[1::2]).tobytes()])
        self.count_codes(header, codes, [np.array([len(c[0]) // 2]) for c in codes])
        return self.pack(header, codes)[0]


def sum_overflow(group: StreamFeatureGroup, column: str) -> FeaturePlatformError:
    """The error of an integer field whose sum in one tile passed int64 (which a tile's 8 bytes hold)."""
    return FeaturePlatformError(f"stream group '{group.name}': the sum of integer field '{column}' in one tile passed the "
                                "int64 range; declare the field float64 and bump the version")


def tile_bytes(group: StreamFeatureGroup) -> TileBytes:
    """The tile layout of a stream group, with its fields' types."""
    spec = layout(group)
    types = group.field_types
    return TileBytes(spec, tuple(pa.types.is_integer(types[column]) for _, column in spec.measures))
