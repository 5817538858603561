"""Online holds what the offline store holds: after any writes, recomputes, syncs and pushes, online == historical at now.

Class 4 of issue 12. A re-sync of a partition replaces what that partition
provided online (an entity gone from it, or corrected to an older time), taking
the entity's latest row from the other partitions or deleting it; values from
elsewhere (a later partition, a push ahead of the offline store) are replaced
only by newer ones. Property tests run random sequences on a real Redis, as one
server and as a cluster.
"""

import random
import tempfile
import uuid
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from feature_platform.online import lineage
from feature_platform.online.store import now_micros
from tests.online_fixtures import online_store, pair, score_rows, scores_group, user

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
USERS = list(range(5))


def txn_group() -> FeatureGroup:
    return FeatureGroup(
        "txn",
        entities=[user],
        features=[Feature("count", "int64"), Feature("note", "string")],
        created_time="created_at",
        partitions=DailyPartitions(start="2024-01-01"),
    )


rows = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.integers(0, 3),  # day
        st.integers(0, 3),  # hour: few values, so equal event times happen
        st.one_of(st.none(), st.integers(0, 2)),  # created: null or an hour offset
        st.integers(-50, 50),
    ),
    max_size=8,
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write_partition"), st.integers(0, 3), rows),  # a (re)compute: replaces one day
        st.tuples(st.just("ingest"), rows),
        st.tuples(st.just("push_online_and_offline"), rows),
        st.tuples(st.just("sync_partition"), st.integers(0, 3)),
        st.tuples(st.just("sync_all")),
        st.tuples(st.just("sync_window"), st.integers(0, 3), st.integers(1, 3)),  # days first..first+n
    ),
    min_size=1,
    max_size=10,
)


def frame(data: list[tuple], day: int | None = None) -> pd.DataFrame:
    """Rows of `txn` (all on `day` when given), without duplicate (user, event, created) triples."""
    records = []
    for user_id, row_day, hour, created, count in data:
        at = pd.Timestamp(DAYS[row_day if day is None else day], tz="UTC") + pd.Timedelta(hours=hour)
        made = pd.NaT if created is None else pd.Timestamp(DAYS[0], tz="UTC") + pd.Timedelta(hours=created)
        records.append({"user_id": user_id, "event_time": at, "created_at": made, "count": count, "note": f"{count}@{at}"})
    result = pd.DataFrame(records, columns=["user_id", "event_time", "created_at", "count", "note"])
    result["created_at"] = pd.to_datetime(result["created_at"], utc=True)
    result["event_time"] = pd.to_datetime(result["event_time"], utc=True)
    return result.drop_duplicates(["user_id", "event_time", "created_at"]).astype({"user_id": "int64", "count": "int64"})


def days_of(data: pd.DataFrame) -> set[str]:
    return {t.date().isoformat() for t in data["event_time"]}


def online_vectors(store: FeatureStore) -> dict[str, list]:
    return store.get_online_features({"user_id": USERS}, ["count", "note"]).to_dict()


def historical_vectors(store: FeatureStore) -> dict[str, list]:
    now = pd.Timestamp.now(tz="UTC")
    got = store.get_historical_features(pd.DataFrame({"user_id": USERS, "event_time": now}), ["count", "note"])
    return {
        "user_id": got["user_id"].tolist(),
        "count": [None if pd.isna(v) else int(v) for v in got["count"]],
        "note": [None if pd.isna(v) else v for v in got["note"]],
    }


def run(store: FeatureStore, operation: tuple, dirty: set[str]) -> None:
    """Apply one operation, tracking the days written since their last sync."""
    kind = operation[0]
    if kind == "write_partition":
        day = DAYS[operation[1]]
        store.write_partition("txn", day, frame(operation[2], operation[1]))
        dirty.add(day)
    elif kind == "ingest":
        data = frame(operation[1])
        store.ingest("txn", data)
        dirty.update(days_of(data))
    elif kind == "push_online_and_offline":
        store.push("txn", frame(operation[1]), to="online_and_offline")
    elif kind == "sync_partition":
        store.sync_to_online("txn", DAYS[operation[1]])
        dirty.discard(DAYS[operation[1]])
    elif kind == "sync_all":
        store.sync_to_online("txn")
        dirty.clear()
    else:
        first, count = operation[1], operation[2]
        covered = DAYS[first : first + count]
        end = pd.Timestamp(DAYS[first], tz="UTC") + pd.Timedelta(days=count)
        store.sync_to_online("txn", start=DAYS[first], end=end)
        dirty.difference_update(covered)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=operations, seed=st.integers(0, 10_000))
