"""Docker Engine API: container files, one handler per Docker operation.

``docker cp`` (ContainerArchive, ContainerArchiveInfo, PutContainerArchive),
``docker export`` (ContainerExport) and ``docker diff`` (ContainerChanges). Docker's quirks
live here: the ``X-Docker-Container-Path-Stat`` header (base64 of JSON whose ``mode`` is a
Go ``os.FileMode`` and ``mtime`` an RFC 3339 time), the wording of a missing path, and
``null`` for a container without changes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import stat
from collections.abc import Iterator

from aiohttp import web

from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.errors import json_response
from dockyard.controller.agents import AgentStream
from dockyard.core.clock import format_rfc3339
from dockyard.core.errors import DockyardError, InvalidArgument, NotFound
from dockyard.core.models import Container
from dockyard.core.protocol import PathStat
from dockyard.wire.query import flag

__all__ = ["go_file_mode", "path_stat_header", "routes"]

log = logging.getLogger("dockyard.api")
routes = web.RouteTableDef()

PATH_STAT_HEADER = "X-Docker-Container-Path-Stat"
_CHUNK = 1 << 20
_EPOCH = "1970-01-01T00:00:00Z"
_CHANGE_KINDS = {"modified": 0, "added": 1, "deleted": 2}
# Go's os.FileMode type bits (io/fs): Docker clients read the stat's mode with them.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20
_GO_TYPES = {
    stat.S_IFDIR: _GO_DIR,
    stat.S_IFLNK: _GO_SYMLINK,
    stat.S_IFBLK: _GO_DEVICE,
    stat.S_IFCHR: _GO_DEVICE | _GO_CHAR_DEVICE,
    stat.S_IFIFO: _GO_NAMED_PIPE,
    stat.S_IFSOCK: _GO_SOCKET,
}


def go_file_mode(st_mode: int) -> int:
    """A Unix ``st_mode`` as Go's ``os.FileMode`` (what ``os.Lstat(...).Mode()`` gives)."""
    mode = st_mode & 0o777 | _GO_TYPES.get(stat.S_IFMT(st_mode), 0)
    for unix_bit, go_bit in (
        (stat.S_ISUID, _GO_SETUID),
        (stat.S_ISGID, _GO_SETGID),
        (stat.S_ISVTX, _GO_STICKY),
    ):
        if st_mode & unix_bit:
            mode |= go_bit
    return mode


def path_stat_header(found: PathStat) -> str:
    """The value of ``X-Docker-Container-Path-Stat`` for ``found``."""
    data = {
        "name": found.name,
        "size": found.size,
        "mode": go_file_mode(found.mode),
        "mtime": format_rfc3339(found.mtime) if found.mtime > 0 else _EPOCH,
        "linkTarget": found.link_target,
    }
    return base64.b64encode(json.dumps(data).encode()).decode()


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    return path


def _container(request: web.Request) -> Container:
    return ApiContext.of(request).controller.files.container(
        tenant=tenant_of(request).id, ref=request.match_info["id"]
    )


@contextlib.contextmanager
def _file_not_found(request: web.Request, path: str) -> Iterator[None]:
    """Docker's words for a path missing in an existing container."""
    try:
        yield
    except NotFound as exc:
        ref = request.match_info["id"]
        raise NotFound(f"Could not find the file {path} in container {ref}") from exc


async def _stream(
    request: web.Request, stream: AgentStream, headers: dict[str, str]
) -> web.StreamResponse:
    """Copy an agent's tar to the client. If the agent's stream breaks off, the client's
    connection is cut too, so it sees a truncated transfer rather than a short tar. If the
    client goes away, closing the agent's stream ends the work there."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar", **headers})
    try:
        await response.prepare(request)
        async for chunk in stream.chunks():
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        log.debug("%s %s: the client went away", request.method, request.path)
    except DockyardError as exc:
        log.warning("%s %s broke off: %s", request.method, request.path, exc.message)
        if request.transport is not None:
            request.transport.abort()
    finally:
        stream.close()
    return response


@routes.head("/containers/{id}/archive")
async def container_archive_info(request: web.Request) -> web.Response:
    path = _path(request)
    container = _container(request)
    with _file_not_found(request, path):
        found = await ApiContext.of(request).controller.files.stat(container, path)
    return web.Response(status=200, headers={PATH_STAT_HEADER: path_stat_header(found)})


@routes.get("/containers/{id}/archive")
async def container_archive(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    container = _container(request)
    with _file_not_found(request, path):
        found, stream = await ApiContext.of(request).controller.files.archive(container, path)
    return await _stream(request, stream, {PATH_STAT_HEADER: path_stat_header(found)})


@routes.put("/containers/{id}/archive")
async def put_container_archive(request: web.Request) -> web.Response:
    path = _path(request)
    container = _container(request)
    with _file_not_found(request, path):
        await ApiContext.of(request).controller.files.extract(
            container,
            path,
            request.content.iter_chunked(_CHUNK),
            copy_uid_gid=flag(request, "copyUIDGID"),
            no_overwrite_dir_non_dir=flag(request, "noOverwriteDirNonDir"),
        )
    return web.Response(status=200)


@routes.get("/containers/{id}/export")
async def container_export(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    stream = await ApiContext.of(request).controller.files.export(container)
    return await _stream(request, stream, {})


@routes.get("/containers/{id}/changes")
async def container_changes(request: web.Request) -> web.Response:
    container = _container(request)
    changes = await ApiContext.of(request).controller.files.changes(container)
    # Docker answers null, not [], for a container that changed nothing.
    return json_response([{"Path": c.path, "Kind": _CHANGE_KINDS[c.kind]} for c in changes] or None)
