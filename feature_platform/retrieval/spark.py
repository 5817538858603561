"""Point-in-time retrieval on Apache Spark (`engine="spark"`): the DuckDB engine's semantics, run by Spark.

The library does what needs the Delta log: it resolves each group's version
(`as_of`, exactly as the DuckDB engine) and lists that snapshot's files in the
partitions of `[min(t) - ttl, max(t)]`. Spark reads those files and joins:
per group, the entity rows and the group's rows are unioned and ordered per
join key by (time, stored rows before entity rows, created time, write time),
so each entity row's candidate is the last stored row before it (`last(...,
ignorenulls)` over that window); a winner older than `t - ttl` gives nulls.
Nothing is collected to the driver: the result is a Spark DataFrame in entity
row order, with the entity columns untouched and one column per feature.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from feature_platform.definitions.aggregations import is_stream_group
from feature_platform.definitions.references import Catalog, GroupSelection, ResolvedFeatures
from feature_platform.errors import ArgumentError, EntityFrameError, FeaturePlatformError, import_extra
from feature_platform.offline.store import OfflineStore
from feature_platform.retrieval.entity_frames import entity_key_array, entity_times
from feature_platform.retrieval.point_in_time import AsOf, Features, check_entity_columns, resolve_versions

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

ROW = "__fp_row"
# Spark reads S3 through the s3a connector; Delta logs name files s3://.
S3_SCHEME_ENV = "FEATURE_PLATFORM_SPARK_S3_SCHEME"


@dataclass(frozen=True)
class SparkRetrieval:
    """A point-in-time join as a Spark DataFrame (entity row order) and the Delta version of every group read."""

    frame: "DataFrame"
    versions: dict[str, int | None]
    resolved: ResolvedFeatures


def spark_session(spark: "SparkSession | None" = None) -> "SparkSession":
    """`spark`, else the active session, else one built from Spark's own configuration (spark-submit, spark-defaults)."""
    import_extra("pyspark", "spark", "engine='spark'")
    from pyspark.sql import SparkSession

    if spark is not None:
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return SparkSession.builder.appName("feature-platform").config("spark.sql.session.timeZone", "UTC").getOrCreate()


def get_historical_features_spark(
    catalog: Catalog,
    offline: OfflineStore,
    entity_df: "pd.DataFrame | DataFrame",
    features: Features,
    *,
    spark: "SparkSession | None" = None,
    full_feature_names: bool = False,
    as_of: AsOf = None,
    timestamp_column: str = "event_time",
) -> SparkRetrieval:
    """Join the requested features onto `entity_df` (pandas or Spark) as of each row's time, in Spark."""
    spark = spark_session(spark)
    resolved = catalog.resolve(features, full_feature_names)
    for selection in resolved.selections:
        if is_stream_group(selection.group):
            raise ArgumentError(f"feature group '{selection.group.name}' is a streaming aggregation: read it with engine='duckdb'")
    if resolved.on_demand:
        names = [t.name for t in resolved.on_demand]
        raise ArgumentError(f"on-demand transformations {names} run with engine='duckdb' only; request the view's stored features")
    entities = _entity_frame(spark, entity_df, resolved, timestamp_column)
    versions = resolve_versions(offline, resolved, as_of)
    from pyspark.sql import functions as F

    bounds = entities.agg(F.min("__t").alias("low"), F.max("__t").alias("high")).first()
    frame = entities
    for selection in resolved.selections:
        frame = frame.join(_join_group(spark, offline, selection, versions[selection.group.name], entities, bounds), ROW, "left")
    internal = ["__t", "__tc", *(c for c in entities.columns if c.startswith("__k_"))]
    return SparkRetrieval(frame.drop(*internal).orderBy(ROW).drop(ROW), versions, resolved)


