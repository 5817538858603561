"""Online reads: a plan built once per request shape, then one MGET and a decode per call.

The plan holds, per group, the key prefix, key checks, which stored features to
pick and under which output names, so nothing is parsed or resolved per call.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, Callable

import pandas as pd
import pyarrow as pa

from feature_platform.definitions.aggregations import StreamFeatureGroup, is_stream_group
from feature_platform.definitions.concepts import OnDemandTransformation
from feature_platform.definitions.on_demand import Column, OnDemandPlan
from feature_platform.definitions.pandas_types import table_to_pandas
from feature_platform.definitions.records import layout_ids
from feature_platform.definitions.references import ResolvedFeatures
from feature_platform.errors import ArgumentError, DefinitionMismatchError, EntityFrameError, FeaturePlatformError, FeatureReferenceError
from feature_platform.online import codec
from feature_platform.online.store import OnlineStore, now_micros
from feature_platform.online.tiles import read_windows


class OnlineLayoutError(DefinitionMismatchError):
    """An online value was written under a layout the reading definitions do not know."""


PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"


@dataclass(frozen=True)
class GroupRead:
    """What to fetch and decode for one group of a request."""

    prefix: bytes
    key_names: tuple[str, ...]
    normalisers: tuple[Callable[[Any], Any], ...]
    picks: tuple[int, ...]
    outputs: tuple[str, ...]
    bare: tuple[str, ...]
    decoders: tuple[Callable[[Any], Any] | None, ...]
    types: tuple[pa.DataType, ...]
    ttl_us: int | None
    pick: Callable[[list[Any]], tuple[Any, ...]]
    missing: tuple[None, ...]
    plain: bool
    layout: bytes  # the current layout id as stored
    earlier_layouts: Mapping[int, int]  # id of an earlier (shorter) layout -> its feature count
    group: str
    windows: StreamFeatureGroup | None = None  # a stream group: features are computed from its tiles


@dataclass(frozen=True)
class ReadPlan:
    """Everything an online read of one resolved request needs, prepared once."""

    groups: tuple[GroupRead, ...]
    join_keys: tuple[str, ...]
    key_types: Mapping[str, pa.DataType]
    request_inputs: tuple[str, ...]
    on_demand: tuple[OnDemandTransformation, ...]
    on_demand_plan: OnDemandPlan
    on_demand_features: tuple[tuple[str, str, pa.DataType], ...]  # (bare name, output name, type) the transformations read
    on_demand_sources: tuple[tuple[str, ...], ...]  # per transformation, the inputs whose status a missing output takes
    needed_columns: tuple[str, ...]
    types: Mapping[str, pa.DataType]
    hash_tag: bool


def build_plan(resolved: ResolvedFeatures, project: str, *, hash_tag: bool = False) -> ReadPlan:
    """Turn resolved selections into a read plan (done once per request shape); `hash_tag` for a Redis Cluster."""
    groups = []
    key_types: dict[str, pa.DataType] = {}
    for selection in resolved.selections:
        group = selection.group
        if not group.online:
            raise FeatureReferenceError(f"feature group '{group.name}' is not online (online=False); read it offline")
        types = group.key_types
        key_types.update(types)
        features = [group.feature(name) for name in selection.features]
        layouts = layout_ids(group)
        groups.append(
            GroupRead(
                prefix=codec.key_prefix(project, group),
                key_names=tuple(group.join_keys),
                normalisers=tuple(codec.key_normaliser(k, types[k]) for k in group.join_keys),
                picks=tuple(group.feature_names.index(name) for name in selection.features),
                outputs=selection.output_names,
                bare=selection.features,
                decoders=tuple(codec.value_decoder(f.arrow_type) for f in features),
                types=tuple(f.arrow_type for f in features),
                ttl_us=None if group.ttl is None else int(group.ttl.total_seconds() * 1_000_000),
                pick=_picker(tuple(group.feature_names.index(name) for name in selection.features)),
                missing=(None,) * len(selection.features),
                plain=all(codec.value_decoder(f.arrow_type) is None for f in features),
                layout=codec.LAYOUT.pack(layouts[-1]),
                earlier_layouts={layout: count for count, layout in enumerate(layouts[:-1], start=1)},
                group=f"'{group.name}' v{group.version}",
                windows=group if is_stream_group(group) else None,
            )
        )
    join_keys = tuple(resolved.join_keys)
    requests = tuple(resolved.request_inputs)
    _check_names(groups, join_keys, requests, resolved.on_demand)
    types = {k: key_types[k] for k in join_keys}
    types.update({o: t for g in groups for o, t in zip(g.outputs, g.types)})
    types.update({f.name: f.arrow_type for t in resolved.on_demand for f in t.outputs})
    needed = (*join_keys, *(c for c in requests if c not in join_keys))
    fetched = [(b, o, t) for g in groups for b, o, t in zip(g.bare, g.outputs, g.types)]
    read: set[str] = set()
    sources = []
    produced: list[str] = []
    for transformation in resolved.on_demand:
        names = transformation.inputs or [b for b, _, _ in fetched] + produced
        read.update(names)
        sources.append(tuple(names))
        produced += [o.name for o in transformation.outputs]
    features = tuple(f for f in fetched if f[0] in read)
    return ReadPlan(tuple(groups), join_keys, key_types, requests, resolved.on_demand, OnDemandPlan(resolved.on_demand), features, tuple(sources), needed, types, hash_tag)


def _check_names(
    groups: Sequence[GroupRead], join_keys: Sequence[str], requests: Sequence[str], on_demand: Sequence[OnDemandTransformation]
) -> None:
    """Refuse requests whose answer would hold two columns of one name (one would silently replace the other)."""
    outputs = {o: f"feature '{b}'" for g in groups for o, b in zip(g.outputs, g.bare)}
    outputs.update({f.name: f"on-demand output '{f.name}'" for t in on_demand for f in t.outputs})
    for key in join_keys:
        if key in outputs:
            raise FeatureReferenceError(
                f"{outputs[key]} would be returned under the name of join key '{key}'; "
                "pass full_feature_names=True to name features group__feature, or leave it out"
            )
    if on_demand:
        bare = {b for g in groups for b in g.bare}
        for name in requests:
            if name in bare and name not in join_keys:
                raise FeatureReferenceError(
                    f"request input '{name}' of an on-demand transformation has the name of a fetched feature; "
                    "rename the request input"
                )


def _picker(indices: tuple[int, ...]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """A C-speed function taking the requested features, always as a tuple."""
    if len(indices) == 1:
        index = indices[0]
        return lambda values: (values[index],)
    return itemgetter(*indices)


def entity_columns(entity_rows: Any, needed: Sequence[str]) -> tuple[dict[str, list[Any]], int]:
    """The needed columns of entity rows given as a list of dicts, a dict of lists or a DataFrame."""
    if type(entity_rows) is list and all(type(row) is dict for row in entity_rows):
        try:
            return {name: [row[name] for row in entity_rows] for name in needed}, len(entity_rows)
        except KeyError as missing:
            raise EntityFrameError(f"an entity row has no {missing}; every row needs {list(needed)}") from None
    if isinstance(entity_rows, pd.DataFrame):
        repeated = sorted({str(c) for c in entity_rows.columns[entity_rows.columns.duplicated()]})
        if repeated:
            raise EntityFrameError(f"entity rows have the column {repeated} more than once; give each column once")
        source: Mapping[str, Any] = {c: entity_rows[c].tolist() for c in needed if c in entity_rows.columns}
        rows = len(entity_rows)
    elif isinstance(entity_rows, Mapping):
        source = entity_rows
        lengths = {len(v) if isinstance(v, (list, tuple)) else -1 for v in entity_rows.values()}
        if -1 in lengths:
            raise EntityFrameError("entity rows given as a dict must map each column to a list of values")
        if len(lengths) > 1:
            raise EntityFrameError(f"entity columns have different lengths: { {k: len(v) for k, v in entity_rows.items()} }")
        rows = lengths.pop() if lengths else 0
    elif isinstance(entity_rows, Sequence) and not isinstance(entity_rows, (str, bytes)):
        columns: dict[str, list[Any]] = {}
        for name in needed:
            try:
                columns[name] = [row[name] for row in entity_rows]
            except KeyError:
                raise EntityFrameError(f"an entity row has no '{name}'; every row needs {list(needed)}") from None
            except TypeError:
                raise EntityFrameError("entity rows must be dicts of column to value") from None
        return columns, len(entity_rows)
    else:
        raise EntityFrameError(f"entity rows must be a list of dicts, a dict of lists or a DataFrame, got {type(entity_rows).__name__}")
    missing = [c for c in needed if c not in source]
    if missing:
        raise EntityFrameError(f"entity rows have no column {missing}; the request needs {list(needed)}")
    return {c: list(source[c]) for c in needed}, rows


class OnlineResponse:
    """Feature vectors of an online read, column by column, with a status per value."""

    def __init__(
        self,
        keys: dict[str, list[Any]],
        values: dict[str, list[Any]],
        statuses: dict[str, list[str]],
        types: dict[str, pa.DataType],
    ) -> None:
        self._keys = keys
        self._values = values
        self.statuses = statuses
        self._types = types

    def __len__(self) -> int:
        return len(next(iter(self._keys.values()), []))

    @property
    def feature_names(self) -> list[str]:
        return list(self._values)

    def to_dict(self, *, include_statuses: bool = False) -> dict[str, list[Any]]:
        """`{column: [values]}`: join keys, then features; statuses as `<name>__status` if asked."""
        result = {**self._keys, **self._values}
        if include_statuses:
            statuses = {f"{name}__status": list(s) for name, s in self.statuses.items()}
            clash = sorted(statuses.keys() & result.keys())
            if clash:
                raise ArgumentError(f"status column {clash[0]!r} would replace the column of that name; use .statuses instead")
            result.update(statuses)
        return result

    def to_df(self) -> pd.DataFrame:
        """A DataFrame with one row per entity row, typed like the offline tables."""
        data = {**self._keys, **self._values}
        arrays = [pa.array(values, type=self._types.get(name), from_pandas=True) for name, values in data.items()]
        return table_to_pandas(pa.table(arrays, names=list(data)))


def read_online(store: OnlineStore, plan: ReadPlan, entity_rows: Any) -> OnlineResponse:
    """Fetch, decode and (with on-demand transformations) complete the vectors of `entity_rows`."""
    lookup = prepare_lookup(plan, entity_rows)
    return complete_lookup(store, plan, lookup, store.mget(lookup.keys) if lookup.keys else [])


@dataclass(frozen=True)
class Lookup:
    """The checked entity columns of one read and the Redis keys to fetch for them (group by group)."""

    columns: dict[str, list[Any]]
    rows: int
    keys: list[bytes]
    tile_keys: dict[int, list[bytes]]


def prepare_lookup(plan: ReadPlan, entity_rows: Any) -> Lookup:
    """Check the entity rows against the plan and list the keys to MGET: everything before the round trip."""
    columns, rows = entity_columns(entity_rows, plan.needed_columns)
    keys: list[bytes] = []
    tile_keys: dict[int, list[bytes]] = {}
    for g, group in enumerate(plan.groups):
        canonical = [[normalise(v) for v in columns[name]] for name, normalise in zip(group.key_names, group.normalisers)]
        encoded = codec.encode_keys(group.prefix, canonical, hash_tag=plan.hash_tag)
        if group.windows is None:
            keys += encoded
        else:
            tile_keys[g] = encoded
    return Lookup(columns, rows, keys, tile_keys)


def complete_lookup(store: OnlineStore, plan: ReadPlan, lookup: Lookup, stored: Sequence[bytes | None]) -> OnlineResponse:
    """Decode the MGET answer `stored` of `lookup` into the response (windowed groups read their tiles from `store`)."""
    columns, rows, tile_keys = lookup.columns, lookup.rows, lookup.tile_keys
    now_us = now_micros()
    offset = 0
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[str]] = {}
    unpack = codec.decode_features
    header = codec.HEADER.unpack_from
    layout_start, layout_end = codec.HEADER.size, codec.LAYOUT_END
    for g, group in enumerate(plan.groups):
        picked = [group.missing] * rows
        status = [NOT_FOUND] * rows
        oldest = None if group.ttl_us is None else now_us - group.ttl_us
        pick = group.pick
        layout = group.layout
        if group.windows is not None:
            for i, (features, last) in enumerate(read_windows(store, group.windows, tile_keys[g], now_us)):
                if features is not None:
                    status[i] = OUTSIDE_MAX_AGE if oldest is not None and last is not None and last < oldest else PRESENT
                    picked[i] = pick(features) if status[i] == PRESENT else picked[i]
            raw_values: list[bytes | None] = []
        else:
            raw_values = stored[offset : offset + rows]
            offset += rows
        for i, raw in enumerate(raw_values):
            if raw is None:
                continue
            if oldest is not None and header(raw)[0] < oldest:
                status[i] = OUTSIDE_MAX_AGE
                continue
            status[i] = PRESENT
            if raw[layout_start:layout_end] == layout:
                picked[i] = pick(unpack(raw))
            else:
                picked[i] = pick(_earlier_layout(group, raw))
        transposed = map(list, zip(*picked)) if rows else ([] for _ in group.outputs)
        if group.plain:
            values.update(zip(group.outputs, transposed))
        else:
            for output, column, decode in zip(group.outputs, transposed, group.decoders):
                values[output] = column if decode is None else [decode(v) for v in column]
        statuses.update(zip(group.outputs, repeat(status)))
    key_values = {name: columns[name] for name in plan.join_keys}
    types = plan.types
    if plan.on_demand:
        _apply_on_demand(plan, columns, values, statuses, rows)
    return OnlineResponse(key_values, values, statuses, types)


def _earlier_layout(group: GroupRead, raw: bytes) -> list[Any]:
    """Values written before features were appended in place: the appended ones read null."""
    written = codec.decode_layout(raw)
    count = group.earlier_layouts.get(written)
    if count is None:
        raise OnlineLayoutError(
            f"feature group {group.group}: an online value was written with layout {written:08x}, which these "
            f"definitions do not know (they read {int.from_bytes(group.layout, 'big'):08x}); the definitions differ "
            "from the ones that wrote it. Run `feature-platform plan` to see the difference; re-sync after `apply`"
        )
    values = codec.decode_features(raw)
    return values + [None] * (len(group.earlier_layouts) + 1 - count)


def _apply_on_demand(
    plan: ReadPlan,
    columns: dict[str, list[Any]],
    values: dict[str, list[Any]],
    statuses: dict[str, list[str]],
    rows: int,
) -> None:
    """Run the view's transformations on the fetched features (by bare name) and the request inputs.

    An output that comes out missing takes the status of the first input that was not present.
    """
    features = {bare: Column(arrow, values=values[output]) for bare, output, arrow in plan.on_demand_features}
    computed = plan.on_demand_plan.run(features, {name: columns[name] for name in plan.request_inputs}, rows)
    status_of = {bare: statuses[output] for bare, output, _ in plan.on_demand_features}
    for transformation, sources in zip(plan.on_demand, plan.on_demand_sources):
        inputs = [status_of[c] for c in sources]
        for output in transformation.outputs:
            results = computed[output.name].python()
            values[output.name] = results
            statuses[output.name] = status_of[output.name] = [
                next((s[i] for s in inputs if s[i] != PRESENT), PRESENT) if results[i] is None else PRESENT
                for i in range(rows)
            ]
