"""Online reads that never block an event loop: the feature server's lookups and PING.

On one Redis server the MGET is awaited over redis.asyncio. Reads redis.asyncio
cannot do in one round trip (a Redis Cluster, windowed groups' tiles) run the
synchronous read on a thread of their own. Either way a call has a deadline: a
frozen or unreachable Redis fails it with `OnlineStoreError` once the command
timeout passes. Concurrent MGETs share one pipelined connection per event loop
(`online.pipelined`): each has its own deadline, and every reply reaches its own
caller, late ones included.
"""

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from feature_platform.online.pipelined import PipelinedConnection, pack_mget
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
        self._current: PipelinedConnection | None = None
        self._pipes: set[PipelinedConnection] = set()  # the current one and retired ones not closed yet
        self._threads: ThreadPoolExecutor | None = None

    def client(self) -> redis.asyncio.Redis:
        """The client of the running event loop (asyncio connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._current, self._pipes = None, set()
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

        Pipelined with the other lookups of this event loop on one connection (`online.pipelined`); a
        connection that fails is replaced once at once, one whose caller gave up at the deadline is retired.
        """
        packed = pack_mget(keys)
        pipe = None
        try:
            async with asyncio.timeout(self.timeout_s):
                for attempt in (1, 2):
                    pipe = self._pipe()
                    try:
                        return await pipe.send(packed)
                    except redis.ConnectionError:  # e.g. Redis restarted: the connection is dead, a new one may work
                        await pipe.close()
                        if attempt == 2:
                            raise
        except TimeoutError as exc:
            if pipe is not None:
                await pipe.retire()  # its late reply must reach nobody; later lookups get a new connection
            raise self._error(exc) from None
        except (redis.RedisError, OSError) as exc:
            raise self._error(exc) from None
        raise AssertionError("unreachable")

    def _pipe(self) -> PipelinedConnection:
        """The pipelined connection of the running event loop that takes new commands (a new one if none)."""
        pool = self.client().connection_pool  # first: a new event loop starts with no connections
        if self._current is None or self._current.closed or self._current.retired:
            # No socket timeout of its own: each caller has a deadline, and the reader waits for replies as long as needed.
            connection = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            self._current = PipelinedConnection(connection)
            self._pipes = {p for p in self._pipes if not p.closed} | {self._current}
        return self._current

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
            for pipe in self._pipes:
                await pipe.close()
            await self._client.aclose()
        self._client, self._current, self._pipes = None, None, set()
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s:g} s (TimeoutError)"
    return f"{type(exc).__name__}: {exc}"
