"""The concepts users declare: entities, features, feature groups and feature views.

Definitions are frozen dataclasses, validated at construction, so a bad name or
an unknown key fails where it is written rather than deep inside a run.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Union

import pyarrow as pa

from feature_platform.definitions.rules import DriftSettings, Rule
from feature_platform.errors import DefinitionError

DType = Union[str, pa.DataType]

DTYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")


def check_name(kind: str, name: object) -> str:
    """Return `name` if it is a valid identifier, else raise naming the rule."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DefinitionError(
            f"{kind} name {name!r} is invalid: use a letter followed by letters, digits "
            "or underscores (no spaces, separators or leading underscore; at most 128 characters)"
        )
    return name


# Delta Lake has no unsigned integers (delta-rs stores uint8 as a signed byte: 200 fails mid-write) and neither
# do Feast's value types; the signed type that holds every value is what a definition declares instead.
SIGNED_FOR_UNSIGNED: dict[pa.DataType, str] = {
    pa.uint8(): "int16 (pa.int16())",
    pa.uint16(): "int32",
    pa.uint32(): "int64",
    pa.uint64(): "int64",
}


def arrow_type(dtype: DType, *, owner: str = "feature") -> pa.DataType:
    """The Arrow type of a dtype given by name (`"int64"`, ...) or as a pyarrow type; unsigned integers are refused."""
    if isinstance(dtype, str) and dtype in ("uint8", "uint16", "uint32", "uint64"):
        dtype = pa.type_for_alias(dtype)
    if isinstance(dtype, pa.DataType):
        unsigned = _unsigned_in(dtype)
        if unsigned is not None:
            raise DefinitionError(
                f"{owner}: dtype {dtype} holds unsigned integers ({unsigned}), which Delta Lake and the online store do "
                f"not have; declare {SIGNED_FOR_UNSIGNED[unsigned]} instead (input columns of {unsigned} are converted "
                f"to it, and a value out of its range is refused). Supported: {sorted(DTYPES)} or a signed pyarrow type"
            )
        if pa.types.is_timestamp(dtype):
            return pa.timestamp("us", tz="UTC")
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise DefinitionError(f"{owner}: unknown dtype {dtype!r}; use one of {sorted(DTYPES)} or a pyarrow type")


def _unsigned_in(arrow: pa.DataType) -> pa.DataType | None:
    """The first unsigned integer type in `arrow` (itself, or inside lists, maps, structs and dictionaries)."""
    if pa.types.is_unsigned_integer(arrow):
        return arrow
    if pa.types.is_dictionary(arrow):
        return _unsigned_in(arrow.value_type)  # dictionary indices are storage detail, not values
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow) or pa.types.is_fixed_size_list(arrow):
        return _unsigned_in(arrow.value_type)
    if pa.types.is_map(arrow):
        return _unsigned_in(arrow.key_type) or _unsigned_in(arrow.item_type)
    if pa.types.is_struct(arrow):
        return next((found for f in arrow if (found := _unsigned_in(f.type)) is not None), None)
    return None


def _online_key_type(arrow: pa.DataType) -> bool:
    return any(check(arrow) for check in (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string,
                                          pa.types.is_boolean, pa.types.is_date, pa.types.is_timestamp))


def _online_value_type(arrow: pa.DataType, *, nested: bool = False) -> bool:
    """Types the online store holds exactly and the feature server has a JSON form for."""
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return _online_value_type(arrow.value_type, nested=True)
    if pa.types.is_struct(arrow):
        return all(_online_value_type(field.type, nested=True) for field in arrow)
    if pa.types.is_date(arrow) or pa.types.is_timestamp(arrow):
        return not nested  # stored as day or microsecond numbers at the top level only
    return _online_key_type(arrow) or pa.types.is_floating(arrow) or pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow)


def _offline_value_type(arrow: pa.DataType) -> bool:
    """False for types Delta Lake has no column type for (times of day, durations, intervals, nulls)."""
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow) or pa.types.is_dictionary(arrow):
        return _offline_value_type(arrow.value_type)
    if pa.types.is_map(arrow):
        return _offline_value_type(arrow.key_type) and _offline_value_type(arrow.item_type)
    if pa.types.is_struct(arrow):
        return all(_offline_value_type(field.type) for field in arrow)
    return not any(check(arrow) for check in (pa.types.is_time, pa.types.is_duration, pa.types.is_interval, pa.types.is_null))


