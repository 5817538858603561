"""Sources of the kinds teams have: SQL tables, files by glob, Delta/Parquet tables in place, a team's Dagster asset.

Each reads only the days a run needs (lookback included) and names a missing day instead of
handing the compute an empty frame; compute functions take pandas, Polars or Arrow, or are SQL.
"""

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy
from deltalake import write_deltalake

from feature_platform import (
    AssetSource,
    DailyPartitions,
    Entity,
    Feature,
    FeatureGroup,
    FileSource,
    SourceError,
    SqlSource,
    TableSource,
)
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from tests.s3_fixtures import s3_bucket, s3_endpoint  # noqa: F401 (fixtures)

DAYS = DailyPartitions(start="2024-05-01")
START, END = datetime(2024, 5, 3, tzinfo=timezone.utc), datetime(2024, 5, 4, tzinfo=timezone.utc)
POSTGRES_URL = "postgresql+psycopg2://postgres:not-a-real-secret@127.0.0.1:5432/test"
customer = Entity("customer", join_keys={"customer_id": "int64"})


def orders_frame(days: list[str]) -> pd.DataFrame:
    """Two orders a day at 10:00 and 20:00: customer 1 spends 10 * day-of-month, customer 2 one more."""
    rows = []
    for day in days:
        stamp = pd.Timestamp(day, tz="UTC")
        rows += [
            {"order_id": len(rows) + 1, "customer_id": 1, "amount": 10.0 * stamp.day, "ordered_at": stamp + timedelta(hours=10)},
            {"order_id": len(rows) + 2, "customer_id": 2, "amount": 10.0 * stamp.day + 1, "ordered_at": stamp + timedelta(hours=20)},
        ]
    return pd.DataFrame(rows)


def spend(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    """Amount per customer over the day and the one before (a one-day lookback)."""
    orders = inputs["orders"]
    return orders.groupby("customer_id", as_index=False).agg(spend_2d=("amount", "sum")).assign(event_time=start)


def spend_group(**options) -> FeatureGroup:
    return FeatureGroup("customer_spend", entities=[customer], features=[Feature("spend_2d", "float64")], partitions=DAYS,
                        lookback=timedelta(days=1), sources=["orders"], compute=options.pop("compute", spend), **options)


def materialize(group: FeatureGroup, sources: list, tmp_path: Path, day: str = "2024-05-03", extra: list | None = None,
                resources: dict | None = None) -> tuple[dg.ExecuteInProcessResult, pd.DataFrame]:
    store = FeatureStoreResource(project="sources", home=str(tmp_path / "home"))
    store.build_store([group]).apply()
    defs = build_definitions([group], sources=sources)
    asset = next(a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(["features", group.name]))
    result = dg.materialize([asset, *(extra or [])], selection=[asset.key], partition_key=day, raise_on_error=False,
                            resources={"feature_platform_store": store, **(resources or {})})
    frame = store.build_store([group]).read_group(group.name) if result.success else pd.DataFrame()
    return result, frame


def failure(result: dg.ExecuteInProcessResult) -> str:
    return next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message


# SQL through SQLAlchemy, against the local PostgreSQL


def postgres_problem() -> str | None:
    try:
        with sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2}).connect():
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@pytest.fixture
def orders_table(monkeypatch: pytest.MonkeyPatch) -> str:
    """A uniquely named `orders` table on 2024-05-01..03 in the local PostgreSQL; its URL in ORDERS_DATABASE_URL."""
    problem = postgres_problem()
    if problem:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {problem}")
    name = f"adoption_orders_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    orders_frame(["2024-05-01", "2024-05-02", "2024-05-03"]).to_sql(name, engine, index=False)
    monkeypatch.setenv("ORDERS_DATABASE_URL", POSTGRES_URL)
    yield name
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP TABLE "{name}"'))
    engine.dispose()


@pytest.mark.postgres
def test_a_sql_table_is_read_for_the_run_window_and_its_lookback_only(orders_table: str) -> None:
    source = SqlSource("orders", url_env="ORDERS_DATABASE_URL", table=orders_table, time_column="ordered_at", partitions=DAYS)

    frame = source.read("", START - timedelta(days=1), END)

    assert sorted(frame["ordered_at"].dt.day.unique()) == [2, 3]
    assert frame["amount"].tolist() == [20.0, 21.0, 30.0, 31.0]


