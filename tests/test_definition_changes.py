"""Definitions that change: every change kind is applied correctly in place or refused, on real Delta tables and Redis."""

from pathlib import Path

import pandas as pd
import pytest

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView
from feature_platform.applying import ApplyRefused
from feature_platform.errors import DefinitionMismatchError

user = Entity("user", join_keys={"user_id": "int64"})
DAY = "2024-01-02"


def scores(*features: Feature, version: int = 1, **options) -> FeatureGroup:
    return FeatureGroup(
        "scores", entities=[user], features=list(features) or [Feature("score", "int64"), Feature("label", "string")],
        partitions=DailyPartitions(start="2024-01-01"), version=version, **options,
    )


def store_of(tmp_path: Path, redis_url: str | None, *groups: FeatureGroup, views: tuple[FeatureView, ...] = ()) -> FeatureStore:
    return FeatureStore(list(groups), list(views), offline_root=tmp_path / "offline", online_url=redis_url, project="changes")


def rows(day: str = DAY, **features) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "event_time": pd.Timestamp(f"{day} 12:00", tz="UTC"), **features})


@pytest.fixture
def applied(tmp_path, redis_url) -> FeatureStore:
    """`scores` v1 (score int64, label string) applied, one partition written and synced."""
    store = store_of(tmp_path, redis_url, scores())
    store.apply()
    store.write_partition("scores", DAY, rows(score=[10, 20], label=["a", "b"]))
    store.sync_to_online("scores")
    return store


def item(plan, kind: str, name: str, version: int):
    return next(i for i in plan.items if (i.kind, i.name, i.version) == (kind, name, version))


# The three corruptions of issue 11


def test_a_feature_inserted_mid_list_with_the_version_unchanged_is_refused_everywhere(tmp_path, redis_url, applied):
    changed = store_of(tmp_path, redis_url, scores(Feature("score", "int64"), Feature("rank", "int64"), Feature("label", "string")))
    plan = item(changed.plan(), "group", "scores", 1)
    assert plan.action == "refused"
    assert plan.details[0] == "inserts feature(s) ['rank'] before existing ones (new features go at the end)"
    assert "bump the version of feature group 'scores' (version=2)" in plan.details[1]
    with pytest.raises(ApplyRefused, match="inserts feature"):
        changed.apply()
    with pytest.raises(DefinitionMismatchError, match=r"feature group 'scores' v1 differs from what was applied \(inserts feature"):
        changed.get_online_features([{"user_id": 1}], ["scores:rank"])
    assert applied.get_online_features([{"user_id": 1}], ["scores:label"]).to_dict()["label"] == ["a"]


def test_a_dtype_changed_in_place_is_refused_and_a_new_version_stores_exact_values(tmp_path, redis_url, applied):
    retyped = store_of(tmp_path, redis_url, scores(Feature("score", "float64"), Feature("label", "string")))
    assert item(retyped.plan(), "group", "scores", 1).details[0] == "retypes feature(s) ['score int64 -> double']; stored values would be cast"
    before = applied.history("scores")[0]["version"]
    with pytest.raises(DefinitionMismatchError, match="retypes feature"):
        retyped.write_partition("scores", DAY, rows(score=[0.43, 2.71], label=["a", "b"]))
    assert applied.history("scores")[0]["version"] == before
    bumped = store_of(tmp_path, redis_url, scores(Feature("score", "float64"), Feature("label", "string"), version=2))
    bumped.apply()
    bumped.write_partition("scores", DAY, rows(score=[0.43, 2.71], label=["a", "b"]))
    assert bumped.read_group("scores")["score"].tolist() == [0.43, 2.71]
    assert applied.read_group("scores")["score"].tolist() == [10, 20]