def test_after_any_sequence_and_syncing_what_changed_online_equals_historical_at_now(online_url, sequence, seed):
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore([txn_group()], offline_root=Path(folder), online_url=online_url, project=f"p{uuid.uuid4().hex[:12]}")
        store.apply()
        dirty: set[str] = set()
        for operation in sequence:
            run(store, operation, dirty)
            if not dirty:  # everything written has been synced: the promise holds at every such point
                assert online_vectors(store) == historical_vectors(store), operation
        pending = sorted(dirty)
        random.Random(seed).shuffle(pending)  # syncs in any order
        for day in pending:
            store.sync_to_online("txn", day)

        assert online_vectors(store) == historical_vectors(store)


def values(store: FeatureStore, user_ids: list[int]) -> dict[str, list]:
    got = store.get_online_features({"user_id": user_ids}, ["scores:score", "scores:label"]).to_dict(include_statuses=True)
    return {"score": got["score"], "status": got["score__status"]}


def test_an_entity_gone_from_a_recomputed_partition_is_deleted_online(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1, 2], 100))
    store.sync_to_online("scores", "2024-01-02")

    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [2], 200))
    report = store.sync_to_online("scores", "2024-01-02")

    assert values(store, [1, 2]) == {"score": [None, 202], "status": ["NOT_FOUND", "PRESENT"]}
    assert (report.rows_read, report.rows_written, report.entities_removed, report.entities_rederived) == (1, 1, 1, 0)


def test_an_entity_gone_from_its_latest_partition_falls_back_to_its_previous_partition(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 100))
    store.write_partition("scores", "2024-01-03", score_rows("2024-01-03", [1, 2], 300))
    store.sync_to_online("scores")

    store.write_partition("scores", "2024-01-03", score_rows("2024-01-03", [2], 300))
    report = store.sync_to_online("scores", "2024-01-03")

    assert values(store, [1, 2])["score"] == [101, 302]
    assert (report.entities_rederived, report.entities_removed) == (1, 0)


def test_an_entity_corrected_to_an_older_time_in_its_partition_takes_the_corrected_value(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1], 100, hour=20))
    store.sync_to_online("scores", "2024-01-02")

    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1], 500, hour=3))
    store.sync_to_online("scores", "2024-01-02")

    assert values(store, [1])["score"] == [501]


def test_a_partition_recomputed_to_nothing_removes_what_it_provided(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1, 2], 100))
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [2], 10))
    store.sync_to_online("scores")

    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [], 0))
    store.sync_to_online("scores", "2024-01-02")

    assert values(store, [1, 2])["score"] == [None, 12]


def test_an_older_partition_synced_after_a_newer_one_does_not_regress(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-03", score_rows("2024-01-03", [1], 300))
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 100))
    store.sync_to_online("scores", "2024-01-03")

    report = store.sync_to_online("scores", "2024-01-01")
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 150))
    store.sync_to_online("scores", "2024-01-01")

    assert values(store, [1])["score"] == [301]
    assert (report.rows_written, report.rows_older_than_online) == (0, 1)


def test_a_push_to_online_alone_stays_ahead_until_the_offline_store_has_something_newer(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1], 100))
    store.sync_to_online("scores", "2024-01-02")
    store.push("scores", score_rows("2024-01-02", [1], 900, hour=18))

    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [2], 100))  # user 1 gone offline
    store.sync_to_online("scores", "2024-01-02")
    assert values(store, [1])["score"] == [901]  # the push is ahead of the offline store: kept

    store.write_partition("scores", "2024-01-03", score_rows("2024-01-03", [1], 300))
    store.sync_to_online("scores", "2024-01-03")
    assert values(store, [1])["score"] == [301]


