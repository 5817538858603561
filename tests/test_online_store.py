"""The online store against a real redis-server: sync, non-regression, keys, ttl, versions, push."""

import random
from datetime import timedelta

import pandas as pd
import pytest
import redis

from feature_platform import ContractError, EntityFrameError, Feature, FeatureView, OnDemandTransformation
from feature_platform.errors import FeatureReferenceError
from feature_platform.online import codec
from feature_platform.online.store import OnlineStoreError
from tests.online_fixtures import online_store, pair_group, score_rows, scores_group

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]


def online_values(store, user_ids, features=("score", "label")):
    return store.get_online_features({"user_id": user_ids}, list(features)).to_dict()


def test_sync_writes_latest_row_per_entity_and_reports_counts(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1, 2], 100))
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1], 200))

    report = store.sync_to_online("scores")

    assert (report.rows_read, report.rows_superseded, report.rows_written, report.partitions) == (3, 1, 2, 2)
    assert (report.rows_older_than_online, report.entities_rederived, report.entities_removed) == (0, 0, 0)
    assert online_values(store, [1, 2, 3]) == {
        "user_id": [1, 2, 3],
        "score": [201, 102, None],
        "label": ["2024-01-02", "2024-01-01", None],
    }


def test_backfilling_partitions_in_any_order_ends_in_the_same_state(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    for i, day in enumerate(DAYS):
        store.write_partition("scores", day, score_rows(day, [1, 2, 3][: 1 + i % 3], 100 * i))
    expected = {"user_id": [1, 2, 3], "score": [301, 202, 203], "label": ["2024-01-04", "2024-01-03", "2024-01-03"]}
    for seed in range(4):
        store.online.client.flushall()
        order = DAYS[:]
        random.Random(seed).shuffle(order)
        for day in order:
            store.sync_to_online("scores", partition_key=day)
        assert online_values(store, [1, 2, 3]) == expected, order


def test_syncing_an_older_partition_skips_rows_older_than_stored(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1, 2], 200))
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1, 2, 3], 100))
    store.sync_to_online("scores", "2024-01-02")

    report = store.sync_to_online("scores", "2024-01-01")

    assert (report.rows_read, report.rows_superseded, report.rows_written, report.rows_older_than_online) == (3, 0, 1, 2)
    assert online_values(store, [1, 2, 3])["score"] == [201, 202, 103]


def test_equal_event_and_created_times_keep_the_later_write(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 100))
    store.sync_to_online("scores")
    store.push("scores", score_rows("2024-01-01", [1], 500))
    assert online_values(store, [1])["score"] == [501]

    store.sync_to_online("scores")  # the offline row has the same times but was written earlier

    assert online_values(store, [1])["score"] == [501]


