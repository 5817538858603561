"""Online reads that never block an event loop: the feature server's MGET and PING over redis.asyncio.

Each call has a deadline. A frozen or unreachable Redis fails the call with
`OnlineStoreError` once its deadline passes, and calls never wait for each
other: each in-flight call holds its own pooled connection, and a call
abandoned at its deadline drops its connection (never handing a late reply
to the next caller).
"""

import asyncio
from collections.abc import Sequence

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from feature_platform.online.store import OnlineStoreError, client_options, redact

HEALTH_TIMEOUT_S = 0.5


class AsyncOnlineClient:
    """An asyncio Redis client for the reads of one online store URL, created inside the serving loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._options = client_options(url)
        self.timeout_s: float = self._options["socket_timeout"]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None

    def client(self) -> redis.asyncio.Redis:
        """The client of the running event loop (asyncio connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A dropped connection (Redis restarted) is retried once at once; a timeout is not retried.
            retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
            self._client, self._loop = redis.asyncio.Redis.from_url(self.url, retry=retry, **self._options), loop
        return self._client

    async def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The stored values of `keys` in one round trip, or `OnlineStoreError` within the deadline."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.client().mget(keys)
        except (redis.RedisError, TimeoutError, OSError) as exc:
            raise OnlineStoreError(f"online store {redact(self.url)}: {_describe(exc, self.timeout_s)}") from None

    async def ping(self, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
        """True when Redis answers a PING within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self.client().ping())
        except (redis.RedisError, TimeoutError, OSError):
            return False

    async def close(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s:g} s (TimeoutError)"
    return f"{type(exc).__name__}: {exc}"
