"""The server's pipelined Redis connection: concurrent lookups share it, each answer reaches its own caller.

Against a redis-server of this module's own (tests freeze it and kill its clients).
"""

import asyncio
import os
import signal
import time

import pytest
import redis
import redis.asyncio

from feature_platform.online.async_client import AsyncOnlineClient
from feature_platform.online.codec import encode_keys, key_prefix
from feature_platform.online.pipelined import PipelinedConnection, pack_mget
from feature_platform.online.store import OnlineStoreError
from tests.online_fixtures import online_store, score_rows, scores_group

USERS = list(range(200))
TIMEOUT_S = 1.0


@pytest.fixture
def store(tmp_path, freezable_redis, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_TIMEOUT_S", str(TIMEOUT_S))
    store = online_store(tmp_path, freezable_redis.url, scores_group())
    store.push("scores", score_rows("2024-01-01", USERS, 1000))
    return store


def keys_of(store, user_ids: list[int]) -> list[bytes]:
    return encode_keys(key_prefix(store.project, store.group("scores")), [user_ids])


def connections_received(url: str) -> int:
    return redis.Redis.from_url(url).info("stats")["total_connections_received"]


def test_pack_mget_is_the_redis_protocol_of_the_command():
    assert pack_mget([b"a", b"bc"]) == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$2\r\nbc\r\n"


def test_concurrent_lookups_share_one_connection_and_each_gets_its_own_values(store, freezable_redis):
    client = AsyncOnlineClient(store.online)
    expected = {u: store.online.mget(keys_of(store, [u])) for u in USERS}
    before = connections_received(freezable_redis.url)

    async def lookups() -> list[list[bytes | None]]:
        try:
            return await asyncio.gather(*(client.mget(keys_of(store, [u])) for u in USERS))
        finally:
            await client.close()

    answers = asyncio.run(lookups())
    assert answers == [expected[u] for u in USERS]
    assert all(a[0] is not None for a in answers)
    assert connections_received(freezable_redis.url) - before == 2  # ours, and the one counting


def test_a_lookup_past_its_deadline_fails_and_the_late_reply_reaches_nobody(store, freezable_redis):
    client = AsyncOnlineClient(store.online)
    stopped = freezable_redis.process.pid

    async def scenario() -> tuple[list, list, float]:
        try:
            await client.mget(keys_of(store, [1]))  # connected
            os.kill(stopped, signal.SIGSTOP)
            started = time.monotonic()
            frozen = await asyncio.gather(*(client.mget(keys_of(store, [u])) for u in (2, 3, 4)), return_exceptions=True)
            waited = time.monotonic() - started
            os.kill(stopped, signal.SIGCONT)
            thawed = await asyncio.gather(*(client.mget(keys_of(store, [u])) for u in USERS))
            return frozen, thawed, waited
        finally:
            await client.close()

    frozen, thawed, waited = asyncio.run(scenario())
    assert all(isinstance(e, OnlineStoreError) and f"no answer within {TIMEOUT_S:g} s" in str(e) for e in frozen)
    assert TIMEOUT_S - 0.1 < waited < TIMEOUT_S + 1.0  # side by side, not one after the other
    assert thawed == [store.online.mget(keys_of(store, [u])) for u in USERS]


def test_a_killed_connection_is_replaced_and_the_lookup_succeeds(store, freezable_redis):
    client = AsyncOnlineClient(store.online)
    admin = redis.Redis.from_url(freezable_redis.url)

    async def scenario() -> list:
        try:
            await client.mget(keys_of(store, [1]))
            admin.client_kill_filter(_type="normal", skipme=True)
            await asyncio.sleep(0.05)
            return await asyncio.gather(*(client.mget(keys_of(store, [u])) for u in (5, 6)))
        finally:
            await client.close()

    assert asyncio.run(scenario()) == [store.online.mget(keys_of(store, [u])) for u in (5, 6)]


def test_an_error_reply_fails_its_own_command_only(store, freezable_redis):
    async def scenario() -> list:
        pool = redis.asyncio.ConnectionPool.from_url(freezable_redis.url)
        pipe = PipelinedConnection(pool.make_connection())
        try:
            futures = [pipe.send(pack_mget(keys_of(store, [7]))), pipe.send(b"*1\r\n$4\r\nNOPE\r\n"),
                       pipe.send(pack_mget(keys_of(store, [8])))]
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await pipe.close()
            await pool.aclose()

    first, error, last = asyncio.run(scenario())
    assert (first, last) == (store.online.mget(keys_of(store, [7])), store.online.mget(keys_of(store, [8])))
    assert isinstance(error, redis.ResponseError) and "unknown command" in str(error)