def test_created_time_breaks_event_time_ties_in_any_order(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group(created_time="created_at"))
    rows = score_rows("2024-01-01", [1, 1], 0).assign(
        created_at=[pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-03", tz="UTC")], score=[10, 20]
    )
    store.push("scores", rows.iloc[[1]])
    store.push("scores", rows.iloc[[0]])
    assert online_values(store, [1])["score"] == [20]


def test_composite_string_keys_that_join_alike_do_not_collide(tmp_path, online_url):
    store = online_store(tmp_path, online_url, pair_group())
    frame = pd.DataFrame(
        {"left": ["a:b", "a"], "right": ["c", "b:c"], "event_time": pd.Timestamp("2024-01-01", tz="UTC"), "weight": [1.0, 2.0]}
    )
    store.write_partition("pairs", None, frame)
    store.sync_to_online("pairs")

    result = store.get_online_features({"left": ["a", "a:b"], "right": ["b:c", "c"]}, ["weight"]).to_dict()

    assert result["weight"] == [2.0, 1.0]


def test_int_and_string_key_values_encode_to_different_keys():
    prefix = b"fp:p:g:v1:"
    assert codec.encode_keys(prefix, [[1]]) != codec.encode_keys(prefix, [["1"]])
    assert codec.encode_keys(prefix, [["a:b"], ["c"]]) != codec.encode_keys(prefix, [["a"], ["b:c"]])


def test_string_value_for_an_integer_key_is_rejected_naming_the_key(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    with pytest.raises(EntityFrameError, match="entity key 'user_id' is an integer key; got str '1'"):
        store.get_online_features([{"user_id": "1"}], ["score"])


def test_values_older_than_ttl_read_as_null_outside_max_age(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group(ttl=timedelta(hours=2)))
    now = pd.Timestamp.now(tz="UTC")
    store.push("scores", pd.DataFrame({"user_id": [1, 2], "event_time": [now - pd.Timedelta(hours=1), now - pd.Timedelta(hours=3)], "score": [1, 2], "label": ["x", "y"]}))

    result = store.get_online_features({"user_id": [1, 2, 3]}, ["score"])

    assert result.to_dict()["score"] == [1, None, None]
    assert result.statuses["score"] == ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]


def test_ttl_sets_a_redis_expiry_one_ttl_after_the_value_goes_stale(tmp_path, online_url):
    group = scores_group(ttl=timedelta(hours=2))
    store = online_store(tmp_path, online_url, group)
    event = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)
    store.push("scores", pd.DataFrame({"user_id": [1], "event_time": [event], "score": [1], "label": ["x"]}))

    key = store.online.encode_keys(codec.key_prefix("test", group), [[1]])[0]
    remaining_ms = store.online.client.pttl(key)
    expected_ms = (event + pd.Timedelta(hours=4) - pd.Timestamp.now(tz="UTC")) / pd.Timedelta(milliseconds=1)

    assert abs(remaining_ms - expected_ms) < 5_000


def test_a_new_group_version_syncs_to_new_keys_and_the_old_keeps_serving(tmp_path, online_url):
    v1 = online_store(tmp_path, online_url, scores_group(version=1))
    v2 = online_store(tmp_path, online_url, scores_group(version=2))
    v1.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 100))
    v2.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 900))
    v1.sync_to_online("scores")
    v2.sync_to_online("scores")

    assert online_values(v1, [1])["score"] == [101]
    assert online_values(v2, [1])["score"] == [901]
    assert v2.online.delete_group(scores_group(version=2)) == 1
    assert online_values(v1, [1])["score"] == [101]


def test_projects_do_not_see_each_others_values(tmp_path, online_url):
    first = online_store(tmp_path / "a", online_url, scores_group(), project="first")
    second = online_store(tmp_path / "b", online_url, scores_group(), project="second")
    first.push("scores", score_rows("2024-01-01", [1], 100))
    assert online_values(second, [1])["score"] == [None]


