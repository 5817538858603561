"""In Dagster: runs check the applied definitions, fail at once without retries, and versions live side by side."""

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, RawSource
from feature_platform.definitions.records import group_record, schema_fingerprint
from feature_platform.orchestration import FeatureStoreResource, build_definitions

user = Entity("user", join_keys={"user_id": "int64"})
DAILY = DailyPartitions(start="2024-05-01")


def produce_clicks(start: datetime, end: datetime) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 1, 2], "event_time": [start + timedelta(hours=h) for h in (1, 2, 3)]})


clicks = RawSource("clicks", partitions=DAILY, produce=produce_clicks)


def count_clicks(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    counts = inputs["clicks"].groupby("user_id").size().rename("clicks").reset_index()
    return counts.assign(event_time=start, clicks_f=counts["clicks"].astype("float64"))[["user_id", "event_time", "clicks", "clicks_f"]]


def counts(version: int = 1, dtype: str = "int64") -> FeatureGroup:
    feature = Feature("clicks", dtype) if version == 1 else Feature("clicks_f", "float64")
    def compute(inputs, start, end):
        return count_clicks(inputs, start, end)[["user_id", "event_time", feature.name]]
    return FeatureGroup("counts", entities=[user], features=[feature], partitions=DAILY, compute=compute, sources=["clicks"], version=version)


def run(groups: list[FeatureGroup], resource: FeatureStoreResource, key: list[str]) -> dg.ExecuteInProcessResult:
    defs = build_definitions(groups, sources=[clicks])
    return dg.materialize(defs.assets, selection=[dg.AssetKey(["raw", "clicks"]), dg.AssetKey(key)], partition_key="2024-05-02",
                          resources={"feature_platform_store": resource}, raise_on_error=False)


def test_a_run_of_definitions_never_applied_fails_at_once_with_the_plan_message(tmp_path):
    resource = FeatureStoreResource(home=str(tmp_path), project="dagster")
    result = run([counts()], resource, ["features", "counts"])
    assert not result.success
    assert [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY] == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "feature group 'counts' v1 is not applied yet: run `feature-platform plan`" in failure.step_failure_data.error.message
    assert not resource.build_store([counts()]).offline.exists(counts())


def test_a_run_of_definitions_changed_since_apply_fails_naming_the_change(tmp_path):
    resource = FeatureStoreResource(home=str(tmp_path), project="dagster")
    resource.build_store([counts()]).apply()
    result = run([counts(dtype="float64")], resource, ["features", "counts"])
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "retypes feature(s) ['clicks int64 -> double']" in failure.step_failure_data.error.message
    assert [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY] == []


def test_group_assets_show_their_version_and_fingerprints(tmp_path):
    defs = build_definitions([counts()], sources=[clicks])
    key = dg.AssetKey(["features", "counts"])
    metadata = next(a for a in defs.assets if a.key == key).specs_by_key[key].metadata
    assert metadata["feature_group_version"] == 1
    assert metadata["schema_fingerprint"] == schema_fingerprint(counts())
    assert metadata["definition_fingerprint"] == group_record(counts())["fingerprint"]


def test_two_versions_of_a_group_are_separate_assets_and_both_materialize(tmp_path):
    resource = FeatureStoreResource(home=str(tmp_path), project="dagster")
    both = [counts(), counts(version=2)]
    resource.build_store(both, sources=[clicks]).apply()
    keys = {a.key.to_user_string() for a in build_definitions(both, sources=[clicks]).assets}
    assert {"features/counts", "features/counts/v2", "online/counts", "online/counts/v2"} <= keys
    assert run(both, resource, ["features", "counts"]).success
    assert run(both, resource, ["features", "counts", "v2"]).success
    store = resource.build_store(both)
    assert store.read_group("counts", version=1)["clicks"].tolist() == [2, 1]
    assert store.read_group("counts", version=2)["clicks_f"].tolist() == [2.0, 1.0]
