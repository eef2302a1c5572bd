"""Taking over an HTTP connection for a raw bidirectional stream (Docker's "hijack").

Docker clients ask for attach and exec streams with ``Upgrade: tcp``; the server answers
``101 UPGRADED`` and from then on the socket carries raw bytes both ways. The older form
(no Upgrade header) gets ``200 OK`` with the same raw stream.

aiohttp has no raw upgrade, and its protocol closes the transport when the client
half-closes (``eof_received``), which would cut the output of ``echo hi | docker run -i``.
So after sending the response head we swap the transport's protocol for
:class:`HijackedStream`, which keeps the write side open after the client's EOF. When the
stream ends we close the transport and tell aiohttp's protocol the connection is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

__all__ = ["HijackedStream", "hijack", "wind_down"]

_HIGH_WATER = 1 << 20


class HijackedStream(asyncio.Protocol):
    """The raw side of a hijacked connection: read what the client sends, write to it."""

    def __init__(
        self,
        transport: asyncio.Transport,
        initial: bytes = b"",
        *,
        owner: Any = None,
        response: web.StreamResponse | None = None,
    ) -> None:
        self._transport = transport
        self._owner = owner
        self._response = response
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False
        self._closed = asyncio.get_running_loop().create_future()
        self._can_write = asyncio.Event()
        self._can_write.set()
        if initial:
            self._incoming.put_nowait(initial)
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    # asyncio.Protocol ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self._eof = True
        self._incoming.put_nowait(b"")
        return True  # keep our write side open: the client only closed its stdin

    def connection_lost(self, exc: Exception | None) -> None:
        self._incoming.put_nowait(b"")
        self._can_write.set()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # API -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def read(self) -> bytes:
        """Next chunk from the client; ``b""`` once it closed its side (or the connection)."""
        if self._eof and self._incoming.empty():
            return b""
        return await self._incoming.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("client went away")
        self._transport.write(data)
        await self._can_write.wait()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def close(self) -> None:
        if self._transport.is_closing():
            return
        plain = self._transport.get_extra_info("ssl_object") is None  # TLS ends by its own
        if plain and not self._transport.get_write_buffer_size():
            # The peer learns of the end now: the transport's own close happens on a later
            # loop turn, which may come milliseconds later on a busy loop.
            sock = self._transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
        self._transport.close()

    def finish(self) -> web.StreamResponse:
        """Close the connection and hand aiohttp back a finished, closed response."""
        self.close()
        if self._owner is not None:
            with contextlib.suppress(Exception):
                self._owner.force_close()
                self._owner.connection_lost(None)
        assert self._response is not None
        return self._response


async def hijack(request: web.Request, *, content_type: str) -> HijackedStream:
    """Answer ``request`` with the hijack response head and take over its connection.

    The handler streams through the returned object and, when done, returns
    ``stream.finish()``, which closes the connection and releases aiohttp's side of it.
    """
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    response = web.StreamResponse(
        status=101 if upgrade else 200,
        reason="UPGRADED" if upgrade else "OK",
        headers={"Content-Type": content_type}
        | ({"Connection": "Upgrade", "Upgrade": "tcp"} if upgrade else {}),
    )
    if not upgrade:
        response.force_close()
    await response.prepare(request)
    protocol = request.protocol
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    # Bytes the client sent after the request head were buffered by aiohttp.
    initial = bytes(getattr(protocol, "_message_tail", b""))
    with contextlib.suppress(AttributeError):
        protocol._message_tail = b""
    stream = HijackedStream(transport, initial, owner=protocol, response=response)
    transport.set_protocol(stream)
    return stream


_WINDING_DOWN: set[asyncio.Task[None]] = set()  # held until done (the loop holds weak refs)


def wind_down(tasks: Iterable[asyncio.Task[Any]], then: Callable[[], None]) -> None:
    """Cancel the copy tasks of a stream that has ended and let them finish in the
    background, then call ``then`` (to close what they used). The caller returns at once
    and can end the client's stream: awaiting each cancelled task took a loop turn apiece,
    milliseconds while a container's exit is being handled, and `docker run` waits for
    that end."""
    pending = list(tasks)
    for task in pending:
        task.cancel()

    async def finish() -> None:
        try:
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            then()

    cleanup = asyncio.get_running_loop().create_task(finish())
    _WINDING_DOWN.add(cleanup)
    cleanup.add_done_callback(_WINDING_DOWN.discard)