def _entity_frame(spark: "SparkSession", entity_df: Any, resolved: ResolvedFeatures, timestamp_column: str) -> "DataFrame":
    """The entity rows in Spark with a row number, typed join keys `__k_<key>` and times `__t` (floor) / `__tc` (ceil) in µs."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    key_types = _key_types(resolved)
    if isinstance(entity_df, pd.DataFrame):
        check_entity_columns([str(c) for c in entity_df.columns], resolved, timestamp_column)
        floor, ceil = entity_times(entity_df[timestamp_column], timestamp_column)
        try:
            table = pa.Table.from_pandas(entity_df.reset_index(drop=True), preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise EntityFrameError(f"the entity frame cannot be handed to Spark: {exc}") from None
        for key, (dtype, group) in key_types.items():
            table = table.append_column(f"__k_{key}", entity_key_array(entity_df[key], key, dtype, group))
        table = table.append_column(ROW, pa.array(range(len(entity_df)), pa.int64()))
        table = table.append_column("__t", pa.array(floor, pa.int64())).append_column("__tc", pa.array(ceil, pa.int64()))
        return spark.createDataFrame(table)
    if not isinstance(entity_df, DataFrame):
        raise EntityFrameError(f"the entity frame must be a pandas or Spark DataFrame, got {type(entity_df).__name__}")
    check_entity_columns(list(entity_df.columns), resolved, timestamp_column)
    types = dict(entity_df.dtypes)
    frame = entity_df.withColumn(ROW, F.monotonically_increasing_id())
    for key, (dtype, group) in key_types.items():
        frame = frame.withColumn(f"__k_{key}", _spark_key(F.col(key), types[key], key, dtype, group))
    micros = _spark_micros(F.col(timestamp_column), types[timestamp_column], timestamp_column)
    # Row numbers must not change when Spark recomputes a stage: pin the numbered rows on the executors.
    frame = frame.withColumn("__t", micros).withColumn("__tc", F.col("__t")).localCheckpoint(eager=True)
    checks = [F.sum(F.col(f"__k_{k}").isNull().cast("long")).alias(k) for k in key_types]
    nulls = frame.agg(*checks, F.sum(F.col("__t").isNull().cast("long")).alias("__t")).first().asDict()
    for name, count in nulls.items():
        if count:
            column = timestamp_column if name == "__t" else name
            raise EntityFrameError(f"entity frame column '{column}': {count} row(s) have no {'time' if name == '__t' else 'join key value'}")
    return frame


def _key_types(resolved: ResolvedFeatures) -> dict[str, tuple[pa.DataType, str]]:
    """Each join key's type and the first group that declares it; two groups disagreeing is an error."""
    types: dict[str, tuple[pa.DataType, str]] = {}
    for selection in resolved.selections:
        for key, dtype in selection.group.key_types.items():
            if key in types and types[key][0] != dtype:
                raise EntityFrameError(f"join key '{key}' has different dtypes in the requested groups")
            types.setdefault(key, (dtype, selection.group.name))
    return types


def _spark_key(column: "Column", spark_type: str, key: str, dtype: pa.DataType, group: str) -> "Column":
    """A Spark entity key column as the group's key type; other kinds of types never match and are refused."""
    integers = ("tinyint", "smallint", "int", "bigint")
    if pa.types.is_integer(dtype) and spark_type in integers:
        return column.cast("bigint")
    if (pa.types.is_string(dtype) or pa.types.is_large_string(dtype)) and spark_type == "string":
        return column
    if pa.types.is_boolean(dtype) and spark_type == "boolean":
        return column
    if pa.types.is_date(dtype) and spark_type == "date":
        return column
    if pa.types.is_timestamp(dtype) and spark_type in ("timestamp", "timestamp_ntz"):
        return column.cast("timestamp")
    raise EntityFrameError(
        f"entity frame column '{key}' has Spark type {spark_type}, but feature group '{group}' keys it as {dtype}: "
        "convert the column (join keys of different types never match)"
    )


def _spark_micros(column: "Column", spark_type: str, name: str) -> "Column":
    """Microseconds since the epoch of an instant (`timestamp`) or a naive UTC time (`timestamp_ntz`)."""
    from pyspark.sql import functions as F

    if spark_type == "timestamp":
        return F.unix_micros(column)
    if spark_type == "timestamp_ntz":
        return F.unix_micros(F.to_utc_timestamp(column.cast("timestamp"), F.current_timezone()))
    raise EntityFrameError(f"entity frame time column '{name}' has Spark type {spark_type}, not a timestamp")


