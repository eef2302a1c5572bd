"""Docker Engine API: container operations, one handler per Docker operation id."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_int, get_map, get_str, read_json
from dockyard.api.docker.container_json import (
    Joined,
    container_summary,
    inspect_container,
    mounts_json,
    parse_create,
)
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.filters import name_pattern, parse_filters
from dockyard.api.docker.logs import log_params, stream_logs
from dockyard.api.docker.streams import relay
from dockyard.api.errors import json_response
from dockyard.controller.containers import UpdateRequest
from dockyard.core.clock import parse_time_filter
from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.core.models import Container, HostConfig, RestartPolicy, Status
from dockyard.wire.detach import parse_detach_keys
from dockyard.wire.hijack import hijack
from dockyard.wire.query import flag, query_int

__all__ = ["routes"]

routes = web.RouteTableDef()
_LIST_FILTERS = (
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
)
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _networks(ctx: ApiContext, container: Container) -> Joined:
    """The container's networks that still exist, with its endpoint on each."""
    joined = []
    for endpoint in container.endpoints:
        network = ctx.controller.networks.find(
            tenant=container.tenant, network_id=endpoint.network_id
        )
        if network is not None:
            joined.append((network, endpoint))
    return joined


def _on_network(ctx: ApiContext, container: Container, wanted: set[str]) -> bool:
    """Docker's ``network`` filter: a network of the container by name or full id."""
    return any(
        network.name in wanted or network.id in wanted for network, _ in _networks(ctx, container)
    )


def _volumes(ctx: ApiContext, container: Container) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for mount in container.mounts:
        if mount.type == "volume" and mount.source not in found:
            with contextlib.suppress(NotFound):
                found[mount.source] = ctx.controller.volumes.get(
                    tenant=container.tenant, name=mount.source
                )
    return found


# list / create / inspect ----------------------------------------------------------------


def _matcher(ctx: ApiContext, f: Any, tenant: str) -> Callable[[Container], bool]:
    """The list filters as one predicate; references are resolved once, not per container."""
    checks: list[Callable[[Container], bool]] = []
    if f.has("id"):
        ids = f.get("id")
        checks.append(lambda c: any(c.id.startswith(v) for v in ids))
    if f.has("name"):
        patterns = [name_pattern(v) for v in f.get("name")]
        checks.append(lambda c: any(p.search(c.name) or p.search(f"/{c.name}") for p in patterns))
    if f.has("status"):
        statuses = set(f.get("status"))
        checks.append(lambda c: c.state.status.value in statuses)
    if f.has("label"):
        labels = [item.partition("=") for item in f.get("label")]
        checks.append(
            lambda c: all(
                key in c.config.labels and (not sep or c.config.labels[key] == value)
                for key, sep, value in labels
            )
        )
    if f.has("exited"):
        codes = set(f.get("exited"))
        checks.append(lambda c: c.state.status == Status.EXITED and str(c.state.exit_code) in codes)
    if f.has("ancestor"):
        refs = set(f.get("ancestor"))
        images = set()
        for ref in refs:
            with contextlib.suppress(NotFound):
                images.add(ctx.controller.images.resolve(tenant=tenant, ref=ref).id)
        checks.append(lambda c: c.image_id in images or c.image in refs)
    if f.has("before"):
        before = ctx.controller.containers.get(tenant=tenant, ref=f.one("before")).created
        checks.append(lambda c: c.created < before)
    if f.has("since"):
        since = ctx.controller.containers.get(tenant=tenant, ref=f.one("since")).created
        checks.append(lambda c: c.created > since)
    if f.has("volume"):
        volumes = set(f.get("volume"))
        checks.append(lambda c: any(m.source in volumes or m.target in volumes for m in c.mounts))
    if f.has("network"):
        wanted = set(f.get("network"))
        checks.append(lambda c: _on_network(ctx, c, wanted))
    if f.has("publish"):
        published = {p if "/" in p else f"{p}/tcp" for p in f.get("publish")}
        checks.append(lambda c: bool(published & _published(c)))
    if f.has("expose"):
        exposed = {p if "/" in p else f"{p}/tcp" for p in f.get("expose")}
        checks.append(lambda c: bool(exposed & set(c.config.exposed_ports)))
    if f.has("health"):
        wanted = set(f.get("health"))
        unknown = wanted - {"starting", "healthy", "unhealthy", "none"}
        if unknown:
            raise InvalidArgument(f"Unrecognised filter value for health: {sorted(unknown)[0]}")
        checks.append(lambda c: (c.state.health.status if c.state.health else "none") in wanted)
    if f.has("is-task") and f.bool("is-task"):
        return lambda c: False  # no swarm tasks
    return lambda c: all(check(c) for check in checks)


