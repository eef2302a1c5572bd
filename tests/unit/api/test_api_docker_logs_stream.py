"""The logs response (api.docker.logs.stream_logs) served by a real aiohttp server on a
unix socket: an error mid-stream ends it as Docker does, a client that leaves a quiet
follow ends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

import dockyard.wire  # noqa: F401  (before aiohttp)
from dockyard.api.docker.logs import stream_logs
from dockyard.core.errors import Unavailable
from dockyard.wire.framing import STDOUT, SYSERR, FrameReader, frame


async def serve(
    tmp_path: Path, make: Callable[[], AsyncGenerator[bytes, None]], *, tty: bool = False
) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_logs(request, make(), tty=tty)

    app = web.Application()
    app.router.add_get("/logs", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "api.sock")
    await web.UnixSite(runner, path).start()
    return runner, path


def test_an_error_mid_stream_is_dockers_last_line(tmp_path: Path) -> None:
    async def make() -> AsyncGenerator[bytes, None]:
        yield b""
        yield frame(STDOUT, b"a\n")
        raise Unavailable("agent h1 is unreachable")

    async def scenario() -> bytes:
        runner, path = await serve(tmp_path, make)
        try:
            connector = aiohttp.UnixConnector(path=path)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get("http://x/logs") as response,
            ):
                assert response.status == 200
                return await response.read()
        finally:
            await runner.cleanup()

    assert FrameReader().feed(asyncio.run(scenario())) == [
        (STDOUT, b"a\n"),
        (SYSERR, b"Error grabbing logs: agent h1 is unreachable\n"),
    ]


def test_a_client_leaving_a_quiet_stream_ends_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        ended = asyncio.Event()

        async def make() -> AsyncGenerator[bytes, None]:
            try:
                yield b""
                await asyncio.Event().wait()  # a container that never writes again
                yield b"never"
            finally:
                ended.set()

        runner, path = await serve(tmp_path, make)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as s:
                response = await s.get("http://x/logs")
                assert response.status == 200
                response.close()
            await asyncio.wait_for(ended.wait(), 10)
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_a_server_shutting_down_ends_a_quiet_follow(tmp_path: Path) -> None:
    """The stopping server cancels the handler of a follow that outlasts its grace: the
    cancellation goes through, not an error about closing a stream still being read."""

    async def scenario() -> list[BaseException]:
        ended = asyncio.Event()
        escaped: list[BaseException] = []

        async def make() -> AsyncGenerator[bytes, None]:
            try:
                yield b""
                await asyncio.Event().wait()  # a container that never writes again
                yield b"never"
            finally:
                ended.set()

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await stream_logs(request, make(), tty=False)
            except BaseException as exc:
                escaped.append(exc)
                raise

        app = web.Application()
        app.router.add_get("/logs", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        path = str(tmp_path / "api.sock")
        await web.UnixSite(runner, path).start()
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as s:
            response = await s.get("http://x/logs")
            assert response.status == 200
            await runner.cleanup()  # while the client still follows
            response.close()
        await asyncio.wait_for(ended.wait(), 10)
        return escaped

    assert [type(exc) for exc in asyncio.run(scenario())] == [asyncio.CancelledError]