@pytest.mark.postgres
def test_a_sql_query_feeds_a_feature_group_materialized_by_dagster(orders_table: str, tmp_path: Path) -> None:
    source = SqlSource("orders", url_env="ORDERS_DATABASE_URL", query=f'SELECT customer_id, amount, ordered_at FROM "{orders_table}"',
                       time_column="ordered_at", partitions=DAYS)

    result, stored = materialize(spend_group(), [source], tmp_path)

    assert result.success
    assert stored[["customer_id", "spend_2d"]].to_dict("records") == [{"customer_id": 1, "spend_2d": 50.0}, {"customer_id": 2, "spend_2d": 52.0}]


@pytest.mark.postgres
def test_a_day_without_rows_in_the_table_is_a_missing_partition(orders_table: str) -> None:
    source = SqlSource("orders", url_env="ORDERS_DATABASE_URL", table=orders_table, time_column="ordered_at", partitions=DAYS)

    with pytest.raises(SourceError, match=r"SQL source 'orders' has no data for 2024-05-04 \(table adoption_orders_\w+ in the database at \$ORDERS_DATABASE_URL\)"):
        source.read("", START, END + timedelta(days=1))


@pytest.mark.postgres
def test_errors_name_the_url_variable_never_the_url(orders_table: str) -> None:
    source = SqlSource("orders", url_env="ORDERS_DATABASE_URL", table="no_such_table_here", time_column="ordered_at", partitions=DAYS)

    with pytest.raises(SourceError) as raised:
        source.read("", START, END)

    assert "$ORDERS_DATABASE_URL" in str(raised.value) and "not-a-real-secret" not in str(raised.value)
    assert "no_such_table_here" in str(raised.value)


def test_an_unset_url_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    source = SqlSource("orders", url_env="ORDERS_DATABASE_URL", table="orders", time_column="ordered_at", partitions=DAYS)

    with pytest.raises(SourceError, match="the environment variable ORDERS_DATABASE_URL .* is not set"):
        source.read("", START, END)


# Files by glob