def test_rebuild_after_a_version_bump_reads_the_recorded_version_and_equals_the_stored_copy(tmp_path, redis_url, applied):
    view = FeatureView("model", features=["scores:score"])
    with_view = store_of(tmp_path, redis_url, scores(), views=(view,))
    with_view.apply()
    entities = pd.DataFrame({"user_id": [1, 2, 3], "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
    dataset = with_view.create_training_dataset("model", entities)
    assert dataset.manifest["groups"] == [
        {"name": "scores", "version": 1, "delta_version": 0, "schema_fingerprint": dataset.manifest["groups"][0]["schema_fingerprint"]}
    ]
    v2 = scores(Feature("score", "float64"), version=2)
    bumped = store_of(tmp_path, redis_url, scores(), v2, views=(view,))
    bumped.apply()
    bumped.write_partition("scores", DAY, rows(score=[0.5, 0.25]).assign(user_id=[1, 3]))
    stored = bumped.load_training_dataset("model", 1)
    assert stored["score"].tolist()[:2] == [10, 20]
    pd.testing.assert_frame_equal(bumped.rebuild_training_dataset("model", 1), stored)
    only_v2 = store_of(tmp_path, redis_url, v2, views=(view,))  # v1 dropped from the code: the registry still knows it
    pd.testing.assert_frame_equal(only_v2.rebuild_training_dataset("model", 1), stored)


# Compatible changes in place


def test_a_feature_appended_in_place_reads_null_for_old_rows_offline_and_online(tmp_path, redis_url, applied):
    appended = store_of(tmp_path, redis_url, scores(Feature("score", "int64"), Feature("label", "string"), Feature("rank", "int64")))
    plan = item(appended.plan(), "group", "scores", 1)
    assert (plan.action, plan.details) == (
        "update in place", ("adds nullable feature(s) ['rank'] at the end (rows written before read null, offline and online)",),
    )
    appended.apply()
    assert appended.read_group("scores")["rank"].isna().all()
    online = appended.get_online_features([{"user_id": 1}, {"user_id": 2}], ["scores:score", "scores:rank"]).to_dict(include_statuses=True)
    assert online == {"user_id": [1, 2], "score": [10, 20], "rank": [None, None],
                      "score__status": ["PRESENT", "PRESENT"], "rank__status": ["PRESENT", "PRESENT"]}
    appended.write_partition("scores", "2024-01-03", rows("2024-01-03", score=[11, 21], label=["c", "d"], rank=[1, 2]))
    appended.sync_to_online("scores")
    assert appended.get_online_features([{"user_id": 2}], ["scores:rank"]).to_dict()["rank"] == [2]
    # Offline, with and without the join index: the old file has no `rank` column and reads null.
    entities = pd.DataFrame({"user_id": [1, 2], "event_time": pd.to_datetime(["2024-01-02 13:00", "2024-01-03 13:00"], utc=True)})
    for indexed in (False, True):
        if indexed:
            appended.build_join_index("scores")
        joined = appended.get_historical_features(entities, ["scores:score", "scores:rank"])
        assert joined["score"].tolist() == [10, 21] and joined["rank"].tolist() == [pd.NA, 2]


@pytest.mark.parametrize(
    "options, detail",
    [
        ({"description": "Scores."}, "description: '' -> 'Scores.'"),
        ({"owner": "team:ml"}, "owner: '' -> 'team:ml'"),
        ({"tags": {"domain": "risk"}}, "tags: {} -> {'domain': 'risk'}"),
        ({"ttl": pd.Timedelta(days=3).to_pytimedelta()}, "ttl_seconds: None -> 259200.0"),
    ],
)
def test_documentation_owner_tags_and_ttl_change_in_place(tmp_path, redis_url, applied, options, detail):
    changed = store_of(tmp_path, redis_url, scores(**options))
    assert item(changed.plan(), "group", "scores", 1).details == (detail,)
    changed.apply()
    assert changed.read_group("scores")["score"].tolist() == [10, 20]
    assert item(changed.plan(), "group", "scores", 1).action == "no change"


@pytest.mark.parametrize(
    "group, detail",
    [
        (scores(Feature("score", "int64")), "removes feature(s) ['label']"),
        (scores(Feature("label", "string"), Feature("score", "int64")), "reorders features: ['score', 'label'] -> ['label', 'score']"),
        (FeatureGroup("scores", entities=[Entity("user", join_keys={"user_id": "string"})],
                      features=[Feature("score", "int64"), Feature("label", "string")], partitions=DailyPartitions(start="2024-01-01")),
         "join keys change from {'user_id': 'int64'} to {'user_id': 'string'}"),
        (scores(event_time="at"), "event_time column changes from 'event_time' to 'at'"),
    ],
)
def test_incompatible_changes_need_a_new_version(tmp_path, redis_url, applied, group, detail):
    changed = store_of(tmp_path, redis_url, group)
    plan = item(changed.plan(), "group", "scores", 1)
    assert plan.action == "refused" and plan.details[0] == detail
    with pytest.raises(ApplyRefused, match="nothing was applied"):
        changed.apply()
    assert applied.read_group("scores")["score"].tolist() == [10, 20]


# Not applied, renamed


def test_definitions_never_applied_are_refused_on_every_path_naming_the_fix(tmp_path, redis_url):
    store = store_of(tmp_path, redis_url, scores(), views=(FeatureView("model", features=["scores:score"]),))
    message = r"feature group 'scores' v1 is not applied yet: run `feature-platform plan`"
    entities = pd.DataFrame({"user_id": [1], "event_time": pd.Timestamp("2024-01-03", tz="UTC")})
    for call in (
        lambda: store.write_partition("scores", DAY, rows(score=[1, 2], label=["a", "b"])),
        lambda: store.ingest("scores", rows(score=[1, 2], label=["a", "b"])),
        lambda: store.push("scores", rows(score=[1, 2], label=["a", "b"])),
        lambda: store.read_group("scores"),
        lambda: store.sync_to_online("scores"),
        lambda: store.get_online_features([{"user_id": 1}], ["scores:score"]),
        lambda: store.get_historical_features(entities, "model"),
        lambda: store.create_training_dataset("model", entities),
    ):
        with pytest.raises(DefinitionMismatchError, match=message):
            call()
    assert store.offline.version(scores()) is None


def test_a_rename_is_a_new_group_and_the_plan_says_the_data_does_not_follow(tmp_path, redis_url, applied):
    renamed = FeatureGroup("user_scores", entities=[user], features=scores().features, partitions=DailyPartitions(start="2024-01-01"))
    plan = store_of(tmp_path, redis_url, renamed).plan()
    assert item(plan, "group", "user_scores", 1).details == (
        "same schema as applied group(s) ['scores']: a rename is a new group and the data does not follow "
        "(materialize it again; the old group keeps its table until retired)",
    )
    assert item(plan, "group", "scores", 1).action == "keep"


def test_an_existing_table_from_before_the_registry_is_recorded_only_if_it_matches(tmp_path, redis_url):
    old = scores()
    store_of(tmp_path, redis_url, old).offline.write_partition(old, DAY, rows(score=[1, 2], label=["a", "b"]))
    assert item(store_of(tmp_path, redis_url, old).plan(), "group", "scores", 1).details == ("records its existing table, whose columns match",)
    retyped = item(store_of(tmp_path, redis_url, scores(Feature("score", "float64"), Feature("label", "string"))).plan(), "group", "scores", 1)
    assert retyped.action == "refused" and "its table already exists with columns" in retyped.details[0]


def test_the_server_answers_409_naming_the_group_when_its_definitions_are_not_the_applied_ones(tmp_path, redis_url, applied):
    from fastapi.testclient import TestClient

    from feature_platform.serving.server import create_app

    changed = store_of(tmp_path, redis_url, scores(Feature("score", "float64"), Feature("label", "string")))
    response = TestClient(create_app(changed)).post("/get-online-features", json={"features": ["scores:score"], "entities": {"user_id": [1]}})
    assert response.status_code == 409
    assert "feature group 'scores' v1 differs from what was applied (retypes feature(s) ['score int64 -> double']" in response.json()["detail"]
