"""Agent protocol routes for container files: archive (cp), export, changes (diff) and
layer (commit).

See docs/agent-protocol.md. Tars stream as they are made; the stat of an archived path
travels in the ``X-Dockyard-Path-Stat`` header (base64 of the ``PathStat`` JSON) because it
must be known before the first byte. Uploads are the request body; nothing is written
unless it arrives complete.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dockyard.agent.files import ContainerFiles
from dockyard.core.errors import DockyardError
from dockyard.core.serde import to_data
from dockyard.wire.query import flag

__all__ = ["PATH_STAT_HEADER", "add_file_routes"]

PATH_STAT_HEADER = "X-Dockyard-Path-Stat"
log = logging.getLogger("dockyard.agent")
_CHUNK = 1 << 20


def _json(data: Any) -> web.Response:
    return web.Response(
        text=json.dumps(to_data(data), separators=(",", ":")), content_type="application/json"
    )


async def _stream(
    request: web.Request, chunks: AsyncIterator[bytes], headers: dict[str, str]
) -> web.StreamResponse:
    """Copy a tar to the caller. If the tar breaks off, the connection is cut, so the
    caller sees a truncated transfer rather than a short tar; if the caller goes away, the
    copy simply ends (the archive child is killed on the way out)."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar", **headers})
    try:
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        log.info("%s %s: the caller went away", request.method, request.path)
    except DockyardError as exc:
        log.warning("%s %s broke off: %s", request.method, request.path, exc.message)
        if request.transport is not None:
            request.transport.abort()
    return response


def add_file_routes(routes: web.RouteTableDef, files: ContainerFiles) -> None:
    """Add the file routes to an agent's route table."""

    @routes.get("/v1/containers/{id}/archive/stat")
    async def archive_stat(request: web.Request) -> web.Response:
        return _json(await files.stat(request.match_info["id"], request.query.get("path", "")))

    @routes.get("/v1/containers/{id}/archive")
    async def archive(request: web.Request) -> web.StreamResponse:
        path = request.query.get("path", "")
        async with files.archive(request.match_info["id"], path) as (found, chunks):
            encoded = base64.b64encode(json.dumps(to_data(found)).encode()).decode()
            return await _stream(request, chunks, {PATH_STAT_HEADER: encoded})

    @routes.put("/v1/containers/{id}/archive")
    async def extract(request: web.Request) -> web.Response:
        try:
            await files.extract(
                request.match_info["id"],
                request.query.get("path", ""),
                request.content.iter_chunked(_CHUNK),
                keep_ids=flag(request, "copy_uid_gid"),
                no_overwrite_dir_non_dir=flag(request, "no_overwrite_dir_non_dir"),
            )
        except ConnectionError:
            # The upload broke off: nothing was extracted, and nobody is left to tell.
            log.info("%s %s: the upload broke off", request.method, request.path)
            raise web.HTTPBadRequest(reason="upload broke off") from None
        return _json({})

    @routes.get("/v1/containers/{id}/export")
    async def export(request: web.Request) -> web.StreamResponse:
        async with files.export(request.match_info["id"]) as chunks:
            return await _stream(request, chunks, {})

    @routes.get("/v1/containers/{id}/layer")
    async def layer(request: web.Request) -> web.StreamResponse:
        async with files.layer(request.match_info["id"]) as chunks:
            return await _stream(request, chunks, {})

    @routes.get("/v1/containers/{id}/changes")
    async def changes(request: web.Request) -> web.Response:
        return _json({"changes": await files.changes(request.match_info["id"])})
