"""uvicorn's httptools protocol with each response sent in one write: its head and body apart cost a system call more.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, and the body on `http.response.body`: two `send` calls per
answer, and often two reads for the client. `CoalescingTransport` holds what is
written in one turn of the event loop and sends it at the end of that turn, so
the lookup's answer goes out in one `send` (about a tenth less server CPU per
request at 64 connections, `bench/server_load.py`). Without httptools installed
uvicorn's own choice stands.
"""

import asyncio
from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn without httptools: its h11 protocol, as is
    HttpToolsProtocol = None


class CoalescingTransport:
    """A transport whose writes of one turn of the loop go out together, at the end of that turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, []
            if not self._transport.is_closing():
                self._transport.write(b"".join(data))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol() -> Any:
    """The `http` setting of uvicorn.Config: the coalescing httptools protocol, or "auto" without httptools."""
    if HttpToolsProtocol is None:
        return "auto"

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(CoalescingTransport(transport, self.loop))

    return CoalescingHttpToolsProtocol