def _published(c: Container) -> set[str]:
    """``8080/tcp`` for the container port and ``80/tcp`` for each host port bound to it."""
    return set(c.ports) | {
        f"{b.host_port}/{key.split('/')[1]}" for key, bindings in c.ports.items() for b in bindings
    }


@routes.get("/containers/json")
async def container_list(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request)
    f = parse_filters(request.query.get("filters", ""), _LIST_FILTERS)
    for value in f.get("status"):
        if value not in _STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for status: {value}")
    show_all = flag(request, "all")
    limit = query_int(request, "limit", -1)
    with_size = flag(request, "size")
    match = _matcher(ctx, f, tenant.id)
    containers = ctx.controller.containers.list_containers(tenant=tenant.id)
    containers.sort(key=lambda c: c.created, reverse=True)
    if limit > 0:
        show_all = True
    out = []
    for c in containers:
        active = c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
        if not show_all and not active and not f.has("status"):
            continue
        if not match(c):
            continue
        size = None
        if with_size:
            measured = await ctx.controller.containers.size(c)
            size = (measured.size_rw, measured.size_root_fs)
        out.append(
            container_summary(
                c, networks=_networks(ctx, c), mounts=mounts_json(c, _volumes(ctx, c)), size=size
            )
        )
        if 0 < limit <= len(out):
            break
    return json_response(out)


