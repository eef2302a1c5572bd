"""Docker Engine API: exec operations (``docker exec``), one handler per operation id."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_bool, get_str, get_str_list, read_json
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.streams import relay
from dockyard.api.errors import json_response
from dockyard.controller.execs import ExecConfig
from dockyard.core.errors import InvalidArgument
from dockyard.wire.detach import parse_detach_keys
from dockyard.wire.hijack import hijack
from dockyard.wire.query import query_int

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/containers/{id}/exec")
async def container_exec(request: web.Request) -> web.Response:
    body = await read_json(request)
    args = get_str_list(body, "Cmd", lone_string=True)
    if not args:
        raise InvalidArgument("No exec command specified")
    exec_id = await ApiContext.of(request).controller.execs.create(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        config=ExecConfig(
            args=args,
            env=get_str_list(body, "Env") or (),
            cwd=get_str(body, "WorkingDir"),
            user=get_str(body, "User"),
            tty=get_bool(body, "Tty"),
            attach_stdin=get_bool(body, "AttachStdin"),
            attach_stdout=get_bool(body, "AttachStdout"),
            attach_stderr=get_bool(body, "AttachStderr"),
            privileged=get_bool(body, "Privileged"),
            console_size=_console_size(body),
            detach_keys=_detach_keys(get_str(body, "DetachKeys")),
        ),
    )
    return json_response({"Id": exec_id}, status=201)


@routes.post("/exec/{id}/start")
async def exec_start(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, empty_ok=True)
    execs = ApiContext.of(request).controller.execs
    tenant, exec_id = tenant_of(request).id, request.match_info["id"]
    if get_bool(body, "Detach"):
        await execs.start_detached(tenant=tenant, exec_id=exec_id)
        return web.Response(status=200)
    # Refusals (unknown exec, already started, container stopped) come before the hijack.
    agent = await execs.start_attached(tenant=tenant, exec_id=exec_id)
    client = await hijack(request, content_type="application/vnd.docker.raw-stream")
    await relay(client, agent)
    return client.finish()


@routes.post("/exec/{id}/resize")
async def exec_resize(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.execs.resize(
        tenant=tenant_of(request).id,
        exec_id=request.match_info["id"],
        height=query_int(request, "h"),
        width=query_int(request, "w"),
    )
    return web.Response(status=200)


@routes.get("/exec/{id}/json")
async def exec_inspect(request: web.Request) -> web.Response:
    view = await ApiContext.of(request).controller.execs.inspect(
        tenant=tenant_of(request).id, exec_id=request.match_info["id"]
    )
    status, req = view.status, view.status.request
    return json_response(
        {
            "CanRemove": False,
            "ContainerID": view.container.id,
            "DetachKeys": req.detach_keys,
            "ExitCode": status.exit_code,
            "ID": req.id,
            "OpenStderr": req.attach_stderr,
            "OpenStdin": req.attach_stdin,
            "OpenStdout": req.attach_stdout,
            "ProcessConfig": {
                "arguments": list(req.args[1:]),
                "entrypoint": req.args[0],
                "privileged": False,
                "tty": req.tty,
                "user": req.user,
            },
            "Running": status.running,
            "Pid": status.pid,
        }
    )


def _detach_keys(text: str) -> str:
    parse_detach_keys(text)  # refuse a malformed sequence now, not at start
    return text


def _console_size(body: dict[str, Any]) -> tuple[int, int]:
    value = body.get("ConsoleSize")
    if value is None:
        return (0, 0)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and v >= 0 for v in value)
    ):
        raise InvalidArgument("invalid ConsoleSize: expected [height, width]")
    return (value[0], value[1])