def _join_group(
    spark: "SparkSession",
    offline: OfflineStore,
    selection: GroupSelection,
    version: int | None,
    entities: "DataFrame",
    bounds: Any,
) -> "DataFrame":
    """`__fp_row` and the selected features (as output columns) of every entity row that has a candidate."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_type

    group = selection.group
    outputs = list(zip(selection.features, selection.output_names))
    empty = spark.createDataFrame([], f"{ROW} bigint").select(
        ROW, *(F.lit(None).cast(from_arrow_type(group.feature(f).arrow_type)).alias(o) for f, o in outputs)
    )
    snapshot = None if version is None or bounds["low"] is None else offline.snapshot(group, version)
    if snapshot is None:
        return empty
    ttl_us = None if group.ttl is None else group.ttl // timedelta(microseconds=1)
    start = None if ttl_us is None else pd.Timestamp(int(bounds["low"]) - ttl_us, unit="us", tz="UTC")
    files = snapshot.files(start, pd.Timestamp(int(bounds["high"]) + 1, unit="us", tz="UTC"))
    if not files:
        return empty
    stored = _read_files(spark, offline, snapshot, files)
    keys = group.join_keys
    created = F.unix_micros(F.col(group.created_time)) if group.created_time else F.lit(None).cast("bigint")
    rows = stored.select(
        *(F.col(k).alias(f"__k_{k}") for k in keys),
        F.unix_micros(F.col(group.event_time)).alias("__t"),
        F.lit(0).alias("__kind"),
        created.alias("__c"),
        F.unix_micros(F.col("_written_at")).alias("__w"),
        F.struct(F.unix_micros(F.col(group.event_time)).alias("event"), *(F.col(f).alias(o) for f, o in outputs)).alias("__v"),
    )
    probes = entities.select(ROW, *(f"__k_{k}" for k in keys), "__t", "__tc", F.lit(1).alias("__kind"))
    both = probes.unionByName(rows, allowMissingColumns=True)
    order = [F.col("__t"), F.col("__kind"), F.col("__c").asc_nulls_first(), F.col("__w").asc_nulls_first()]
    window = Window.partitionBy(*(f"__k_{k}" for k in keys)).orderBy(*order).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    winners = both.withColumn("__win", F.last("__v", ignorenulls=True).over(window)).filter(F.col("__kind") == 1)
    if ttl_us is not None:
        winners = winners.filter(F.col("__win.event") >= F.col("__tc") - F.lit(ttl_us))
    return winners.filter(F.col("__win").isNotNull()).select(ROW, *(F.col(f"__win.{o}").alias(o) for _, o in outputs))


def _read_files(spark: "SparkSession", offline: OfflineStore, snapshot: Any, files: Sequence[str]) -> "DataFrame":
    """The snapshot's files as Spark reads them, with the group's stored schema (columns a file lacks are null)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    group = snapshot.group
    schema = snapshot.dataset.schema
    needed = [*group.join_keys, group.event_time, *([group.created_time] if group.created_time else []), "_written_at", *group.feature_names]
    spark_schema = from_arrow_schema(pa.schema([schema.field(n) for n in dict.fromkeys(needed) if n in schema.names]))
    root = offline.table_uri(group)
    if root.startswith("s3://"):
        root = os.environ.get(S3_SCHEME_ENV, "s3a") + root[len("s3"):]
    elif "://" not in root:
        root = "file://" + os.path.abspath(root)
    try:
        return spark.read.schema(spark_schema).parquet(*(f"{root}/{f}" for f in files))
    except Exception as exc:  # py4j and Spark's analysis errors: say which table could not be read
        raise FeaturePlatformError(f"feature group '{group.name}': Spark cannot read {root}: {type(exc).__name__}: {exc}") from None