@routes.post("/containers/create")
async def container_create(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    platform = request.query.get("platform", "")
    if platform and not platform.startswith("linux"):
        raise InvalidArgument(f"platform {platform!r} is not supported (linux/amd64 only)")
    body = await read_json(request)
    config, host_config, endpoints, warnings = parse_create(body)
    result = await ctx.controller.containers.create(
        tenant=tenant_of(request),
        name=request.query.get("name", ""),
        config=config,
        host_config=host_config,
        endpoints=endpoints,
    )
    return json_response(
        {"Id": result.container.id, "Warnings": [*warnings, *result.warnings]}, status=201
    )


@routes.get("/containers/{id}/json")
async def container_inspect(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    c = ctx.controller.containers.get(tenant=tenant_of(request).id, ref=request.match_info["id"])
    size = None
    if flag(request, "size"):
        measured = await ctx.controller.containers.size(c)
        size = (measured.size_rw, measured.size_root_fs)
    return json_response(
        inspect_container(
            c, networks=_networks(ctx, c), mounts=mounts_json(c, _volumes(ctx, c)), size=size
        )
    )


# lifecycle ------------------------------------------------------------------------------


def _no_content() -> web.Response:
    return web.Response(status=204)


def _timeout(request: web.Request) -> int | None:
    value = request.query.get("t", "")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for t: {value!r}") from None


@routes.post("/containers/{id}/start")
async def container_start(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.start(
        tenant=tenant_of(request).id, ref=request.match_info["id"]
    )
    return _no_content()


@routes.post("/containers/{id}/stop")
async def container_stop(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.stop(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        timeout=_timeout(request),
        signal=request.query.get("signal", ""),
    )
    return _no_content()


@routes.post("/containers/{id}/restart")
async def container_restart(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.restart(
        tenant=tenant_of(request).id, ref=request.match_info["id"], timeout=_timeout(request)
    )
    return _no_content()


@routes.post("/containers/{id}/kill")
async def container_kill(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.kill(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        signal=request.query.get("signal", "SIGKILL"),
    )
    return _no_content()


@routes.post("/containers/{id}/pause")
async def container_pause(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.pause(
        tenant=tenant_of(request).id, ref=request.match_info["id"]
    )
    return _no_content()


@routes.post("/containers/{id}/unpause")
async def container_unpause(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.unpause(
        tenant=tenant_of(request).id, ref=request.match_info["id"]
    )
    return _no_content()


@routes.post("/containers/{id}/rename")
async def container_rename(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    if not name:
        raise InvalidArgument("name is required")
    await ApiContext.of(request).controller.containers.rename(
        tenant=tenant_of(request).id, ref=request.match_info["id"], name=name
    )
    return _no_content()


_UPDATE_FIELDS = {
    "CpuShares": "cpu_shares",
    "Memory": "memory",
    "CpuPeriod": "cpu_period",
    "CpuQuota": "cpu_quota",
    "NanoCpus": "nano_cpus",
    "CpusetCpus": "cpuset_cpus",
    "CpusetMems": "cpuset_mems",
    "MemoryReservation": "memory_reservation",
    "MemorySwap": "memory_swap",
    "PidsLimit": "pids_limit",
    "BlkioWeight": "blkio_weight",
}


@routes.post("/containers/{id}/update")
async def container_update(request: web.Request) -> web.Response:
    body = await read_json(request)
    values: dict[str, Any] = {}
    # As in Docker, a zero value means "leave as is": clients send every field.
    for key, field in _UPDATE_FIELDS.items():
        value = get_str(body, key) if field.startswith("cpuset") else get_int(body, key)
        if value:
            values[field] = value
    policy = get_map(body, "RestartPolicy")
    if get_str(policy, "Name", "RestartPolicy"):
        values["restart_policy"] = RestartPolicy(
            name=get_str(policy, "Name", "RestartPolicy"),
            maximum_retry_count=get_int(policy, "MaximumRetryCount", "RestartPolicy"),
        )
    warnings = await ApiContext.of(request).controller.containers.update(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        update=UpdateRequest(host_config=HostConfig(**values), fields=frozenset(values)),
    )
    return json_response({"Warnings": list(warnings)})


@routes.delete("/containers/{id}")
async def container_delete(request: web.Request) -> web.Response:
    if flag(request, "link"):
        raise InvalidArgument("legacy links are not supported")
    await ApiContext.of(request).controller.containers.remove(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        force=flag(request, "force"),
        volumes=flag(request, "v"),
    )
    return _no_content()


@routes.post("/containers/prune")
async def container_prune(request: web.Request) -> web.Response:
    f = parse_filters(request.query.get("filters", ""), ("until", "label", "label!"))
    until = parse_time_filter(f.one("until")) if f.has("until") else 0
    labels = tuple(f.get("label")) + tuple(
        f"{x}!" if "=" not in x else x.replace("=", "!=", 1) for x in f.get("label!")
    )
    deleted, reclaimed = await ApiContext.of(request).controller.containers.prune(
        tenant=tenant_of(request).id, until=until, labels=labels
    )
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


# wait -----------------------------------------------------------------------------------


@routes.post("/containers/{id}/wait")
async def container_wait(request: web.Request) -> web.StreamResponse:
    """Headers go out as soon as the waiter is registered (``docker run`` waits for them
    before it starts the container), the body when the condition is met."""
    waiter = ApiContext.of(request).controller.containers.wait_registered(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        condition=request.query.get("condition", ""),
    )
    await waiter.__anext__()  # raises NotFound / InvalidArgument before any header
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        code, error = await waiter.__anext__()
    finally:
        await waiter.aclose()
    body: dict[str, Any] = {"StatusCode": code, "Error": {"Message": error} if error else None}
    with contextlib.suppress(ConnectionResetError):  # the client left: nobody to tell
        await response.write(json.dumps(body).encode() + b"\n")
        await response.write_eof()
    return response


# streams --------------------------------------------------------------------------------


@routes.get("/containers/{id}/logs")
async def container_logs(request: web.Request) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    c = ctx.controller.containers.get(tenant=tenant_of(request).id, ref=request.match_info["id"])
    stream = ctx.controller.containers.logs(c, log_params(request))
    return await stream_logs(request, stream, tty=c.config.tty)


@routes.post("/containers/{id}/attach")
async def container_attach(request: web.Request) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    c = ctx.controller.containers.get(tenant=tenant_of(request).id, ref=request.match_info["id"])
    params = {
        key: "1" if flag(request, key) else "0"
        for key in ("stdin", "stdout", "stderr", "logs", "stream")
    }
    detach_keys = request.query.get("detachKeys", "")
    parse_detach_keys(detach_keys)  # 400 before the hijack
    params["detachKeys"] = detach_keys
    agent = await ctx.controller.containers.attach(c, params)
    client = await hijack(request, content_type="application/vnd.docker.raw-stream")
    await relay(client, agent)
    return client.finish()


@routes.post("/containers/{id}/resize")
async def container_resize(request: web.Request) -> web.Response:
    await ApiContext.of(request).controller.containers.resize(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        height=query_int(request, "h"),
        width=query_int(request, "w"),
    )
    return web.Response(status=200)


@routes.get("/containers/{id}/top")
async def container_top(request: web.Request) -> web.Response:
    result = await ApiContext.of(request).controller.containers.top(
        tenant=tenant_of(request).id,
        ref=request.match_info["id"],
        ps_args=request.query.get("ps_args", ""),
    )
    return json_response({"Titles": result.titles, "Processes": result.processes})
