"""Online reads that never block an event loop: the feature server's lookups and PING.

On one Redis server the MGET is awaited over redis.asyncio. Reads redis.asyncio
cannot do in one round trip (a Redis Cluster, windowed groups' tiles) run the
synchronous read on a thread of their own. Either way a call has a deadline: a
frozen or unreachable Redis fails it with `OnlineStoreError` once the command
timeout passes, and calls never wait for each other (each in-flight call holds
its own connection; a call abandoned at its deadline drops its connection, so a
late reply never reaches the next caller).
"""

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from feature_platform.online.reads import OnlineResponse, ReadPlan, complete_lookup, prepare_lookup, read_online
from feature_platform.online.store import REDIS_ERRORS, OnlineStore, OnlineStoreError, client_options, redact

HEALTH_TIMEOUT_S = 0.5
# Threads for reads that cannot be awaited: enough that a frozen Redis never makes requests queue for one.
READ_THREADS = 64


class AsyncOnlineClient:
    """Awaitable reads of one online store, for code running on an event loop."""

    def __init__(self, online: OnlineStore) -> None:
        self.online = online
        self.url = online.url
        self.direct = not online.cluster
        self._options = client_options(online.url)
        self.timeout_s: float = self._options["socket_timeout"]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None
        self._idle: list[redis.asyncio.Connection] = []
        self._threads: ThreadPoolExecutor | None = None

    def client(self) -> redis.asyncio.Redis:
        """The client of the running event loop (asyncio connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._idle = []
            # A dropped connection (Redis restarted) is retried once at once; a timeout is not retried.
            retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
            self._client, self._loop = redis.asyncio.Redis.from_url(self.url, retry=retry, **self._options), loop
        return self._client

    async def read(self, plan: ReadPlan, entity_rows: Any) -> OnlineResponse:
        """`read_online` of `entity_rows`, awaiting Redis instead of blocking on it."""
        if self.direct and not any(group.windows is not None for group in plan.groups):
            lookup = prepare_lookup(plan, entity_rows)
            stored = await self.mget(lookup.keys) if lookup.keys else []
            return complete_lookup(self.online, plan, lookup, stored)
        return await self._in_thread(read_online, self.online, plan, entity_rows)

    async def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The stored values of `keys` in one round trip, or `OnlineStoreError` within the deadline.

        Straight on an idle connection of this client (the command machinery of redis.asyncio costs more than
        the round trip); a connection that fails or is abandoned at the deadline is dropped, never reused.
        """
        client = self.client()  # first: a new event loop starts with no idle connections
        for attempt in (1, 2):
            connection = self._idle.pop() if self._idle else None
            try:
                async with asyncio.timeout(self.timeout_s):
                    if connection is None:
                        connection = client.connection_pool.make_connection()
                        await connection.connect()
                    await connection.send_command("MGET", *keys)
                    values = await connection.read_response()
                self._idle.append(connection)
                return values
            except redis.ConnectionError as exc:  # e.g. Redis restarted: a pooled connection is dead, a new one may work
                await _drop(connection)
                if attempt == 2 or connection is None:
                    raise self._error(exc) from None
            except BaseException as exc:
                await _drop(connection)
                if isinstance(exc, (redis.RedisError, TimeoutError, OSError)):
                    raise self._error(exc) from None
                raise
        raise AssertionError("unreachable")

    def _error(self, exc: BaseException) -> OnlineStoreError:
        return OnlineStoreError(f"online store {redact(self.url)}: {_describe(exc, self.timeout_s)}")

    async def ping(self, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
        """True when Redis answers a PING within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                if self.direct:
                    return bool(await self.client().ping())
                return await self._in_thread(self.online.ping)
        except (*REDIS_ERRORS, TimeoutError, OSError, OnlineStoreError):
            return False

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="online-read")
        return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)

    async def close(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            for connection in self._idle:
                await _drop(connection)
            await self._client.aclose()
        self._client = None
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None


async def _drop(connection: "redis.asyncio.Connection | None") -> None:
    if connection is not None:
        await connection.disconnect(nowait=True)


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s:g} s (TimeoutError)"
    return f"{type(exc).__name__}: {exc}"
