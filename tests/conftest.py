"""Shared fixtures: small real definitions and a feature store on a temporary Delta root."""

import os
import signal
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore

user = Entity("user", join_keys={"user_id": "int64"})
merchant = Entity("merchant", join_keys={"merchant_id": "int64"})


@pytest.fixture
def user_stats() -> FeatureGroup:
    """A daily group of one entity with an int, a float and a string feature."""
    return FeatureGroup(
        "user_stats",
        entities=[user],
        features=[Feature("txn_count", "int64"), Feature("amount_mean", "float64"), Feature("segment", "string")],
        partitions=DailyPartitions(start="2024-05-01"),
        ttl=timedelta(days=2),
        owner="team:test",
    )


@pytest.fixture
def store(tmp_path: Path, user_stats: FeatureGroup) -> FeatureStore:
    """A feature store with `user_stats` applied on a Delta root in a temporary folder."""
    store = FeatureStore(groups=[user_stats], offline_root=tmp_path / "offline", project="test")
    store.apply()
    return store


def user_rows(day: str, user_ids: list[int], *, txn_count: int = 1) -> pd.DataFrame:
    """Rows of `user_stats` at noon of `day`, one per user."""
    return pd.DataFrame(
        {
            "user_id": user_ids,
            "event_time": pd.Timestamp(f"{day} 12:00"),
            "txn_count": [txn_count + i for i in range(len(user_ids))],
            "amount_mean": [10.0 * (i + 1) for i in range(len(user_ids))],
            "segment": ["a" if i % 2 else "b" for i in range(len(user_ids))],
        }
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway real `redis-server` on a free port for the whole test session."""
    from feature_platform.online.redis_server import start_server

    server = start_server(tmp_path_factory.mktemp("redis"), persistent=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The URL of the session's Redis server, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def freezable_redis(tmp_path: Path):
    """A redis-server of this test alone, which the test may freeze (SIGSTOP): continued and stopped at the end."""
    from feature_platform.online.redis_server import start_server

    server = start_server(tmp_path / "redis", persistent=False)
    yield server
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real local Redis Cluster of three masters (no replicas) for the whole test session."""
    import shutil

    from feature_platform.online.local_cluster import start_cluster

    if shutil.which("redis-cli") is None:
        pytest.skip("no redis-cli on PATH to join the cluster's nodes (apt-get install redis-tools; .ci/run does)")

    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"), masters=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster) -> str:
    """The `redis+cluster://` URL of the session's cluster, emptied for this test."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(params=["single", "cluster"])
def online_url(request: pytest.FixtureRequest) -> str:
    """The test Redis as one server and as a three-master cluster: online behaviour must not depend on it."""
    return request.getfixturevalue("redis_url" if request.param == "single" else "redis_cluster_url")
