"""One Redis connection for all the concurrent lookups of an event loop: commands pipelined, replies in order.

Lookups that reach Redis in the same turn of the event loop go out in one write
and their replies come back in one read: a few system calls per batch, on the
server's side and on Redis's, instead of a send and a receive per lookup (and no
connection checked out and back per lookup). Each lookup keeps its own deadline:
one that passes leaves its place in the queue (its late reply is dropped, so
every reply still reaches its own caller) and retires the connection; later
lookups get a new one, and the retired one closes once no caller waits on it.
"""

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio


def pack_mget(keys: Sequence[bytes]) -> bytes:
    """`MGET keys...` in the Redis protocol (RESP)."""
    parts = [b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1)]
    parts += [b"$%d\r\n%s\r\n" % (len(key), key) for key in keys]
    return b"".join(parts)


class PipelinedConnection:
    """A redis.asyncio connection written by one task and read by another, commands answered first in, first out."""

    def __init__(self, connection: redis.asyncio.Connection) -> None:
        self.connection = connection
        self.retired = False
        self.closed = False
        self._waiting: deque[asyncio.Future] = deque()
        self._unsent: list[bytes] = []
        self._writer: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None

    def send(self, packed: bytes) -> asyncio.Future:
        """Queue one packed command; the future gets its reply, or the error that ended the connection."""
        future = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(redis.ConnectionError("the pipelined connection is closed"))
            return future
        self._waiting.append(future)
        self._unsent.append(packed)
        if self._writer is None:
            # Starts on the next turn of the loop: every lookup of this turn has queued its command by then.
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            if not self.connection.is_connected:
                await self.connection.connect()
            while self._unsent:
                batch, self._unsent = self._unsent, []
                await self.connection.send_packed_command(batch, check_health=False)
                if self._reader is None:
                    self._reader = asyncio.get_running_loop().create_task(self._read())
        except BaseException as exc:  # every waiter must hear why, cancellation included
            await self.close(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._writer = None

    async def _read(self) -> None:
        try:
            while True:
                try:
                    reply: Any = await self.connection.read_response(disconnect_on_error=False)
                    failed = False
                except redis.ResponseError as exc:  # an error reply answers its own command only
                    reply, failed = exc, True
                future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(reply) if failed else future.set_result(reply)
                if self.retired and self.idle():
                    await self.close()
                    return
        except BaseException as exc:
            await self.close(exc)
            if not isinstance(exc, Exception):
                raise

    def idle(self) -> bool:
        """No caller waits for a reply (those whose deadline passed have stopped waiting)."""
        return all(future.done() for future in self._waiting)

    async def retire(self) -> None:
        """Send nothing more; close once no caller waits (at once if none does)."""
        self.retired = True
        if self.idle():
            await self.close()

    async def close(self, error: BaseException | None = None) -> None:
        """Disconnect; callers still waiting get `error` (a `ConnectionError` if it is not a Redis or OS error)."""
        if self.closed:
            return
        self.closed = True
        if error is None:
            error = redis.ConnectionError("the pipelined connection was closed")
        elif not isinstance(error, (redis.RedisError, OSError)):
            error = redis.ConnectionError(f"the pipelined connection closed: {type(error).__name__}: {error}")
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        current = asyncio.current_task()
        for task in (self._writer, self._reader):
            if task is not None and task is not current:
                task.cancel()
        await self.connection.disconnect(nowait=True)
