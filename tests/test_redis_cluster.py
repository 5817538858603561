"""The online store on a real local Redis Cluster: key layout, resharding, failover and URLs.

The behaviours shared with one server (sync, push, ttl statuses, versions, the
consistency property) run against both in test_online_store.py and
test_online_consistency.py through the `online_url` fixture.
"""

import shutil
import signal
import subprocess
import threading
from datetime import timedelta

import pandas as pd
import pytest
import redis
from redis.crc import key_slot

from feature_platform import FeatureView
from feature_platform.online import codec
from feature_platform.online.local_cluster import start_cluster
from feature_platform.online.redis_server import free_port
from feature_platform.online.store import OnlineStore, OnlineStoreError
from tests.online_fixtures import online_store, pair_group, score_rows, scores_group


pytestmark = pytest.mark.skipif(
    shutil.which("redis-cli") is None, reason="no redis-cli on PATH to join the cluster's nodes (apt-get install redis-tools; .ci/run does)"
)


def online_scores(store, user_ids):
    return store.get_online_features({"user_id": user_ids}, ["score", "label"]).to_dict()


def test_keys_of_one_entity_share_a_slot_and_entities_spread_over_every_master(tmp_path, redis_cluster, redis_cluster_url):
    store = online_store(tmp_path, redis_cluster_url, scores_group(version=1), project="layout")
    store.push("scores", score_rows("2024-01-01", list(range(300)), 0))
    prefixes = [codec.key_prefix("layout", scores_group(version=v)) for v in (1, 2)]

    first, second = (store.online.encode_keys(p, [[7]])[0] for p in prefixes)

    assert first == prefixes[0] + b"{" + codec.encode_keys(b"", [[7]])[0] + b"}"
    assert key_slot(first) == key_slot(second)
    sizes = []
    for node in redis_cluster.masters():
        with redis_cluster.client(node) as client:
            sizes.append(sum(b"\x00lineage" not in key for key in client.scan_iter()))  # entities, not their lineage
    assert len(sizes) == 3 and all(size > 50 for size in sizes) and sum(sizes) == 300


def test_one_read_across_groups_of_different_entities_on_several_slots(tmp_path, redis_cluster_url):
    view = FeatureView("both", features=["scores:score", "pairs:weight"])
    store = online_store(tmp_path, redis_cluster_url, scores_group(), pair_group(), views=(view,))
    store.push("scores", score_rows("2024-01-01", [1, 2, 3], 10))
    at = pd.Timestamp("2024-01-01", tz="UTC")
    store.push("pairs", pd.DataFrame({"left": ["a", "b"], "right": ["x", "y"], "event_time": at, "weight": [0.5, 1.5]}))

    result = store.get_online_features({"user_id": [3, 1, 9], "left": ["b", "a", "a"], "right": ["y", "x", "y"]}, "both")

    assert result.to_dict() == {"user_id": [3, 1, 9], "left": ["b", "a", "a"], "right": ["y", "x", "y"], "score": [13, 11, None], "weight": [1.5, 0.5, None]}
    assert result.statuses["weight"] == ["PRESENT", "PRESENT", "NOT_FOUND"]


def test_reads_and_writes_follow_slots_moved_to_another_master(tmp_path, redis_cluster, redis_cluster_url):
    store = online_store(tmp_path, redis_cluster_url, scores_group())
    users = list(range(2000))
    store.push("scores", score_rows("2024-01-01", users, 100))
    assert online_scores(store, users)["score"] == [100 + u for u in users]  # the client now knows the slot map
    source, target = redis_cluster.masters()[:2]
    ids = {}
    for node in (source, target):
        with redis_cluster.client(node) as client:
            ids[node.port] = client.execute_command("CLUSTER", "MYID").decode()

    moved = subprocess.run(
        ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{source.port}", "--cluster-from", ids[source.port],
         "--cluster-to", ids[target.port], "--cluster-slots", "2000", "--cluster-yes"],
        capture_output=True, text=True, timeout=120,
    )
    assert moved.returncode == 0, moved.stdout[-1000:] + moved.stderr[-1000:]
    redis_cluster.wait_until_healthy()

    assert online_scores(store, users)["score"] == [100 + u for u in users]
    store.push("scores", score_rows("2024-01-02", users, 500))
    store.push("scores", score_rows("2024-01-01", users, 900))  # older: never regresses, wherever the slot lives
    assert online_scores(store, users)["score"] == [500 + u for u in users]


