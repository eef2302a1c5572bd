"""The one table from error kinds to HTTP status, and Docker's error body.

Docker answers errors as ``{"message": "..."}``; a missing object is 404 whether it never
existed or belongs to another tenant.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard.core.errors import DockyardError
from dockyard.wire.status import http_status

__all__ = ["docker_errors", "error_response", "json_response"]

log = logging.getLogger("dockyard.api")
_SLOW = 5.0  # seconds; slower non-streaming requests are logged as warnings


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return json_response({"message": message}, status=status)


def json_response(data: object, *, status: int = 200) -> web.Response:
    """JSON with exactly ``Content-Type: application/json``: Docker's Go client reads an
    error body as JSON only when the header is exactly that (no charset)."""
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
    )


@web.middleware
async def docker_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    except DockyardError as exc:
        return error_response(http_status(exc), exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(
                exc.status,
                exc.reason
                if exc.status != 404
                else f"page not found: {request.method} {request.path}",
            )
        raise
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal server error")
    finally:
        elapsed = time.perf_counter() - started
        streaming = request.path.endswith(
            ("/attach", "/wait", "/logs", "/events", "/stats", "/archive", "/export")
        )
        if (elapsed > _SLOW and not streaming) or log.isEnabledFor(logging.DEBUG):
            log.log(
                logging.DEBUG if streaming or elapsed <= _SLOW else logging.WARNING,
                "%s %s took %.1f ms",
                request.method,
                request.path_qs,
                elapsed * 1000,
            )
