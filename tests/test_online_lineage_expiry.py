"""The lineage index follows the values it describes: members of values Redis expired are trimmed, so churning
entities of a group with a ttl never grow it (or the expiry index beside it) without bound."""

import time
from datetime import timedelta

import pandas as pd
import redis
from redis.crc import key_slot

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.online import lineage

TTL = timedelta(seconds=1)  # long enough that a push under load never writes a value already expired
ROUND = 200
user = Entity("user", join_keys={"user_id": "int64"})


def visits(ttl: timedelta | None = TTL) -> FeatureGroup:
    return FeatureGroup("visits", entities=[user], features=[Feature("count", "int64")], partitions=DailyPartitions(start="2024-01-01"), ttl=ttl)


def users(first: int, count: int = ROUND) -> pd.DataFrame:
    """Rows of new users at an old event time: each value expires one ttl after it is written."""
    ids = list(range(first, first + count))
    return pd.DataFrame({"user_id": ids, "event_time": pd.Timestamp("2024-01-02 12:00", tz="UTC"), "count": ids})


def store_of(tmp_path, url: str, group: FeatureGroup) -> FeatureStore:
    store = FeatureStore([group], offline_root=tmp_path, online_url=url, project="churn")
    store.apply()
    return store


def test_churning_entities_leave_only_live_values_in_the_lineage_indexes(tmp_path, redis_url):
    store = store_of(tmp_path, redis_url, visits())
    prefix = store.online.prefix(visits())
    client = redis.Redis.from_url(redis_url)
    sizes = []
    for round_ in range(4):
        store.push("visits", users(round_ * ROUND))  # a sync writes through the same script
        sizes.append((client.zcard(lineage.index_key(prefix)), client.zcard(lineage.expiry_key(prefix))))
        time.sleep(TTL.total_seconds() + 0.1)
    assert sizes == [(ROUND, ROUND)] * 4  # on the old script: 200, 400, 600, 800 index members
    store.push("visits", users(10_000, 1))  # one write trims up to twice its keys plus 64 expired members
    left = ROUND - (2 * 1 + 64) + 1
    assert (client.zcard(lineage.index_key(prefix)), client.zcard(lineage.expiry_key(prefix))) == (left, left)
    for _ in range(3):
        store.push("visits", users(10_000, 1))
    assert (client.zcard(lineage.index_key(prefix)), client.zcard(lineage.expiry_key(prefix)), client.dbsize()) == (1, 1, 3)


def users_in_slots(store: FeatureStore, slots: list[int], per_slot: int, skip: int) -> list[int]:
    """`per_slot` user ids whose keys land in each of `slots`, after the first `skip` such ids of each slot."""
    prefix = store.online.prefix(visits())
    found: dict[int, list[int]] = {slot: [] for slot in slots}
    candidate = 0
    while any(len(ids) < skip + per_slot for ids in found.values()):
        slot = key_slot(store.online.encode_keys(prefix, [[candidate]])[0])
        if slot in found and len(found[slot]) < skip + per_slot:
            found[slot].append(candidate)
        candidate += 1
    return sorted(i for ids in found.values() for i in ids[skip:])


def index_sizes(store: FeatureStore, slots: list[int]) -> list[int]:
    prefix = store.online.prefix(visits())
    return [store.online.client.zcard(lineage.index_key(prefix, slot)) for slot in slots]


def test_on_a_cluster_written_slots_and_slots_written_once_are_trimmed(tmp_path, redis_cluster_url):
    store = store_of(tmp_path, redis_cluster_url, visits())
    churned, later = [101, 5_000, 9_999, 16_000], [7, 3_333]
    for round_ in range(3):
        ids = users_in_slots(store, churned, 5, skip=5 * round_)
        store.push("visits", pd.concat([users(i, 1) for i in ids]))
        assert index_sizes(store, churned) == [5] * 4  # each write trims its slots' expired members
        time.sleep(TTL.total_seconds() + 0.1)
    store.push("visits", pd.concat([users(i, 1) for i in users_in_slots(store, later, 5, skip=0)]))
    assert index_sizes(store, churned) == [0] * 4  # slots no longer written are trimmed by writes elsewhere
    assert index_sizes(store, later) == [5, 5]


def test_values_kept_after_the_ttl_was_removed_keep_their_lineage_and_are_resynced(tmp_path, redis_url):
    store = store_of(tmp_path, redis_url, visits())
    store.write_partition("visits", "2024-01-02", users(0, 3))
    store.sync_to_online("visits")
    unlimited = store_of(tmp_path, redis_url, visits(ttl=None))  # a ttl change applies in place
    unlimited.sync_to_online("visits")  # rewritten without an expiry; their expiry entries stay behind
    time.sleep(TTL.total_seconds() + 0.1)
    unlimited.push("visits", users(100, 1))  # the trim meets those entries: the values are still there
    prefix = unlimited.online.prefix(visits(ttl=None))
    client = redis.Redis.from_url(redis_url)
    assert client.zcard(lineage.index_key(prefix)) == 4 and client.zcard(lineage.expiry_key(prefix)) == 0
    unlimited.write_partition("visits", "2024-01-02", users(1, 2))  # user 0 is gone from the partition
    report = unlimited.sync_to_online("visits", "2024-01-02")
    assert report.entities_removed == 1
    online = unlimited.get_online_features([{"user_id": u} for u in (0, 1, 2)], ["visits:count"]).to_dict()
    assert online["count"] == [None, 1, 2]