def test_online_state_converges_after_a_master_dies_during_a_sync(tmp_path):
    cluster = start_cluster(tmp_path / "cluster", masters=3, replicas_per_master=1)
    try:
        store = online_store(tmp_path, cluster.url, scores_group())
        users = list(range(30_000))
        store.write_partition("scores", "2024-01-01", score_rows("2024-01-01", users, 100))
        store.write_partition("scores", "2024-01-02", score_rows("2024-01-02", users[::2], 200))
        # Not the node the URL names: a client is configured with an endpoint that stays reachable.
        victim = next(n for n in cluster.masters() if n is not cluster.nodes[0])
        failures: list[BaseException] = []

        def sync() -> None:
            try:
                store.sync_to_online("scores")
            except BaseException as exc:
                failures.append(exc)

        syncing = threading.Thread(target=sync)
        syncing.start()
        with cluster.client(victim) as client:
            while client.dbsize() == 0 and syncing.is_alive():
                pass
        killed_during_sync = syncing.is_alive()
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        syncing.join()
        cluster.wait_until_healthy()

        assert killed_during_sync
        assert all(isinstance(f, OnlineStoreError) for f in failures), failures
        assert len(cluster.masters()) == 3  # the dead master's replica took over
        report = store.sync_to_online("scores")  # the retry Dagster would run

        assert report.rows_read == 45_000
        expected = [200 + u if u % 2 == 0 else 100 + u for u in users]
        assert online_scores(store, users)["score"] == expected
    finally:
        cluster.stop()


def test_an_unreachable_cluster_is_an_online_store_error_without_the_password():
    with pytest.raises(OnlineStoreError, match=r"redis\+cluster://:\*\*\*@127\.0\.0\.1:\d+: cannot reach the Redis Cluster") as raised:
        OnlineStore(f"redis+cluster://:s3cret@127.0.0.1:{free_port()}")
    assert "s3cret" not in str(raised.value)


def test_a_cluster_url_naming_a_plain_server_is_an_online_store_error(redis_url):
    with pytest.raises(OnlineStoreError, match="cannot reach the Redis Cluster.*[Cc]luster mode is not enabled"):
        OnlineStore(redis_url.replace("redis://", "redis+cluster://").rsplit("/", 1)[0])


def test_a_plain_url_naming_a_cluster_node_says_to_use_a_cluster_url(tmp_path, redis_cluster_url):
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    store = online_store(tmp_path, plain, scores_group(ttl=timedelta(days=1)))
    with pytest.raises(OnlineStoreError, match=r"this Redis is a cluster: name it with a redis\+cluster:// or rediss\+cluster:// URL"):
        store.get_online_features({"user_id": list(range(50))}, ["score"])


def test_the_cluster_client_keeps_credentials_from_the_environment(tmp_path, monkeypatch):
    cluster = start_cluster(tmp_path / "cluster", masters=3, password="cluster-secret")
    try:
        monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PASSWORD", "cluster-secret")
        url = cluster.url.replace(":cluster-secret@", "")
        store = online_store(tmp_path, url, scores_group())
        store.push("scores", score_rows("2024-01-01", list(range(100)), 0))
        assert online_scores(store, [5, 99])["score"] == [5, 99]
        monkeypatch.delenv("FEATURE_PLATFORM_REDIS_PASSWORD")
        with pytest.raises(OnlineStoreError, match="cannot reach the Redis Cluster"):
            OnlineStore(url)
    finally:
        cluster.stop()


def test_a_cluster_node_refusing_the_script_is_an_online_store_error(tmp_path, redis_cluster_url):
    group = scores_group()
    store = online_store(tmp_path, redis_cluster_url, group)
    key = store.online.encode_keys(codec.key_prefix("test", group), [[1]])[0]
    store.online.client.hset(key, "not", "a value")
    with pytest.raises(OnlineStoreError, match="WRONGTYPE"):
        store.push("scores", score_rows("2024-01-01", list(range(5000)), 0))
    assert isinstance(store.online.client, redis.cluster.RedisCluster)