def test_csv_files_by_glob_are_filtered_to_the_window(tmp_path: Path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    for day in ("2024-05-01", "2024-05-02", "2024-05-03"):
        orders_frame([day]).to_csv(folder / f"orders-{day}.csv", index=False)
    source = FileSource("orders", path=str(folder / "*.csv"), time_column="ordered_at", partitions=DAYS)

    frame = source.read("", START - timedelta(days=1), END)

    assert frame["amount"].tolist() == [20.0, 21.0, 30.0, 31.0]


def test_json_lines_per_day_read_only_the_needed_days_and_name_a_missing_one(tmp_path: Path) -> None:
    for day in ("2024-05-02", "2024-05-03"):
        (tmp_path / day).mkdir()
        orders_frame([day]).assign(ordered_at=lambda f: f["ordered_at"].astype(str)).to_json(tmp_path / day / "part.jsonl", orient="records", lines=True)
    source = FileSource("orders", path=str(tmp_path / "{day}" / "*.jsonl"), time_column="ordered_at", partitions=DAYS)

    assert source.read("", START - timedelta(days=1), END)["amount"].tolist() == [20.0, 21.0, 30.0, 31.0]
    with pytest.raises(SourceError, match=r"file source 'orders' has no file for 2024-05-01"):
        source.read("", START - timedelta(days=2), END)


def test_parquet_files_on_s3_are_read_in_place(s3_bucket: str) -> None:
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from feature_platform.sources.landing import s3_filesystem

    fs, base = s3_filesystem(f"s3://{s3_bucket}/orders")
    pq.write_table(pa.Table.from_pandas(orders_frame(["2024-05-02", "2024-05-03"])), f"{base}/part-0.parquet", filesystem=fs)
    source = FileSource("orders", path=f"s3://{s3_bucket}/orders/*.parquet", time_column="ordered_at", partitions=DAYS)

    assert source.read("", START, END)["amount"].tolist() == [30.0, 31.0]
    assert isinstance(fs, pafs.S3FileSystem)


# Existing Delta and Parquet tables, in place


def test_an_existing_delta_table_is_read_in_place_with_the_window_pushed_down(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake" / "orders")
    write_deltalake(uri, orders_frame(["2024-05-01", "2024-05-02", "2024-05-03"]))
    source = TableSource("orders", uri=uri, format="delta", time_column="ordered_at", partitions=DAYS)

    assert source.read("", START - timedelta(days=1), END)["amount"].tolist() == [20.0, 21.0, 30.0, 31.0]
    with pytest.raises(SourceError, match="table source 'orders' has no data for 2024-05-04"):
        source.read("", END, END + timedelta(days=1))


def test_a_hive_partitioned_parquet_table_is_read_in_place(tmp_path: Path) -> None:
    frame = orders_frame(["2024-05-02", "2024-05-03"]).assign(ordered_at=lambda f: f["ordered_at"].dt.tz_localize(None))
    frame["day"] = frame["ordered_at"].dt.date.astype(str)
    frame.to_parquet(tmp_path / "orders", partition_cols=["day"])
    source = TableSource("orders", uri=str(tmp_path / "orders"), format="parquet", time_column="ordered_at", partitions=DAYS)

    read = source.read("", START, END)

    assert read["amount"].tolist() == [30.0, 31.0]
    assert str(read["ordered_at"].dt.tz) == "UTC"  # naive times are UTC


def test_a_missing_delta_table_is_named() -> None:
    with pytest.raises(SourceError, match="there is no Delta table at /nowhere/orders"):
        TableSource("orders", uri="/nowhere/orders", time_column="ordered_at", partitions=DAYS).read("", START, END)


# A team's own Dagster asset, through its IO manager


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2024-05-01"), key=["shop", "orders"])
def shop_orders(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return orders_frame([context.partition_key])


def test_a_partitioned_team_asset_feeds_a_group_through_its_io_manager_with_the_lookback(tmp_path: Path) -> None:
    source = AssetSource("orders", asset_key=["shop", "orders"], partitions=DAYS)
    io = {"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))}
    for day in ("2024-05-02", "2024-05-03"):
        assert dg.materialize([shop_orders], partition_key=day, resources=io).success

    result, stored = materialize(spend_group(), [source], tmp_path, extra=[shop_orders], resources=io)

    assert result.success
    assert stored[["customer_id", "spend_2d"]].to_dict("records") == [{"customer_id": 1, "spend_2d": 50.0}, {"customer_id": 2, "spend_2d": 52.0}]


def test_a_team_asset_partition_never_materialized_fails_once_naming_it(tmp_path: Path) -> None:
    source = AssetSource("orders", asset_key=["shop", "orders"], partitions=DAYS)
    io = {"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))}
    assert dg.materialize([shop_orders], partition_key="2024-05-03", resources=io).success

    result, _ = materialize(spend_group(), [source], tmp_path, extra=[shop_orders], resources=io)

    assert not result.success
    assert "asset source 'orders' has no data for 2024-05-02 (asset shop/orders): materialize shop/orders for those days first" in failure(result)
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_the_group_depends_on_the_team_asset_in_one_lineage_graph() -> None:
    source = AssetSource("orders", asset_key=["shop", "orders"], partitions=DAYS)
    team = dg.Definitions(assets=[shop_orders], resources={"feature_platform_store": FeatureStoreResource()})
    defs = dg.Definitions.merge(team, build_definitions([spend_group()], sources=[source]))

    graph = defs.resolve_asset_graph()

    assert graph.get(dg.AssetKey(["features", "customer_spend"])).parent_keys == {dg.AssetKey(["shop", "orders"])}


# Frames the compute function takes and returns


def spend_polars(inputs: dict[str, pl.DataFrame], start: datetime, end: datetime) -> pl.DataFrame:
    return inputs["orders"].group_by("customer_id").agg(pl.col("amount").sum().alias("spend_2d")).with_columns(event_time=pl.lit(start)).sort("customer_id")


def spend_arrow(inputs: dict[str, pa.Table], start: datetime, end: datetime) -> pa.Table:
    grouped = inputs["orders"].group_by("customer_id").aggregate([("amount", "sum")]).rename_columns(["customer_id", "spend_2d"])
    return grouped.append_column("event_time", pa.array([start] * grouped.num_rows, pa.timestamp("us", tz="UTC"))).sort_by("customer_id")


SPEND_SQL = "SELECT customer_id, sum(amount) AS spend_2d, $start::TIMESTAMPTZ AS event_time FROM orders GROUP BY customer_id ORDER BY customer_id"


@pytest.mark.parametrize(("frames", "compute"), [("polars", spend_polars), ("arrow", spend_arrow), ("pandas", SPEND_SQL)])
def test_compute_takes_polars_arrow_or_is_sql(tmp_path: Path, frames: str, compute) -> None:
    uri = str(tmp_path / "lake" / "orders")
    write_deltalake(uri, orders_frame(["2024-05-02", "2024-05-03"]))
    source = TableSource("orders", uri=uri, time_column="ordered_at", partitions=DAYS)

    result, stored = materialize(spend_group(compute=compute, frames=frames), [source], tmp_path)

    assert result.success, failure(result)
    assert stored[["customer_id", "spend_2d"]].to_dict("records") == [{"customer_id": 1, "spend_2d": 50.0}, {"customer_id": 2, "spend_2d": 52.0}]
    assert (stored["event_time"] == pd.Timestamp("2024-05-03", tz="UTC")).all()
