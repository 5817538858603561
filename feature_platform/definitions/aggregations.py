"""Windowed aggregations over an event stream, declared as a `StreamFeatureGroup`.

A stream group's features are window aggregates (count, sum, mean, min, max,
approximate distinct count) of its events per entity. Its Delta table stores
the accepted events themselves (keys, event time, stream event id, the event
fields), so a window's value as of any time can be recomputed exactly; the
online store keeps per-entity tiles of `tile` length (see `feature_platform.windows`).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow as pa

from feature_platform.definitions.concepts import DType, Feature, FeatureGroup, arrow_type, check_name
from feature_platform.errors import DefinitionError

FUNCTIONS = ("count", "sum", "mean", "min", "max", "approx_count_distinct")
EVENT_ID = "event_id"


def window_label(window: timedelta) -> str:
    """`10m`, `1h`, `1d` or `90s`: the shortest exact name of a window length."""
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Aggregation:
    """One window feature: `function` of the event field `column` over the last `window`, per entity.

    >>> Aggregation("sum", timedelta(hours=1), column="amount")  # feature "amount_sum_1h"
    >>> Aggregation("count", timedelta(minutes=10), name="txn_count_10m")
    """

    function: str
    window: timedelta
    column: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.function not in FUNCTIONS:
            raise DefinitionError(f"aggregation function {self.function!r} is unknown; use one of {list(FUNCTIONS)}")
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0) or self.window % timedelta(seconds=1):
            raise DefinitionError(f"aggregation window must be a positive whole number of seconds, got {self.window!r}")
        if self.function != "count" and self.column is None:
            raise DefinitionError(f"aggregation '{self.function}' needs the event field it reads: column=...")
        if self.function == "count" and self.column is not None:
            raise DefinitionError("aggregation 'count' counts events; it takes no column")
        if not self.name:
            name = f"{self.column or 'event'}_{self.function}_{window_label(self.window)}"
            object.__setattr__(self, "name", name)
        check_name("aggregation", self.name)


@dataclass(frozen=True)
class StreamFeatureGroup(FeatureGroup):
    """A feature group fed by an event stream: its features are the declared window aggregations.

    `fields` are the typed event fields the aggregations read (besides the join
    keys and `event_time`). Windows are maintained from tiles of `tile` length,
    so each window must be a whole number of tiles. An event is dead-lettered
    when stamped more than `max_future` after it reached the stream, or older
    than the largest window when it arrived. `stream` names the stream (default:
    the group's name).

    >>> card = Entity("card", join_keys={"card_id": "int64"})
    >>> StreamFeatureGroup("card_windows", entities=[card], fields={"amount": "float64"},
    ...     aggregations=[Aggregation("count", timedelta(minutes=10)), Aggregation("sum", timedelta(hours=1), column="amount")])
    """

    features: Sequence[Feature] = ()
    aggregations: Sequence[Aggregation] = ()
    fields: Mapping[str, DType] = field(default_factory=dict)
    tile: timedelta = timedelta(minutes=1)
    max_future: timedelta = timedelta(seconds=5)
    stream: str | None = None

    def __post_init__(self) -> None:
        where = f"stream feature group '{self.name}'"
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        object.__setattr__(self, "fields", dict(self.fields))
        if self.features:
            raise DefinitionError(f"{where}: features are derived from the aggregations; do not pass features=")
        if not self.aggregations or not all(isinstance(a, Aggregation) for a in self.aggregations):
            raise DefinitionError(f"{where}: aggregations must be a non-empty list of Aggregation")
        if self.compute is not None or self.sources:
            raise DefinitionError(f"{where}: a stream group is computed from its stream; it takes no compute or sources")
        if not isinstance(self.tile, timedelta) or self.tile <= timedelta(0) or self.tile % timedelta(seconds=1):
            raise DefinitionError(f"{where}: tile must be a positive whole number of seconds, got {self.tile!r}")
        if not isinstance(self.max_future, timedelta) or self.max_future < timedelta(0):
            raise DefinitionError(f"{where}: max_future must be a non-negative timedelta")
        check_name(f"{where} stream", self.stream or self.name)
        for name, dtype in self.fields.items():
            check_name(f"{where} field", name)
            kind = arrow_type(dtype, owner=f"{where} field '{name}'")
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind)):
                raise DefinitionError(f"{where}: field '{name}' is {kind}; event fields are integers, floats or strings")
        object.__setattr__(self, "features", tuple(self._window_feature(a, where) for a in self.aggregations))
        super().__post_init__()
        for key, dtype in self.key_types.items():
            if not (pa.types.is_integer(dtype) or pa.types.is_string(dtype)):
                raise DefinitionError(f"{where}: join key '{key}' is {dtype}; stream events need integer or string keys")
        clashes = [n for n in (*self.fields, EVENT_ID) if n in (*self.join_keys, self.event_time)]
        if clashes or EVENT_ID in self.fields:
            raise DefinitionError(f"{where}: field name(s) {clashes or [EVENT_ID]} clash with a key, the event time or '{EVENT_ID}'")

    def _window_feature(self, aggregation: Aggregation, where: str) -> Feature:
        if aggregation.window % self.tile:
            raise DefinitionError(
                f"{where}: window {window_label(aggregation.window)} of '{aggregation.name}' is not a whole number "
                f"of {window_label(self.tile)} tiles; pick a tile that divides every window"
            )
        if aggregation.column is None or aggregation.function == "count":
            return Feature(aggregation.name, "int64", f"events in the last {window_label(aggregation.window)}")
        if aggregation.column not in self.fields:
            raise DefinitionError(f"{where}: aggregation '{aggregation.name}' reads unknown field '{aggregation.column}'; fields: {sorted(self.fields)}")
        source = arrow_type(self.fields[aggregation.column])
        numeric = pa.types.is_integer(source) or pa.types.is_floating(source)
        if aggregation.function == "approx_count_distinct":
            if not (pa.types.is_integer(source) or pa.types.is_string(source)):
                raise DefinitionError(f"{where}: '{aggregation.name}' counts distinct values of integer or string fields, not {source}")
            dtype: DType = "int64"
        elif not numeric:
            raise DefinitionError(f"{where}: '{aggregation.name}' needs a numeric field; '{aggregation.column}' is {source}")
        elif aggregation.function == "mean" or (aggregation.function == "sum" and pa.types.is_floating(source)):
            dtype = "float64"
        else:
            dtype = "int64" if pa.types.is_integer(source) else "float64"
        label = window_label(aggregation.window)
        return Feature(aggregation.name, dtype, f"{aggregation.function} of {aggregation.column} over the last {label}")

    @property
    def stream_name(self) -> str:
        return self.stream or self.name

    @property
    def largest_window(self) -> timedelta:
        return max(a.window for a in self.aggregations)

    @property
    def field_types(self) -> dict[str, pa.DataType]:
        return {name: arrow_type(dtype) for name, dtype in self.fields.items()}

    @property
    def row_identity(self) -> list[str]:
        return [*self.join_keys, self.event_time, EVENT_ID]

    @property
    def schema(self) -> pa.Schema:
        """The stored events: keys, event time, the stream's event id, the fields, then partition and write time."""
        fields = [pa.field(k, t, nullable=False) for k, t in self.key_types.items()]
        fields.append(pa.field(self.event_time, pa.timestamp("us", tz="UTC"), nullable=False))
        fields.append(pa.field(EVENT_ID, pa.string(), nullable=False))
        fields += [pa.field(name, dtype, nullable=False) for name, dtype in self.field_types.items()]
        fields.append(pa.field("_partition", pa.date32(), nullable=False))
        fields.append(pa.field("_written_at", pa.timestamp("us", tz="UTC"), nullable=False))
        return pa.schema(fields)


def is_stream_group(group: FeatureGroup) -> bool:
    return isinstance(group, StreamFeatureGroup)


def stream_spec(group: FeatureGroup) -> dict[str, object] | None:
    """What the registry records of a stream group beyond a plain group's record (None for other groups)."""
    if not isinstance(group, StreamFeatureGroup):
        return None
    return {
        "fields": {name: str(dtype) for name, dtype in group.field_types.items()},
        "aggregations": [[a.name, a.function, a.column, a.window.total_seconds()] for a in group.aggregations],
        "tile_seconds": group.tile.total_seconds(),
        "max_future_seconds": group.max_future.total_seconds(),
        "stream": group.stream_name,
    }


def stream_options(spec: Mapping[str, object], dtype: Callable[[str], str]) -> dict[str, object]:
    """`StreamFeatureGroup` arguments rebuilt from a recorded `stream_spec`; `dtype` maps Arrow type text to a dtype."""
    fields = spec["fields"]
    aggregations = spec["aggregations"]
    assert isinstance(fields, Mapping) and isinstance(aggregations, list)
    return {
        "fields": {name: dtype(text) for name, text in fields.items()},
        "aggregations": [Aggregation(f, timedelta(seconds=w), column=c, name=n) for n, f, c, w in aggregations],
        "tile": timedelta(seconds=float(spec["tile_seconds"])),  # type: ignore[arg-type]
        "max_future": timedelta(seconds=float(spec["max_future_seconds"])),  # type: ignore[arg-type]
        "stream": spec["stream"],
    }


__all__ = ["Aggregation", "StreamFeatureGroup", "is_stream_group", "stream_options", "stream_spec", "window_label", "EVENT_ID", "FUNCTIONS"]
