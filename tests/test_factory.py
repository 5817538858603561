"""The Dagster factory: definitions in, partitioned assets with lineage and metadata out."""

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from feature_platform import DailyPartitions, DefinitionError, Entity, Feature, FeatureGroup, FeatureStore, RawSource
from feature_platform.orchestration import FeatureStoreResource, build_definitions

user = Entity("user", join_keys={"user_id": "int64"})
DAILY = DailyPartitions(start="2024-05-01")


def produce_clicks(start: datetime, end: datetime) -> pd.DataFrame:
    """Three clicks a day: users 1, 1 and 2, at 01:00, 02:00 and 03:00."""
    return pd.DataFrame({"user_id": [1, 1, 2], "event_time": [start + timedelta(hours=h) for h in (1, 2, 3)]})


clicks = RawSource("clicks", partitions=DAILY, produce=produce_clicks, description="Clicks per user.")


def count_clicks_3d(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    """Clicks in the 3 days before each day's start, per user."""
    events = inputs["clicks"]
    rows = []
    for day in pd.date_range(start, end, freq="D", inclusive="left"):
        window = events[(events["event_time"] >= day - timedelta(days=3)) & (events["event_time"] < day)]
        counts = window.groupby("user_id").size().rename("clicks_3d").reset_index()
        rows.append(counts.assign(event_time=day))
    return pd.concat(rows, ignore_index=True)


click_counts = FeatureGroup(
    "click_counts",
    entities=[user],
    features=[Feature("clicks_3d", "int64", "Clicks in the 3 days before.")],
    partitions=DAILY,
    description="Rolling click counts.",
    owner="team:growth",
    tags={"domain": "engagement", "tier": "silver"},
    compute=count_clicks_3d,
    sources=["clicks"],
    lookback=timedelta(days=3),
)


@pytest.fixture
def defs() -> dg.Definitions:
    return build_definitions([click_counts], sources=[clicks])


@pytest.fixture
def resource(tmp_path: Path) -> FeatureStoreResource:
    resource = FeatureStoreResource(home=str(tmp_path), project="test")
    resource.build_store([click_counts], sources=[clicks]).apply()
    return resource


def asset_def(defs: dg.Definitions, *path: str) -> dg.AssetsDefinition:
    return next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(list(path)))


def test_each_group_becomes_a_partitioned_asset_in_its_domain(defs: dg.Definitions) -> None:
    asset = asset_def(defs, "features", "click_counts")
    spec = next(iter(asset.specs))
    assert asset.partitions_def == dg.DailyPartitionsDefinition(start_date="2024-05-01")
    assert spec.group_name == "engagement"
    assert spec.owners == ["team:growth"]
    assert spec.kinds == {"deltalake"}
    assert spec.tags == {"tier": "silver", "dagster/kind/deltalake": ""}
    assert spec.description == "Rolling click counts."


def test_group_asset_depends_on_its_sources_over_the_lookback_window(defs: dg.Definitions) -> None:
    asset = asset_def(defs, "features", "click_counts")
    raw_key = dg.AssetKey(["raw", "clicks"])
    assert asset.dependency_keys == {raw_key}
    mapping = asset.get_partition_mapping(raw_key)
    assert mapping == dg.TimeWindowPartitionMapping(start_offset=-3, end_offset=0)


def test_materializing_a_partition_writes_the_rolling_window_to_delta(defs: dg.Definitions, resource: FeatureStoreResource) -> None:
    assets = [asset_def(defs, "raw", "clicks"), asset_def(defs, "features", "click_counts")]
    for day in ("2024-05-01", "2024-05-02", "2024-05-03"):
        assert dg.materialize(assets[:1], partition_key=day, resources={"feature_platform_store": resource}).success
    result = dg.materialize(assets[1:], partition_key="2024-05-03", resources={"feature_platform_store": resource})
    assert result.success
    store = resource.build_store([click_counts])
    rows = store.read_group("click_counts").sort_values("user_id")
    assert rows["clicks_3d"].tolist() == [4, 2]  # two days of clicks before 2024-05-03
    assert set(rows["event_time"]) == {pd.Timestamp("2024-05-03", tz="UTC")}
    assert store.history("click_counts")[0]["dagster_run_id"] == result.run_id