def test_entity_rows_as_list_dict_or_frame_give_the_same_vectors(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    store.push("scores", score_rows("2024-01-01", [1, 2], 100))
    as_dict = store.get_online_features({"user_id": [2, 1]}, ["scores:score"]).to_dict()
    as_rows = store.get_online_features([{"user_id": 2}, {"user_id": 1}], ["scores:score"]).to_dict()
    as_frame = store.get_online_features(pd.DataFrame({"user_id": [2, 1]}), ["scores:score"]).to_dict()
    assert as_dict == as_rows == as_frame == {"user_id": [2, 1], "score": [102, 101]}


def test_full_feature_names_and_typed_frame(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    store.push("scores", score_rows("2024-01-01", [1], 100))
    frame = store.get_online_features([{"user_id": 1}, {"user_id": 7}], ["score"], full_feature_names=True).to_df()
    assert list(frame.columns) == ["user_id", "scores__score"]
    assert frame["scores__score"].tolist()[0] == 101 and pd.isna(frame["scores__score"].tolist()[1])


def test_on_demand_outputs_use_request_inputs_from_the_entity_rows(tmp_path, redis_url):
    ratio = OnDemandTransformation(
        "ratio",
        function=lambda df: pd.DataFrame({"score_per_amount": df["score"] / df["amount"]}),
        outputs=[Feature("score_per_amount", "float64")],
        inputs=["score"],
        request_inputs=["amount"],
    )
    view = FeatureView("scored", features=["scores:score"], on_demand=[ratio])
    store = online_store(tmp_path, redis_url, scores_group(), views=(view,))
    store.push("scores", score_rows("2024-01-01", [1], 99))

    result = store.get_online_features([{"user_id": 1, "amount": 4.0}, {"user_id": 5, "amount": 2.0}], "scored")

    assert result.to_dict() == {"user_id": [1, 5], "score": [100, None], "score_per_amount": [25.0, None]}
    assert result.statuses["score_per_amount"] == ["PRESENT", "NOT_FOUND"]
    with pytest.raises(EntityFrameError, match="amount"):
        store.get_online_features([{"user_id": 1}], "scored")


def test_push_to_offline_appends_rows_without_touching_redis(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    store.push("scores", score_rows("2024-01-01", [1, 2], 100), to="offline")
    assert store.read_group("scores")["score"].tolist() == [101, 102]
    assert online_values(store, [1])["score"] == [None]


def test_push_online_and_offline_writes_both(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    assert store.push("scores", score_rows("2024-01-01", [1], 100), to="online_and_offline") == 1
    assert store.read_group("scores")["score"].tolist() == [101]
    assert online_values(store, [1])["score"] == [101]


def test_push_of_a_bad_frame_writes_nothing_anywhere(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    bad = score_rows("2024-01-01", [1, 2], 100).assign(user_id=[1, None])
    with pytest.raises(ContractError, match="feature group 'scores', column 'user_id': null join key"):
        store.push("scores", bad, to="online_and_offline")
    assert redis.Redis.from_url(redis_url).dbsize() == 0
    assert not store.offline.exists(store.group("scores"))


def test_push_to_an_unknown_target_is_an_error(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group())
    with pytest.raises(ValueError, match="push to must be"):
        store.push("scores", score_rows("2024-01-01", [1], 1), to="everywhere")


def test_offline_only_groups_cannot_be_read_online(tmp_path, redis_url):
    group = pair_group()
    offline_only = type(group)(**{**group.__dict__, "online": False})
    store = online_store(tmp_path, redis_url, offline_only)
    with pytest.raises(FeatureReferenceError, match="'pairs' is not online"):
        store.get_online_features({"left": ["a"], "right": ["b"]}, ["weight"])


def test_a_failing_write_raises_an_online_store_error(tmp_path, redis_url):
    group = scores_group()
    store = online_store(tmp_path, redis_url, group)
    key = codec.encode_keys(codec.key_prefix("test", group), [[1]])[0]
    redis.Redis.from_url(redis_url).hset(key, "not", "a value")
    with pytest.raises(OnlineStoreError, match="WRONGTYPE"):
        store.push("scores", score_rows("2024-01-01", list(range(5000)), 0))


def test_sync_of_a_time_window_writes_only_rows_inside_it(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    for i, day in enumerate(DAYS):
        morning_and_evening = pd.concat([score_rows(day, [1], 100 * i, hour=6), score_rows(day, [2], 100 * i, hour=18)])
        store.write_partition("scores", day, morning_and_evening)

    report = store.sync_to_online("scores", start="2024-01-02 12:00", end="2024-01-03 12:00")

    assert (report.rows_read, report.partitions) == (2, 2)
    assert online_values(store, [1, 2])["score"] == [201, 102]


def test_date_and_timestamp_join_keys_round_trip(tmp_path, online_url):
    from feature_platform import Entity, FeatureGroup

    day = Entity("day", join_keys={"day": "date", "at": "timestamp"})
    group = FeatureGroup("daily", entities=[day], features=[Feature("n", "int64")], partitions=None)
    store = online_store(tmp_path, online_url, group)
    at = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    store.push("daily", pd.DataFrame({"day": [at.date()], "at": [at], "event_time": [at], "n": [5]}))

    result = store.get_online_features({"day": [at.date(), at.date()], "at": [at.to_pydatetime(), at + pd.Timedelta(seconds=1)]}, ["n"])

    assert result.to_dict()["n"] == [5, None]
