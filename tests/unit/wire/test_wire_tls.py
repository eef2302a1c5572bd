"""wire.tls on real sockets: a hijacked stream keeps writing after the client's TLS
close_notify (what ``docker run`` over --tlsverify does), and plain requests still end."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path

from aiohttp import web

from dockyard.controller.pki import CertificateAuthority, TlsFiles
from dockyard.wire.hijack import hijack
from dockyard.wire.tls import TLSSite


def _contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    files = TlsFiles(tmp_path / "tls")
    ca = CertificateAuthority.load_or_create(files, name="t")
    ca.issue_server(files, names=("127.0.0.1",))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(files.server_cert), str(files.server_key))
    client = ssl.create_default_context(cafile=str(files.ca_cert))
    return server, client


async def _echo_after_eof(request: web.Request) -> web.StreamResponse:
    """Read the client's side to its end, then answer with what it sent."""
    stream = await hijack(request, content_type="application/vnd.docker.raw-stream")
    received = b""
    while chunk := await stream.read():
        received += chunk
    await stream.write(b"got:" + received)
    return stream.finish()


_REQUEST = b"POST /attach HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"


def _half_close_client(port: int, context: ssl.SSLContext) -> bytes:
    """Send a hijack request and, once answered, b"hello"; close our side with
    close_notify (the socket stays open, as Go's tls.Conn.CloseWrite does), then read
    everything the server says."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def pump(*, read: bool) -> bool:
            if pending := outgoing.read():
                sock.sendall(pending)
            if not read:
                return True
            data = sock.recv(65536)
            if data:
                incoming.write(data)
            else:
                incoming.write_eof()
            return bool(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump(read=True)
        tls.write(_REQUEST)
        pump(read=False)
        answer = b""
        while b"\r\n\r\n" not in answer:  # the docker CLI waits for the 101, then streams
            try:
                answer += tls.read(65536)
            except ssl.SSLWantReadError:
                pump(read=True)
        tls.write(b"hello")
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.unwrap()  # close_notify out; the server's comes later
        pump(read=False)
        while True:
            try:
                answer += tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                if not pump(read=True):
                    return answer
            except ssl.SSLZeroReturnError:
                return answer


def test_a_hijacked_stream_writes_after_the_clients_close_notify(tmp_path: Path) -> None:
    server_context, client_context = _contexts(tmp_path)

    async def main() -> bytes:
        app = web.Application()
        app.router.add_post("/attach", _echo_after_eof)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = TLSSite(runner, "127.0.0.1", 0, context=server_context)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(_half_close_client, port, client_context)
        finally:
            await runner.cleanup()

    answer = asyncio.run(main())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), answer
    assert body == b"got:hello"


def test_plain_requests_are_answered_and_the_connection_ends(tmp_path: Path) -> None:
    server_context, client_context = _contexts(tmp_path)

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hi")

    def get(port: int) -> bytes:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer

    async def main() -> bytes:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = TLSSite(runner, "127.0.0.1", 0, context=server_context)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(get, port)
        finally:
            await runner.cleanup()

    answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hi")


def test_a_refused_handshake_tells_the_client_why(tmp_path: Path) -> None:
    server_context, client_context = _contexts(tmp_path)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(cafile=str(tmp_path / "tls" / "ca.pem"))

    def connect(port: int) -> str:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                return repr(sock.recv(65536))
        except ssl.SSLError as exc:
            return str(exc)

    async def main() -> str:
        runner = web.AppRunner(web.Application(), handle_signals=False)
        await runner.setup()
        site = TLSSite(runner, "127.0.0.1", 0, context=server_context)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(connect, port)
        finally:
            await runner.cleanup()

    assert "CERTIFICATE_REQUIRED" in asyncio.run(main()).upper()
