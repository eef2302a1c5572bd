"""The agent protocol over HTTP (see docs/agent-protocol.md).

Bodies are the dataclasses of :mod:`dockyard.core.protocol` as JSON. Errors are
``{"error": {"kind": ..., "message": ...}}``; the status code is informative only, the
kind is what callers act on. Streams: logs are a chunked body in Docker's framing, attach
is a hijacked connection, events are newline-delimited JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from dockyard.agent.attach import AttachOptions
from dockyard.agent.containers import ContainerManager
from dockyard.agent.events import ResyncNeeded
from dockyard.agent.execs import ExecManager
from dockyard.agent.files import ContainerFiles
from dockyard.agent.files_http import add_file_routes
from dockyard.agent.logs import serve_logs
from dockyard.agent.stats import sample
from dockyard.agent.top import top
from dockyard.agent.usage import DiskWatch
from dockyard.core.errors import DockyardError, InvalidArgument, NotFound
from dockyard.core.protocol import (
    AgentInfo,
    ContainerListing,
    CreateRequest,
    EndpointSpec,
    ExecRequest,
    NetworkSpec,
    Resources,
    StopRequest,
    VolumeRequest,
)
from dockyard.core.serde import from_data, to_data
from dockyard.volumes.local import LocalVolumes
from dockyard.wire.detach import parse_detach_keys
from dockyard.wire.hijack import hijack
from dockyard.wire.query import flag, query_int
from dockyard.wire.status import http_status

__all__ = ["make_app"]

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("dockyard.agent")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(to_data(data), separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


async def _body(request: web.Request, cls: type[T]) -> T:
    try:
        data = await request.json()
    except ValueError as exc:
        raise InvalidArgument(f"invalid JSON body: {exc}") from exc
    return from_data(cls, data)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DockyardError as exc:
        error = exc.to_wire()
        status = http_status(exc)
    except (web.HTTPException, ConnectionResetError):
        raise
    except Exception as exc:  # the one place unexpected errors become protocol errors
        log.exception("agent request %s %s failed", request.method, request.path)
        error = {"kind": "internal", "message": f"agent error: {exc!r}"}
        status = 500
    return web.Response(
        text=json.dumps({"error": error}), status=status, content_type="application/json"
    )


def make_app(  # noqa: PLR0915  (one route table, one handler per route)
    *,
    manager: ContainerManager,
    execs: ExecManager,
    volumes: LocalVolumes,
    info: Callable[[], AgentInfo],
    files: ContainerFiles | None = None,
    usage: DiskWatch | None = None,
) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024 * 1024)

    async def end_event_streams(_app: web.Application) -> None:
        # The controller follows events for as long as we run: end its stream, or the
        # server waits for it to end on its own before the process can exit.
        manager.events.end_streams()

    app.on_shutdown.append(end_event_streams)
    routes = web.RouteTableDef()

    @routes.get("/v1/info")
    async def get_info(_request: web.Request) -> web.Response:
        return _json(info())

    @routes.get("/v1/containers")
    async def list_containers(_request: web.Request) -> web.Response:
        # No await between reading the position and listing: the pair is consistent.
        return _json(
            ContainerListing(
                boot_id=manager.events.boot_id,
                seq=manager.events.seq,
                containers=manager.statuses(),
            )
        )

    @routes.post("/v1/containers")
    async def create(request: web.Request) -> web.Response:
        return _json(await manager.create(await _body(request, CreateRequest)), 201)

    @routes.get("/v1/containers/{id}")
    async def status(request: web.Request) -> web.Response:
        return _json(manager.status(request.match_info["id"]))

    @routes.post("/v1/containers/{id}/start")
    async def start(request: web.Request) -> web.Response:
        return _json(await manager.start(request.match_info["id"]))

    @routes.post("/v1/containers/{id}/stop")
    async def stop(request: web.Request) -> web.Response:
        body = await _body(request, StopRequest)
        return _json(
            await manager.stop(request.match_info["id"], signal=body.signal, timeout=body.timeout)
        )

    @routes.post("/v1/containers/{id}/kill")
    async def kill(request: web.Request) -> web.Response:
        await manager.kill(request.match_info["id"], request.query.get("signal", "SIGKILL"))
        return _json({})

    @routes.post("/v1/containers/{id}/pause")
    async def pause(request: web.Request) -> web.Response:
        return _json(await manager.pause(request.match_info["id"]))

    @routes.post("/v1/containers/{id}/unpause")
    async def unpause(request: web.Request) -> web.Response:
        return _json(await manager.unpause(request.match_info["id"]))

    @routes.post("/v1/containers/{id}/update")
    async def update(request: web.Request) -> web.Response:
        resources = await _body(request, Resources)
        return _json(await manager.update(request.match_info["id"], resources))

    @routes.delete("/v1/containers/{id}")
    async def delete(request: web.Request) -> web.Response:
        await manager.delete(request.match_info["id"], force=flag(request, "force"))
        return _json({})

    @routes.put("/v1/containers/{id}/network")
    async def update_network(request: web.Request) -> web.Response:
        body = await _body(request, NetworkSpec)
        await manager.update_network(request.match_info["id"], body)
        return _json({})

    @routes.post("/v1/containers/{id}/endpoints")
    async def connect(request: web.Request) -> web.Response:
        body = await _body(request, EndpointSpec)
        await manager.connect(request.match_info["id"], body)
        return web.Response(status=204)

    @routes.delete("/v1/containers/{id}/endpoints/{endpoint}")
    async def disconnect(request: web.Request) -> web.Response:
        await manager.disconnect(request.match_info["id"], request.match_info["endpoint"])
        return web.Response(status=204)

    @routes.get("/v1/containers/{id}/size")
    async def size(request: web.Request) -> web.Response:
        return _json(await manager.size(request.match_info["id"]))

    @routes.get("/v1/containers/{id}/top")
    async def top_(request: web.Request) -> web.Response:
        pids = manager.pids(request.match_info["id"])
        return _json(await top(pids, request.query.get("ps_args", "")))

    @routes.get("/v1/containers/{id}/stats")
    async def stats(request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        record = manager.record(cid)
        running = record.status in ("running", "paused") and record.pid > 0
        return _json(
            await asyncio.to_thread(
                sample, cid, cgroup=manager.cgroup(cid), pid=record.pid, running=running
            )
        )

    @routes.post("/v1/containers/{id}/wait")
    async def wait(request: web.Request) -> web.Response:
        await manager.wait_exit(request.match_info["id"])
        return _json(manager.status(request.match_info["id"]))

    @routes.get("/v1/containers/{id}/logs")
    async def logs(request: web.Request) -> web.StreamResponse:
        cid = request.match_info["id"]
        record = manager.record(cid)

        def state() -> tuple[bool, int] | None:
            try:
                current = manager.record(cid)
            except NotFound:
                return None
            return current.status in ("running", "paused"), current.started_at

        return await serve_logs(
            request, manager.logs, cid, tty=record.request.process.tty, state=state
        )

    @routes.post("/v1/containers/{id}/attach")
    async def attach(request: web.Request) -> web.StreamResponse:
        cid = request.match_info["id"]
        manager.record(cid)  # NotFound before hijacking
        options = AttachOptions(
            stdin=flag(request, "stdin"),
            stdout=flag(request, "stdout"),
            stderr=flag(request, "stderr"),
            tty=False,
            detach_keys=parse_detach_keys(request.query.get("detachKeys", "")),
        )
        stream = await hijack(request, content_type="application/vnd.docker.raw-stream")
        try:
            await manager.attach(cid, stream, options)
        except (DockyardError, OSError) as exc:
            log.info("attach to %s ended: %s", cid, exc)
        return stream.finish()

    @routes.post("/v1/containers/{id}/resize")
    async def resize(request: web.Request) -> web.Response:
        manager.resize(
            request.match_info["id"], height=query_int(request, "h"), width=query_int(request, "w")
        )
        return _json({})

    @routes.post("/v1/containers/{id}/execs")
    async def exec_create(request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        body = await _body(request, ExecRequest)
        record = manager.record(cid)
        return _json(execs.create(manager.paths(cid), body, status=record.status), 201)

    @routes.get("/v1/containers/{id}/execs/{exec}")
    async def exec_inspect(request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        status = manager.record(cid).status
        return _json(execs.status(manager.paths(cid), request.match_info["exec"], status=status))

    @routes.post("/v1/containers/{id}/execs/{exec}/start")
    async def exec_start(request: web.Request) -> web.StreamResponse:
        cid, exec_id = request.match_info["id"], request.match_info["exec"]
        record = manager.record(cid)
        detach = flag(request, "detach")
        started = await execs.launch(
            manager.paths(cid), exec_id, status=record.status, attach=not detach
        )
        if detach:
            await execs.detach(started)
            return _json({})
        stream = await hijack(request, content_type="application/vnd.docker.raw-stream")
        try:
            await execs.attach(started, stream)
        except (DockyardError, OSError) as exc:
            log.info("exec %s in %s ended: %s", exec_id, cid, exc)
        return stream.finish()

    @routes.post("/v1/containers/{id}/execs/{exec}/resize")
    async def exec_resize(request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        manager.record(cid)
        execs.resize(
            manager.paths(cid),
            request.match_info["exec"],
            height=query_int(request, "h"),
            width=query_int(request, "w"),
        )
        return _json({})

    @routes.get("/v1/events")
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        boot = request.query.get("boot", "")
        after = query_int(request, "after")
        try:
            async for event in manager.events.follow(boot_id=boot, after=after):
                await response.write(json.dumps(to_data(event)).encode() + b"\n")
        except ResyncNeeded as exc:
            line = {"resync": exc.seq, "boot_id": manager.events.boot_id}
            await response.write(json.dumps(line).encode() + b"\n")
        return response

    @routes.post("/v1/volumes")
    async def create_volume(request: web.Request) -> web.Response:
        body = await _body(request, VolumeRequest)
        path = await asyncio.to_thread(
            volumes.create,
            tenant=body.tenant,
            name=body.name,
            uid_base=body.uid_base,
            options=body.options,
        )
        return _json({"name": body.name, "tenant": body.tenant, "mountpoint": str(path)}, 201)

    @routes.get("/v1/volumes/{tenant}/{name}")
    async def volume_usage(request: web.Request) -> web.Response:
        tenant, name = request.match_info["tenant"], request.match_info["name"]
        path = volumes.path(tenant=tenant, name=name)
        size = await asyncio.to_thread(volumes.size, tenant=tenant, name=name)
        return _json({"name": name, "tenant": tenant, "mountpoint": str(path), "size": size})

    @routes.delete("/v1/volumes/{tenant}/{name}")
    async def remove_volume(request: web.Request) -> web.Response:
        await asyncio.to_thread(
            volumes.remove, tenant=request.match_info["tenant"], name=request.match_info["name"]
        )
        return _json({})

    if usage is not None:

        @routes.get("/v1/tenants/{tenant}/usage")
        async def tenant_usage(request: web.Request) -> web.Response:
            return _json(await usage.tenant_usage(request.match_info["tenant"]))

    if files is not None:
        add_file_routes(routes, files)  # archive, export, changes, layer (agent/files_http.py)
    app.add_routes(routes)
    return app
