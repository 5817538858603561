"""Online values carry their layout id: a value is decoded only under the layout it was written with (or an earlier prefix)."""

from datetime import datetime, timezone

import pandas as pd
import pytest

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup
from feature_platform.definitions.contract import conform
from feature_platform.definitions.references import Catalog
from feature_platform.errors import DefinitionMismatchError
from feature_platform.online.reads import PRESENT, build_plan, read_online
from feature_platform.online.store import OnlineStore

user = Entity("user", join_keys={"user_id": "int64"})


def scores(*features: Feature) -> FeatureGroup:
    return FeatureGroup("scores", entities=[user], features=list(features), partitions=DailyPartitions(start="2024-01-01"))


def write(online: OnlineStore, group: FeatureGroup, frame: pd.DataFrame) -> None:
    online.write(group, conform(group, frame, written_at=datetime.now(timezone.utc)))


def read(online: OnlineStore, group: FeatureGroup, features: list[str]) -> dict:
    plan = build_plan(Catalog([group]).resolve([f"scores:{f}" for f in features]), online.project)
    return read_online(online, plan, [{"user_id": 1}, {"user_id": 2}]).to_dict(include_statuses=True)


@pytest.fixture
def online(redis_url):
    store = OnlineStore(redis_url, project="layout")
    yield store
    store.close()


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "event_time": pd.Timestamp("2024-01-02 12:00", tz="UTC"), **columns})


def test_a_feature_inserted_mid_list_never_reads_its_neighbours_values(online):
    written = scores(Feature("score", "int64"), Feature("label", "string"))
    write(online, written, frame(score=[10, 20], label=["a", "b"]))
    inserted = scores(Feature("score", "int64"), Feature("rank", "int64"), Feature("label", "string"))
    with pytest.raises(DefinitionMismatchError, match=r"feature group 'scores' v1: an online value was written with layout .* Run `feature-platform plan`"):
        read(online, inserted, ["rank"])


def test_a_feature_retyped_in_place_is_not_decoded_under_the_new_type(online):
    written = scores(Feature("score", "int64"))
    write(online, written, frame(score=[10, 20]))
    with pytest.raises(DefinitionMismatchError, match="feature group 'scores' v1"):
        read(online, scores(Feature("score", "float64")), ["score"])


def test_values_written_before_a_feature_was_appended_read_it_as_null(online):
    write(online, scores(Feature("score", "int64")), frame(score=[10, 20]))
    appended = scores(Feature("score", "int64"), Feature("rank", "int64"))
    assert read(online, appended, ["score", "rank"]) == {
        "user_id": [1, 2], "score": [10, 20], "rank": [None, None],
        "score__status": [PRESENT, PRESENT], "rank__status": [PRESENT, PRESENT],
    }


def test_values_written_after_the_append_read_every_feature(online):
    write(online, scores(Feature("score", "int64")), frame(score=[10, 20]))
    appended = scores(Feature("score", "int64"), Feature("rank", "int64"))
    write(online, appended, frame(score=[11, 21], rank=[1, 2]).assign(event_time=pd.Timestamp("2024-01-03", tz="UTC")))
    assert read(online, appended, ["rank", "score"])["rank"] == [1, 2]


def test_values_of_a_longer_layout_are_refused_by_older_definitions(online):
    appended = scores(Feature("score", "int64"), Feature("rank", "int64"))
    write(online, appended, frame(score=[10, 20], rank=[1, 2]))
    with pytest.raises(DefinitionMismatchError, match="feature group 'scores' v1"):
        read(online, scores(Feature("score", "int64")), ["score"])
