"""Docker Engine API: ``GET /containers/{id}/logs``, its query and its stream.

The query is read the way Docker's daemon reads it: at least one of ``stdout``/``stderr``;
``since``/``until`` as Unix times with an optional fraction (the CLI sends
``1700000000.123456789``), 0 meaning unset; ``tail`` a number or ``all``, anything that is
not a number meaning all (Docker's ``strconv.Atoi`` fallback); ``details`` adds the log's
attributes before each line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from aiohttp import web

from dockyard.core.clock import parse_time_filter
from dockyard.core.errors import DockyardError, InvalidArgument
from dockyard.wire.framing import SYSERR, frame
from dockyard.wire.query import flag

__all__ = ["log_params", "stream_logs"]

_CLIENT_CHECK = 1.0  # seconds between checks that a quiet stream's client is still there


def log_params(request: web.Request) -> dict[str, str]:
    """The request's query as the agent protocol takes it (times in ns)."""
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    if not stdout and not stderr:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    params = {
        "stdout": "1" if stdout else "0",
        "stderr": "1" if stderr else "0",
        "follow": "1" if flag(request, "follow") else "0",
        "timestamps": "1" if flag(request, "timestamps") else "0",
        "details": "1" if flag(request, "details") else "0",
    }
    for key in ("since", "until"):
        value = request.query.get(key, "").strip()
        if value and value != "0":
            when = parse_time_filter(value)
            if when < 0:
                raise InvalidArgument(f"invalid value for {key}: {value!r}")
            params[key] = str(when)
    tail = request.query.get("tail", "all").strip()
    if tail.lstrip("+").isdecimal():
        params["tail"] = str(int(tail))
    return params


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def stream_logs(
    request: web.Request, stream: AsyncGenerator[bytes, None], *, tty: bool
) -> web.StreamResponse:
    """Send ``stream`` as the response. Errors before the first chunk (no such container
    on the agent) are the request's; one after it ends the stream with Docker's "Error
    grabbing logs" line (on the system-error stream without a TTY). A client that goes
    away ends the stream, even while the container is quiet, so nothing is left following
    on its behalf."""
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.raw-stream"})
    try:
        first = await anext(stream, None)
        await response.prepare(request)
        if first is not None:
            await response.write(first)

        async def pump() -> None:
            async for chunk in stream:
                await response.write(chunk)

        task = asyncio.create_task(pump())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=_CLIENT_CHECK)
                if not task.done() and _client_gone(request):
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except DockyardError as exc:
            text = f"Error grabbing logs: {exc.message}\n".encode()
            await response.write(text if tty else frame(SYSERR, text))
        finally:
            if not task.done():  # we are cancelled ourselves (the server is stopping)
                task.cancel()
                # Let the pump leave the generator: closing one still being read fails.
                await asyncio.wait({task})
        if not _client_gone(request):
            await response.write_eof()
    except ConnectionResetError:
        pass  # the client went while we wrote
    finally:
        await stream.aclose()
    return response