@dataclass(frozen=True)
class Entity:
    """What features describe, identified by one or more typed join keys.

    >>> Entity("user", join_keys={"user_id": "int64"})
    """

    name: str
    join_keys: Mapping[str, DType]
    description: str = ""

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        if not isinstance(self.join_keys, Mapping) or not self.join_keys:
            raise DefinitionError(
                f"entity '{self.name}': join_keys must be a non-empty mapping of key name to dtype, "
                "e.g. {'user_id': 'int64'}"
            )
        for key, dtype in self.join_keys.items():
            check_name(f"entity '{self.name}' join key", key)
            arrow_type(dtype, owner=f"entity '{self.name}' join key '{key}'")
        object.__setattr__(self, "join_keys", dict(self.join_keys))

    def key_types(self) -> dict[str, pa.DataType]:
        """Arrow type of each join key."""
        return {key: arrow_type(dtype) for key, dtype in self.join_keys.items()}


@dataclass(frozen=True)
class Feature:
    """One named, typed, documented column of a feature group."""

    name: str
    dtype: DType = "float64"
    description: str = ""

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        arrow_type(self.dtype, owner=f"feature '{self.name}'")

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.dtype)


def to_date(value: date | str) -> date:
    """A `date` from a date or an ISO `YYYY-MM-DD` string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise DefinitionError(f"{value!r} is not a date; use 'YYYY-MM-DD'") from None


@dataclass(frozen=True)
class DailyPartitions:
    """Daily partitions of event time (UTC), from `start` (inclusive) to `end` (exclusive, open if None)."""

    start: date | str = "2020-01-01"
    end: date | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_date(self.start))
        if self.end is not None:
            object.__setattr__(self, "end", to_date(self.end))
            if self.end <= self.start:
                raise DefinitionError(f"daily partitions end {self.end} must be after start {self.start}")

    @staticmethod
    def window(partition_key: str) -> tuple[datetime, datetime]:
        """The UTC time window `[start, end)` of a partition key `YYYY-MM-DD`."""
        try:
            day = date.fromisoformat(partition_key)
        except (TypeError, ValueError):
            raise DefinitionError(f"partition key {partition_key!r} is not a day 'YYYY-MM-DD'") from None
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return start, start + timedelta(days=1)


RESERVED_COLUMNS = ("_partition", "_written_at")


@dataclass(frozen=True)
class FeatureGroup:
    """Features of one or more entities over event time, stored as one Delta table.

    Versioned (a new version is a new table and new online keys), documented,
    owned and tagged. Partitioned by day of event time unless `partitions=None`.
    `compute(inputs, start, end)` builds the rows of event times `[start, end)`
    from `inputs`, the frames of the `sources` over `[start - lookback, end)`:
    pandas frames, or Polars or Arrow ones with `frames="polars"` / `"arrow"`.
    `compute` may instead be a SQL statement that DuckDB runs over the inputs
    (each a view named after its source; `$start` and `$end` are the window).
    Quality: `rules` (see `Rule`) validate each partition before it is committed,
    `drift` (or None) compares partitions with a reference window, and a daily
    partition must be in the table within `freshness` after its day closed.

    >>> user = Entity("user", join_keys={"user_id": "int64"})
    >>> FeatureGroup("user_stats", entities=[user], features=[Feature("txn_count_7d", "int64")])
    """

    name: str
    entities: Sequence[Entity]
    features: Sequence[Feature]
    event_time: str = "event_time"
    created_time: str | None = None
    version: int = 1
    partitions: DailyPartitions | None = field(default_factory=DailyPartitions)
    ttl: timedelta | None = None
    online: bool = True
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    compute: Callable[..., Any] | str | None = field(default=None, compare=False)
    sources: Sequence[str] = ()
    lookback: timedelta = timedelta(0)
    rules: Sequence[Rule] = ()
    drift: DriftSettings | None = field(default_factory=DriftSettings)
    freshness: timedelta | None = timedelta(hours=6)
    frames: str = "pandas"

    def __post_init__(self) -> None:
        check_name("feature group", self.name)
        object.__setattr__(self, "sources", tuple(self.sources))
        if self.compute is not None and not callable(self.compute) and not (isinstance(self.compute, str) and self.compute.strip()):
            raise DefinitionError(f"feature group '{self.name}': compute must be a function or a SQL statement")
        if self.frames not in ("pandas", "polars", "arrow"):
            raise DefinitionError(f"feature group '{self.name}': frames must be 'pandas', 'polars' or 'arrow', got {self.frames!r}")
        if not isinstance(self.lookback, timedelta) or self.lookback < timedelta(0):
            raise DefinitionError(f"feature group '{self.name}': lookback must be a non-negative timedelta")
        where = f"feature group '{self.name}'"
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "tags", dict(self.tags))
        if not self.entities or not all(isinstance(e, Entity) for e in self.entities):
            raise DefinitionError(f"{where}: entities must be a non-empty list of Entity")
        if not self.features or not all(isinstance(f, Feature) for f in self.features):
            raise DefinitionError(f"{where}: features must be a non-empty list of Feature")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise DefinitionError(f"{where}: version must be a positive integer, got {self.version!r}")
        if self.ttl is not None and (not isinstance(self.ttl, timedelta) or self.ttl <= timedelta(0)):
            raise DefinitionError(f"{where}: ttl must be a positive timedelta or None, got {self.ttl!r}")
        if self.partitions is not None and not isinstance(self.partitions, DailyPartitions):
            raise DefinitionError(f"{where}: partitions must be DailyPartitions(...) or None")
        check_name(f"{where} event_time column", self.event_time)
        if self.created_time is not None:
            check_name(f"{where} created_time column", self.created_time)
        columns = [*self.join_keys, self.event_time, *([self.created_time] if self.created_time else [])]
        columns += [f.name for f in self.features]
        seen: set[str] = set()
        for column in columns:
            if column in seen:
                raise DefinitionError(f"{where}: column name '{column}' is used twice")
            seen.add(column)
        self._check_quality(where, columns)
        for feature in self.features:
            if not _offline_value_type(feature.arrow_type):
                raise DefinitionError(
                    f"{where}: feature '{feature.name}' of dtype {feature.arrow_type} cannot be stored in Delta Lake; "
                    "use a number, bool, string, binary, decimal, date or timestamp, or lists, maps and structs of them"
                )
        if self.online:
            self._check_online_types(where)

    def _check_online_types(self, where: str) -> None:
        for key, arrow in self.key_types.items():
            if not _online_key_type(arrow):
                raise DefinitionError(
                    f"{where}: join key '{key}' of dtype {arrow} cannot key online values; "
                    "use an integer, string, bool, date or timestamp key, or online=False"
                )
        for feature in self.features:
            if not _online_value_type(feature.arrow_type):
                raise DefinitionError(
                    f"{where}: feature '{feature.name}' of dtype {feature.arrow_type} cannot be served online; "
                    "use a number, bool, string, binary, date or timestamp (or lists and structs of numbers, bools, "
                    "strings and binaries), or online=False"
                )

    def _check_quality(self, where: str, columns: list[str]) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        names: set[str] = set()
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise DefinitionError(f"{where}: rules must be Rule objects, got {type(rule).__name__}")
            if rule.name in names:
                raise DefinitionError(f"{where}: rule name '{rule.name}' is used twice")
            names.add(rule.name)
            if rule.column is not None and rule.column not in columns:
                raise DefinitionError(f"{where}: rule '{rule.name}' names unknown column '{rule.column}'; columns: {columns}")
        if self.drift is not None:
            if not isinstance(self.drift, DriftSettings):
                raise DefinitionError(f"{where}: drift must be DriftSettings(...) or None")
            unknown = [f for f in self.drift.features or () if f not in self.feature_names]
            if unknown:
                raise DefinitionError(f"{where}: drift names unknown features {unknown}; features: {self.feature_names}")
        if self.freshness is not None and (not isinstance(self.freshness, timedelta) or self.freshness < timedelta(0)):
            raise DefinitionError(f"{where}: freshness must be a non-negative timedelta or None, got {self.freshness!r}")

    @property
    def join_keys(self) -> list[str]:
        """Join keys of all entities, in declaration order, without repeats."""
        return list(self.key_types)

    @property
    def key_types(self) -> dict[str, pa.DataType]:
        types: dict[str, pa.DataType] = {}
        for entity in self.entities:
            for key, dtype in entity.key_types().items():
                if key in types and types[key] != dtype:
                    raise DefinitionError(
                        f"feature group '{self.name}': join key '{key}' has two dtypes ({types[key]}, {dtype})"
                    )
                types[key] = dtype
        return types

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the stored table: keys, times, features, then partition and write time."""
        fields = [pa.field(k, t, nullable=False) for k, t in self.key_types.items()]
        fields.append(pa.field(self.event_time, pa.timestamp("us", tz="UTC"), nullable=False))
        if self.created_time:
            fields.append(pa.field(self.created_time, pa.timestamp("us", tz="UTC")))
        fields += [pa.field(f.name, f.arrow_type) for f in self.features]
        fields.append(pa.field("_partition", pa.date32(), nullable=False))
        fields.append(pa.field("_written_at", pa.timestamp("us", tz="UTC"), nullable=False))
        return pa.schema(fields)

    @property
    def row_identity(self) -> list[str]:
        """The columns no two stored rows may share: keys, event time and created time."""
        return [*self.join_keys, self.event_time, *([self.created_time] if self.created_time else [])]

    @property
    def input_columns(self) -> list[str]:
        """Columns a frame written to this group must have."""
        return [n for n in self.schema.names if n not in RESERVED_COLUMNS]


