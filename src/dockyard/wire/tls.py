"""Serving aiohttp over TLS with half-close, as Docker clients need for attach and exec.

The docker CLI ends its stdin side of an attach or exec stream with ``CloseWrite``, which
over TLS is a ``close_notify`` alert on a still-open connection, and then reads the
container's output to the end (even ``docker run busybox echo hi`` does, stdin or not).
Go's crypto/tls, on Docker's side, can still write after it received one. asyncio's TLS
protocol cannot: on ``close_notify`` it shuts the connection down whatever the
application's ``eof_received()`` answers ("returning true from eof_received() has no
effect when using ssl"), and the output is lost.

:class:`HalfCloseTLSProtocol` keeps asyncio's TLS machinery but honours that answer: a
protocol that returns True from ``eof_received()`` (``wire.hijack.HijackedStream``) keeps
writing until it closes the transport, and the TLS shutdown happens then. It leans on
asyncio's ``SSLProtocol`` internals (the implementation of Python 3.11 and later), so
``tests/unit/wire/test_wire_tls.py`` checks the behaviour on real sockets. It also sends
the TLS alert of a refused handshake before hanging up, which asyncio drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from asyncio import sslproto
from typing import Any

from aiohttp import web

__all__ = ["HalfCloseTLSProtocol", "TLSSite"]


class HalfCloseTLSProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, letting the application write on after the
    client's ``close_notify`` when its ``eof_received()`` asks to keep the connection."""

    _keep_open_after_eof = False

    def _call_eof_received(self) -> None:
        # As SSLProtocol._call_eof_received, but remembering the application's answer.
        if self._app_state != sslproto.AppProtocolState.STATE_CON_MADE:  # type: ignore[has-type]
            return
        self._app_state = sslproto.AppProtocolState.STATE_EOF
        try:
            application: Any = self._app_protocol
            self._keep_open_after_eof = bool(application.eof_received())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            # asyncio drops the connection without sending the alert OpenSSL wrote
            # ("certificate required", "unknown ca"): the client would only see EOF.
            # Send it first, so that docker says why, as it does with dockerd.
            with contextlib.suppress(Exception):
                self._process_outgoing()  # type: ignore[attr-defined]
        super()._on_handshake_complete(handshake_exc)

    def _start_shutdown(self) -> None:
        # Called right after _call_eof_received when close_notify arrives, and again when
        # the application closes its transport: skip the first while it keeps writing.
        if self._keep_open_after_eof:
            self._keep_open_after_eof = False
            return
        super()._start_shutdown()


class TLSSite(web.TCPSite):
    """An aiohttp TCP site whose connections speak TLS through HalfCloseTLSProtocol."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, context: ssl.SSLContext
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self._context = context

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        context = self._context

        def connection() -> Any:
            # No waiter: nobody awaits the handshake; a failed one just closes (and is
            # logged at debug level by asyncio, as for any TLS server).
            waiter: Any = None
            return HalfCloseTLSProtocol(loop, server(), context, waiter, server_side=True)

        self._server = await loop.create_server(
            connection,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