def test_a_push_to_online_and_offline_is_removed_when_its_partition_is_recomputed_without_it(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", [1], 100))
    store.sync_to_online("scores")
    store.push("scores", score_rows("2024-01-02", [1], 200), to="online_and_offline")
    assert values(store, [1])["score"] == [201]

    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [2], 0))
    store.sync_to_online("scores", "2024-01-02")

    assert values(store, [1, 2])["score"] == [101, 2]


def test_a_push_landing_during_a_resync_of_its_partition_is_not_replaced_by_the_older_value(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    group = store.group("scores")
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1], 100, hour=20))
    day = lineage.day_number(pd.Timestamp("2024-01-02").date())
    read_at = now_micros()  # the re-sync reads the offline store here ...
    store.push("scores", score_rows("2024-01-02", [1], 700, hour=21), to="online_and_offline")  # ... a push lands ...

    older = store.offline.read(group, start="2024-01-02", end="2024-01-03")  # ... and it writes what it read
    store.online.write(group, older, resync=lineage.Resync(day, day, read_at))

    assert values(store, [1])["score"] == [701]


def test_a_window_sync_replaces_only_the_days_it_covers_whole(tmp_path, online_url):
    store = online_store(tmp_path, online_url, scores_group())
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [1, 2], 100, hour=6))
    store.sync_to_online("scores")
    store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", [2], 500, hour=18))

    store.sync_to_online("scores", start="2024-01-02T12:00", end="2024-01-03")  # half the day: no removal
    assert values(store, [1, 2])["score"] == [101, 502]
    store.sync_to_online("scores", start="2024-01-02", end="2024-01-03")
    assert values(store, [1, 2])["score"] == [None, 502]


def test_a_full_resync_of_an_unpartitioned_group_removes_entities_no_longer_in_its_table(tmp_path, online_url):
    from tests.online_fixtures import pair_group

    store = online_store(tmp_path, online_url, pair_group())
    at = pd.Timestamp("2024-01-01", tz="UTC")
    store.write_partition("pairs", None, pd.DataFrame({"left": ["a", "b"], "right": ["x", "y"], "event_time": at, "weight": [1.0, 2.0]}))
    store.sync_to_online("pairs")

    store.write_partition("pairs", None, pd.DataFrame({"left": ["b"], "right": ["y"], "event_time": at, "weight": [3.0]}))
    report = store.sync_to_online("pairs")

    got = store.get_online_features({"left": ["a", "b"], "right": ["x", "y"]}, ["pairs:weight"]).to_dict()
    assert got["weight"] == [None, 3.0]
    assert report.entities_removed == 1


def test_delete_group_removes_the_lineage_with_the_values(tmp_path, redis_url):
    import redis

    store = online_store(tmp_path, redis_url, scores_group())
    store.push("scores", score_rows("2024-01-02", [1, 2], 0), to="online_and_offline")

    assert store.online.delete_group(store.group("scores")) == 2
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_keys_of_a_pair_entity_track_their_lineage_too(tmp_path, online_url):
    assert pair.join_keys == {"left": "string", "right": "string"}  # composite keys decode back for re-derivation
    group = FeatureGroup("pairs_daily", entities=[pair], features=[Feature("weight", "float64")], partitions=DailyPartitions(start="2024-01-01"))
    store = online_store(tmp_path, online_url, group)

    def rows(day: str, lefts: list[str], weight: float) -> pd.DataFrame:
        return pd.DataFrame({"left": lefts, "right": "r", "event_time": pd.Timestamp(day, tz="UTC"), "weight": weight})

    store.write_partition("pairs_daily", "2024-01-01", rows("2024-01-01", ["a", "b"], 1.0))
    store.write_partition("pairs_daily", "2024-01-02", rows("2024-01-02", ["a", "b"], 2.0))
    store.sync_to_online("pairs_daily")
    store.write_partition("pairs_daily", "2024-01-02", rows("2024-01-02", ["b"], 3.0))
    store.sync_to_online("pairs_daily", "2024-01-02")

    got = store.get_online_features({"left": ["a", "b"], "right": ["r", "r"]}, ["pairs_daily:weight"]).to_dict()
    assert got["weight"] == [1.0, 3.0]