ON_DEMAND_MODES = ("pandas", "python", "row")


@dataclass(frozen=True)
class OnDemandTransformation:
    """A function from retrieved features and request inputs to new columns, run offline and online alike.

    `mode` says what `function` takes and returns: `"pandas"` a DataFrame to a
    DataFrame of the `outputs`; `"python"` a dict of column lists to a dict of
    lists (no pandas online: the fast mode); `"row"` one dict of values to a dict.
    It sees the declared `inputs` (retrieved features by bare name, or outputs of
    earlier transformations; all of them when empty) plus `request_inputs`,
    names or `Feature`s whose dtype both paths convert the request values to.
    """

    name: str
    function: Callable[[Any], Any]
    outputs: Sequence[Feature]
    inputs: Sequence[str] = ()
    request_inputs: Sequence[str | Feature] = ()
    mode: str = "pandas"
    request_types: Mapping[str, pa.DataType | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_name("on-demand transformation", self.name)
        if not callable(self.function):
            raise DefinitionError(f"on-demand transformation '{self.name}': function is not callable")
        if self.mode not in ON_DEMAND_MODES:
            raise DefinitionError(f"on-demand transformation '{self.name}': mode {self.mode!r} is not one of {list(ON_DEMAND_MODES)}")
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not all(isinstance(o, Feature) for o in self.outputs):
            raise DefinitionError(f"on-demand transformation '{self.name}': outputs must be Feature(name, dtype) objects")
        requests: dict[str, pa.DataType | None] = {}
        for item in self.request_inputs:
            if not isinstance(item, (str, Feature)):
                raise DefinitionError(f"on-demand transformation '{self.name}': request input {item!r} is neither a name nor a Feature")
            name = item.name if isinstance(item, Feature) else check_name("request input", item)
            if name in requests:
                raise DefinitionError(f"on-demand transformation '{self.name}': request input '{name}' is listed twice")
            requests[name] = item.arrow_type if isinstance(item, Feature) else None
        object.__setattr__(self, "request_inputs", tuple(requests))
        object.__setattr__(self, "request_types", requests)
        if not self.outputs:
            raise DefinitionError(f"on-demand transformation '{self.name}': declare at least one output Feature")
        clashes = sorted({o.name for o in self.outputs} & (set(self.inputs) | set(requests)))
        if clashes:
            raise DefinitionError(f"on-demand transformation '{self.name}': output(s) {clashes} are also its inputs")


@dataclass(frozen=True)
class FeatureView:
    """The features one model consumes: references `"group:feature"` plus on-demand transformations."""

    name: str
    features: Sequence[str]
    version: int = 1
    description: str = ""
    on_demand: Sequence[OnDemandTransformation] = ()
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "on_demand", tuple(self.on_demand))
        object.__setattr__(self, "tags", dict(self.tags))
        if not self.features or not all(isinstance(r, str) and r for r in self.features):
            raise DefinitionError(f"feature view '{self.name}': features must be a non-empty list of references")
        if len(set(self.features)) != len(self.features):
            raise DefinitionError(f"feature view '{self.name}': a feature reference is listed twice")
        if not isinstance(self.version, int) or self.version < 1:
            raise DefinitionError(f"feature view '{self.name}': version must be a positive integer")
