"""The training dataset asset: a real Dagster run from raw labels through a feature group to a stored dataset."""

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from feature_platform import (
    DailyPartitions,
    Entity,
    Feature,
    FeatureGroup,
    FeatureView,
    RandomSplit,
    RawSource,
    TrainingDatasetDefinition,
)
from feature_platform.orchestration import FeatureStoreResource, build_definitions

user = Entity("user", join_keys={"user_id": "int64"})


def produce_clicks(start: datetime, end: datetime) -> pd.DataFrame:
    """Ten clicks a day: users 0..4 twice, at 01:00 and 13:00, labelled `bought` for even users."""
    rng = np.random.default_rng(start.toordinal())
    return pd.DataFrame(
        {
            "user_id": np.tile(np.arange(5), 2).astype("int64"),
            "event_time": [start + timedelta(hours=1 + 12 * (i // 5)) for i in range(10)],
            "price": rng.integers(1, 100, 10).astype("float64"),
            "bought": np.tile(np.arange(5) % 2 == 0, 2),
        }
    )


def compute_spend(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    """Per user and day, the day's total price, known at the last microsecond of the day."""
    clicks = inputs["clicks"]
    clicks = clicks[(clicks["event_time"] >= start) & (clicks["event_time"] < end)]
    clicks = clicks.assign(day=clicks["event_time"].dt.floor("D"))
    totals = clicks.groupby(["user_id", "day"], as_index=False)["price"].sum().rename(columns={"price": "spend_1d"})
    totals["event_time"] = totals.pop("day") + timedelta(days=1) - timedelta(microseconds=1)
    return totals


clicks = RawSource("clicks", partitions=DailyPartitions(start="2024-06-01"), produce=produce_clicks)
spend = FeatureGroup(
    "user_spend", entities=[user], features=[Feature("spend_1d", "float64")],
    partitions=DailyPartitions(start="2024-06-01"), compute=compute_spend, sources=["clicks"],
)
view = FeatureView("shopping", features=["user_spend:spend_1d"])
training = TrainingDatasetDefinition(
    "shopping_training", view="shopping", source="clicks", columns=["user_id", "event_time", "bought"],
    label="bought", first_day="2024-06-02", last_day="2024-06-03", split=RandomSplit({"train": 0.8, "test": 0.2}, seed=1),
)


def test_training_dataset_asset_materializes_after_its_groups(tmp_path: Path):
    defs = build_definitions([spend], [view], [clicks], training_datasets=[training])
    resource = FeatureStoreResource(home=str(tmp_path), project="shop")
    resource.build_store([spend], [view], [clicks]).apply()
    assets = {a.key: a for a in defs.assets}
    training_asset = assets[dg.AssetKey(["training", "shopping_training"])]
    assert set(training_asset.dependency_keys) == {dg.AssetKey(["raw", "clicks"]), dg.AssetKey(["features", "user_spend"])}

    instance = dg.DagsterInstance.ephemeral()
    upstream = [assets[dg.AssetKey(["raw", "clicks"])], assets[dg.AssetKey(["features", "user_spend"])]]
    tags = {"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-03"}
    assert dg.materialize(upstream, resources={"feature_platform_store": resource}, instance=instance, tags=tags).success
    result = dg.materialize([training_asset], resources={"feature_platform_store": resource}, instance=instance)
    assert result.success

    metadata = result.asset_materializations_for_node(training_asset.op.name)[0].metadata
    assert metadata["dagster/row_count"].value == 20
    assert metadata["dataset_version"].value == 1
    assert metadata["split_counts"].value == {"train": 16, "test": 4}

    store = resource.build_store([spend], [view], [clicks])
    stored = store.load_training_dataset("shopping_training")
    # A 01:00 click sees the previous day's spend; a 13:00 click sees it too (today's total is known at midnight).
    previous_day = produce_clicks(datetime(2024, 6, 1), datetime(2024, 6, 2)).groupby("user_id")["price"].sum()
    first = stored[stored["event_time"] == pd.Timestamp("2024-06-02 01:00", tz="UTC")]
    assert len(first) == 5
    assert first["spend_1d"].tolist() == previous_day.loc[first["user_id"]].tolist()
    assert stored["bought"].tolist() == ([True, False, True, False, True] * 4)
    assert store.list_training_datasets()[0]["group_versions"] == {"user_spend": 0}
