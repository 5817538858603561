"""Training datasets joined by the Spark engine and written by Spark: the dataset's Delta table without a driver copy.

Spark writes the joined rows as Parquet into the new version's folder; the
library then commits those files as the table's first Delta version (with the
manifest in its commit metadata), so `load_training_dataset` and
`rebuild_training_dataset` read it like any other version. Row numbers
(`_row`) and split labels (`_split`) ride along as entity columns through the
join: for a pandas entity frame they are the DuckDB engine's exactly.
"""

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from deltalake import CommitProperties, convert_to_deltalake

from feature_platform.definitions.concepts import FeatureView
from feature_platform.definitions.references import Catalog
from feature_platform.errors import ArgumentError
from feature_platform.offline.store import OfflineStore
from feature_platform.retrieval.point_in_time import AsOf
from feature_platform.retrieval.spark import S3_SCHEME_ENV, get_historical_features_spark, spark_session
from feature_platform.retrieval.splits import RandomSplit, Split, TimeSplit
from feature_platform.retrieval.training import ROW_COLUMN, SPLIT_COLUMN, PreparedDataset

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def prepare_spark_dataset(
    catalog: Catalog,
    offline: OfflineStore,
    view: FeatureView,
    entity_df: "pd.DataFrame | DataFrame",
    *,
    split: Split | None,
    timestamp_column: str,
    full_feature_names: bool,
    as_of: AsOf,
    spark: "SparkSession | None",
) -> PreparedDataset:
    """The Spark join of `view` with row numbers and split labels, and a writer of its Delta table."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema

    spark = spark_session(spark)
    numbered = _numbered(spark, entity_df, split, timestamp_column)
    retrieval = get_historical_features_spark(
        catalog, offline, numbered, view, spark=spark,
        full_feature_names=full_feature_names, as_of=as_of, timestamp_column=timestamp_column,
    )
    frame = retrieval.frame
    split_counts = None
    if split is not None:
        frame = frame.filter(F.col(SPLIT_COLUMN).isNotNull())
        names = list(split.to_dict().get("fractions", split.to_dict().get("ranges", {})))
        counted = {r[SPLIT_COLUMN]: r["count"] for r in frame.groupBy(SPLIT_COLUMN).count().collect()}
        split_counts = {n: int(counted.get(n, 0)) for n in names}
        row_count = sum(split_counts.values())
    else:
        frame = frame.drop(SPLIT_COLUMN)
        row_count = frame.count()
    # The DuckDB engine's column order: entity columns and features, then the row number and the split.
    tail = [ROW_COLUMN, *([SPLIT_COLUMN] if split is not None else [])]
    frame = frame.select(*(c for c in frame.columns if c not in tail), *tail)
    schema = to_arrow_schema(frame.schema, timezone="UTC")

    def write(uri: str, commit: CommitProperties) -> None:
        _write_delta(spark, frame, uri, offline, commit)

    return PreparedDataset(retrieval.versions, retrieval.resolved, row_count, split_counts, schema, write)


def _numbered(spark: "SparkSession", entity_df: Any, split: Split | None, timestamp_column: str) -> Any:
    """The entity frame with `_row` (its row number) and `_split` (its split label, None: left out)."""
    from pyspark.sql import functions as F

    if isinstance(entity_df, pd.DataFrame):
        numbered = entity_df.assign(**{ROW_COLUMN: np.arange(len(entity_df), dtype=np.int64)})
        if split is None:
            return numbered
        return numbered.assign(**{SPLIT_COLUMN: pd.array(split.assign(entity_df, timestamp_column), dtype="string")})
    if isinstance(split, RandomSplit):
        raise ArgumentError(
            "RandomSplit needs the entity frame's row count and order on one machine: with a Spark entity frame "
            "use TimeSplit, or pass a pandas entity frame"
        )
    frame = entity_df.withColumn(ROW_COLUMN, F.monotonically_increasing_id())
    if split is None:
        return frame
    label = F.lit(None).cast("string")
    if isinstance(split, TimeSplit):
        micros = F.unix_micros(F.col(timestamp_column).cast("timestamp"))
        for name, (start, end) in split.bounds.items():
            inside = F.lit(True)
            if start is not None:
                inside = inside & (micros >= F.lit(start))
            if end is not None:
                inside = inside & (micros < F.lit(end))
            label = F.when(inside, F.lit(name)).otherwise(label)
    return frame.withColumn(SPLIT_COLUMN, label)


def _write_delta(spark: "SparkSession", frame: "DataFrame", uri: str, offline: OfflineStore, commit: CommitProperties) -> None:
    """Spark writes Parquet (microsecond timestamps, as Delta wants) into `uri`; its files become version 0."""
    target = uri
    if uri.startswith("s3://"):
        target = os.environ.get(S3_SCHEME_ENV, "s3a") + uri[len("s3"):]
    elif "://" not in uri:
        target = "file://" + os.path.abspath(uri)
    key = "spark.sql.parquet.outputTimestampType"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, "TIMESTAMP_MICROS")
    try:
        frame.write.mode("errorifexists").option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false").parquet(target)
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
    convert_to_deltalake(uri, storage_options=offline.storage_options or None, commit_properties=commit)

