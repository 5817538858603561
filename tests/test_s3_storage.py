"""The offline store and the landing sensor on S3 (a local moto server), credentials from the environment."""

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

import boto3
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_platform import FeatureStore
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from feature_platform.sources.landing import write_source
from tests.ops_fixtures import GROUPS, click_frame, clicks, daily_clicks, landing_defs, write_days
from tests.s3_fixtures import s3_bucket, s3_endpoint  # noqa: F401 (fixtures)
from tests.test_landing_sensor import evaluate, requested

DAYS = [(date(2024, 5, 1) + timedelta(days=i)).isoformat() for i in range(30)]


def test_a_partition_round_trips_through_delta_on_s3(s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/offline"
    written = write_days(root, ["2024-05-03"])
    store = FeatureStore([daily_clicks], offline_root=root, project="ops")
    store.apply()
    frame = store.read_group("daily_clicks").sort_values("user_id")
    assert written == [0]
    assert frame["clicks"].tolist() == [1, 2]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert "offline/ops/daily_clicks/v1/_delta_log/00000000000000000000.json" in keys


@pytest.mark.slow
def test_concurrent_commits_on_s3_are_all_kept(s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/offline"
    write_days(root, [DAYS[0]])  # the table exists before the race on its log
    halves = [DAYS[1::2], DAYS[2::2]]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        versions = [v for part in pool.map(write_days, [root, root], halves) for v in part]
    store = FeatureStore([daily_clicks], offline_root=root, project="ops")
    store.apply()
    stored_days = sorted(store.read_group("daily_clicks")["event_time"].dt.date.astype(str).unique())
    assert stored_days == DAYS
    assert sorted(versions) == list(range(1, 30))  # each commit got its own version; none overwrote another
    assert [h["version"] for h in store.history("daily_clicks")] == list(range(29, -1, -1))


def test_the_landing_sensor_watches_an_s3_prefix(s3_bucket: str, tmp_path) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(click_frame("2024-05-03", [1]), preserve_index=False), buffer)
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="landing/clicks/2024-05-03/part-0.parquet", Body=buffer.getvalue())
    client.put_object(Bucket=s3_bucket, Key="landing/clicks/2024-05-03/_SUCCESS", Body=b"")
    defs, _ = landing_defs(tmp_path, raw_root=f"s3://{s3_bucket}/landing")
    first = evaluate(defs, None)
    assert requested(first) == [
        (("features", "clicks_3d"), "2024-05-03", "2024-05-05"),
        (("features", "daily_clicks"), "2024-05-03", "2024-05-03"),
    ]
    assert evaluate(defs, first.cursor).run_requests == []
    client.put_object(Bucket=s3_bucket, Key="landing/clicks/2024-05-03/part-1.parquet", Body=buffer.getvalue())
    assert [r.partition_key for r in evaluate(defs, first.cursor).run_requests if r.partition_key] == ["2024-05-03"]


def test_a_group_computes_from_raw_files_on_s3_into_delta_on_s3(s3_bucket: str, tmp_path) -> None:
    raw_root = f"s3://{s3_bucket}/landing"
    write_source(raw_root, clicks, date(2024, 5, 3), click_frame("2024-05-03", [1, 1, 2]))
    resource = FeatureStoreResource(project="ops", home=str(tmp_path), raw_root=raw_root, offline_root=f"s3://{s3_bucket}/offline")
    resource.build_store(GROUPS, sources=[clicks]).apply()  # the registry on S3, beside the tables
    assets = build_definitions(GROUPS, sources=[clicks]).assets
    result = dg.materialize(assets, selection=[dg.AssetKey(["features", "daily_clicks"])], partition_key="2024-05-03",
                            resources={"feature_platform_store": resource})
    assert result.success
    frame = resource.build_store(GROUPS).read_group("daily_clicks").sort_values("user_id")
    assert frame["clicks"].tolist() == [2, 1]