def test_materialization_metadata_has_rows_version_schema_and_statistics(defs: dg.Definitions, resource: FeatureStoreResource) -> None:
    assets = [asset_def(defs, "raw", "clicks"), asset_def(defs, "features", "click_counts")]
    dg.materialize(assets[:1], partition_key="2024-05-01", resources={"feature_platform_store": resource})
    result = dg.materialize(assets, partition_key="2024-05-02", resources={"feature_platform_store": resource})
    metadata = result.asset_materializations_for_node("features__click_counts")[0].metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["delta_version"].value == 0
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns] == ["user_id", "event_time", "clicks_3d", "_partition"]
    assert metadata["mean/clicks_3d"].value == 1.5
    assert metadata["table_uri"].value.endswith("/offline/test/click_counts/v1")


def test_a_range_run_writes_every_partition_in_one_commit(defs: dg.Definitions, resource: FeatureStoreResource) -> None:
    assets = [asset_def(defs, "raw", "clicks"), asset_def(defs, "features", "click_counts")]
    tags = {"dagster/asset_partition_range_start": "2024-05-01", "dagster/asset_partition_range_end": "2024-05-05"}
    assert dg.materialize(assets, resources={"feature_platform_store": resource}, tags=tags).success
    store = resource.build_store([click_counts])
    rows = store.read_group("click_counts")
    assert sorted(rows["event_time"].dt.strftime("%m-%d").unique()) == ["05-02", "05-03", "05-04", "05-05"]
    assert [h["version"] for h in store.history("click_counts")] == [0]


def test_a_failing_compute_commits_nothing(resource: FeatureStoreResource) -> None:
    broken = FeatureGroup(
        "click_counts", entities=[user], features=[Feature("clicks_3d", "int64")], partitions=DAILY,
        compute=lambda inputs, start, end: inputs["clicks"].assign(clicks_3d="many"), sources=["clicks"],
    )
    defs = build_definitions([broken], sources=[clicks])
    assets = [asset_def(defs, "raw", "clicks"), asset_def(defs, "features", "click_counts")]
    resource.build_store([broken], sources=[clicks]).apply()  # the same schema: recorded as is
    result = dg.materialize(assets, partition_key="2024-05-01", resources={"feature_platform_store": resource}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "feature group 'click_counts', column 'clicks_3d': dtype" in failure.step_failure_data.error.message
    assert not resource.build_store([broken]).offline.exists(broken)


def test_unknown_source_is_a_definition_error() -> None:
    orphan = FeatureGroup("orphan", entities=[user], features=[Feature("x")], compute=count_clicks_3d, sources=["nowhere"])
    with pytest.raises(DefinitionError, match=r"unknown sources \['nowhere'\]"):
        build_definitions([orphan], sources=[clicks])


def test_each_partitioned_group_gets_a_daily_schedule(defs: dg.Definitions, resource: FeatureStoreResource) -> None:
    resolved = dg.Definitions.merge(defs, dg.Definitions(resources={"feature_platform_store": resource}))
    schedule = resolved.resolve_schedule_def("click_counts_daily")
    assert schedule.cron_schedule == "0 1 * * *"  # an hour after the day closes, so late raw files have landed
    assert schedule.job_name == "materialize_click_counts"


def test_store_from_a_resource_uses_its_home(resource: FeatureStoreResource, tmp_path: Path) -> None:
    store: FeatureStore = resource.build_store([click_counts])
    assert store.offline.table_uri(click_counts) == f"{tmp_path}/offline/test/click_counts/v1"
