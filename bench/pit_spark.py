"""The Spark engine beside the DuckDB engine on Feast's workload (SMALL, LARGE); prints JSON.

    FEAST_DATA=/tmp/peers-feast/data/small PYTHONPATH=. .venv/bin/python bench/pit_spark.py [--layout unpartitioned]

The tables are bench/pit_feast.py's (written once, not timed). DuckDB: `get_historical_features`
into pandas. Spark (`local[2]`, this machine's two cores): the entity frame read by Spark from
its parquet file (in microseconds), the join forced to completion with the `noop` writer (nothing collected), after
a warm-up join on a slice so the JVM's start is not counted. Both answers are checked against
each other on aggregates (matched rows, sums of two features) computed by each engine.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pit_feast import FEATURES, prepare, store_for  # noqa: E402


def checksums_pandas(frame) -> dict[str, float]:
    return {"rows": len(frame), "matched_stats": int(frame["s_f0"].notna().sum()), "matched_activity": int(frame["a_i0"].notna().sum()),
            "sum_s_i0": int(frame["s_i0"].sum()), "sum_a_i0": int(frame["a_i0"].sum())}


def checksums_spark(frame) -> dict[str, float]:
    from pyspark.sql import functions as F

    row = frame.agg(F.count(F.lit(1)).alias("rows"), F.count("s_f0").alias("matched_stats"), F.count("a_i0").alias("matched_activity"),
                    F.sum("s_i0").alias("sum_s_i0"), F.sum("a_i0").alias("sum_a_i0")).first().asDict()
    return {k: int(v or 0) for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=["partitioned", "unpartitioned"], default="unpartitioned")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    args = parser.parse_args()
    data = Path(os.environ["FEAST_DATA"])
    store = store_for(data, args.layout)
    prepare(store, data)
    entity_df = pq.read_table(data / "entity_df.parquet").to_pandas()

    started = time.perf_counter()
    duck = store.get_historical_features(entity_df, FEATURES, timestamp_column="event_timestamp")
    duck_s = time.perf_counter() - started
    expected = checksums_pandas(duck)
    del duck

    from pyspark.sql import SparkSession

    began = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions)).config("spark.driver.memory", "6g")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session_s = time.perf_counter() - began
    # Spark reads microsecond timestamps only (Parquet's nanosecond ones are refused): a copy in microseconds.
    micros = Path(os.environ.get("PIT_FEAST_ROOT", "/tmp/perf-pit-feast")) / data.name / "entity_df_us.parquet"
    if not micros.exists():
        table = pq.read_table(data / "entity_df.parquet")
        pq.write_table(table.cast(pa.schema([f.with_type(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f
                                             for f in table.schema])), micros)
    entities = spark.read.parquet(str(micros))
    warm = store.get_historical_features(entities.limit(1000), FEATURES, engine="spark", spark=spark, timestamp_column="event_timestamp")
    warm.write.format("noop").mode("overwrite").save()
    started = time.perf_counter()
    joined = store.get_historical_features(entities, FEATURES, engine="spark", spark=spark, timestamp_column="event_timestamp")
    joined.write.format("noop").mode("overwrite").save()
    spark_s = time.perf_counter() - started
    got = checksums_spark(joined)
    spark.stop()
    print(json.dumps({
        "data": data.name, "layout": args.layout, "entity_rows": len(entity_df),
        "duckdb_s": round(duck_s, 2), "spark_s": round(spark_s, 2), "spark_session_start_s": round(session_s, 2),
        "spark_over_duckdb": round(spark_s / duck_s, 1), "same_answer": got == expected, "checksums": expected,
        "spark_checksums": got if got != expected else "same",
    }))


if __name__ == "__main__":
    main()
