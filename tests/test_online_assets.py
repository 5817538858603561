"""The `["online", group]` assets: wiring and a real Dagster run that syncs to Redis."""

from datetime import datetime

import dagster as dg
import pandas as pd

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from tests.online_fixtures import user


def compute_visits(inputs: dict, start: datetime, end: datetime) -> pd.DataFrame:
    """Users 1..3 with a visit count that encodes the day."""
    return pd.DataFrame({"user_id": [1, 2, 3], "event_time": pd.Timestamp(start), "visits": [start.day * 10 + u for u in (1, 2, 3)]})


visits = FeatureGroup(
    "visits",
    entities=[user],
    features=[Feature("visits", "int64")],
    partitions=DailyPartitions(start="2024-03-01"),
    compute=compute_visits,
)
offline_only = FeatureGroup(
    "archive", entities=[user], features=[Feature("n", "int64")], partitions=None, online=False, compute=lambda i, s, e: None
)


def test_online_groups_get_a_redis_asset_downstream_with_the_same_partitions():
    defs = build_definitions([visits, offline_only])
    specs = {spec.key: (spec, a) for a in defs.assets for spec in a.specs}
    online, online_def = specs[dg.AssetKey(["online", "visits"])]
    assert [d.asset_key for d in online.deps] == [dg.AssetKey(["features", "visits"])]
    assert online_def.partitions_def == specs[dg.AssetKey(["features", "visits"])][1].partitions_def
    assert online.kinds == {"redis"}
    assert dg.AssetKey(["online", "archive"]) not in specs


def test_materializing_the_online_asset_syncs_the_run_partitions(tmp_path, redis_url):
    defs = build_definitions([visits])
    resource = FeatureStoreResource(project="assets", home=str(tmp_path), redis_url=redis_url)
    resource.build_store([visits]).apply()
    assets = [defs.get_assets_def(dg.AssetKey(["features", "visits"])), defs.get_assets_def(dg.AssetKey(["online", "visits"]))]

    for day in ("2024-03-05", "2024-03-04"):
        result = dg.materialize(assets, resources={"feature_platform_store": resource}, partition_key=day)
        assert result.success

    metadata = result.asset_materializations_for_node("online__visits")[0].metadata
    assert (metadata["rows_written"].value, metadata["rows_older_than_online"].value) == (0, 3)
    store = FeatureStore([visits], online_url=redis_url, project="assets", offline_root=tmp_path / "offline")
    store.apply()
    assert store.get_online_features({"user_id": [1, 2, 3]}, ["visits"]).to_dict()["visits"] == [51, 52, 53]
