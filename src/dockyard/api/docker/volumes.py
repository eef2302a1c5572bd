"""Docker Engine API: volume operations."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_str, get_str_map, read_json
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.filters import labels_match, parse_filters
from dockyard.api.errors import json_response
from dockyard.core.clock import format_rfc3339
from dockyard.core.errors import NotFound
from dockyard.core.models import Volume
from dockyard.wire.query import flag

__all__ = ["routes", "volume_json"]

routes = web.RouteTableDef()


def volume_json(volume: Volume, size: int | None = None, refs: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Name": volume.name,
        "Driver": volume.driver,
        "Mountpoint": volume.mountpoint,
        "CreatedAt": format_rfc3339(volume.created),
        "Labels": dict(volume.labels) or None,
        "Scope": "local",
        "Options": dict(volume.options) or None,
    }
    if size is not None:
        out["UsageData"] = {"Size": size, "RefCount": refs or 0}
    return out


def _matches(ctx: ApiContext, volume: Volume, f: Any) -> bool:
    if f.has("name") and not any(v in volume.name for v in f.get("name")):
        return False
    if f.has("driver") and volume.driver not in f.get("driver"):
        return False
    if not labels_match(volume.labels, f.get("label")):
        return False
    dangling = f.bool("dangling")
    if dangling is not None:
        used = bool(ctx.controller.containers.volume_users(tenant=volume.tenant, name=volume.name))
        if used == dangling:
            return False
    return True


@routes.get("/volumes")
async def volume_list(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    f = parse_filters(request.query.get("filters", ""), ("name", "driver", "label", "dangling"))
    volumes = [
        volume_json(v)
        for v in sorted(
            ctx.controller.volumes.list_volumes(tenant=tenant_of(request).id), key=lambda v: v.name
        )
        if _matches(ctx, v, f)
    ]
    return json_response({"Volumes": volumes, "Warnings": None})


@routes.post("/volumes/create")
async def volume_create(request: web.Request) -> web.Response:
    body = await read_json(request, empty_ok=True)
    volume = await ApiContext.of(request).controller.volumes.create(
        tenant=tenant_of(request),
        name=get_str(body, "Name"),
        driver=get_str(body, "Driver") or "local",
        labels=get_str_map(body, "Labels"),
        options=get_str_map(body, "DriverOpts"),
    )
    return json_response(volume_json(volume), status=201)


@routes.get("/volumes/{name}")
async def volume_inspect(request: web.Request) -> web.Response:
    volume = ApiContext.of(request).controller.volumes.get(
        tenant=tenant_of(request).id, name=request.match_info["name"]
    )
    return json_response(volume_json(volume))


@routes.delete("/volumes/{name}")
async def volume_delete(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    name = request.match_info["name"]
    try:
        await ctx.controller.volumes.remove(
            tenant=tenant,
            name=name,
            users=ctx.controller.containers.volume_users(tenant=tenant, name=name),
        )
    except NotFound:
        if not flag(request, "force"):
            raise
    return web.Response(status=204)


@routes.post("/volumes/prune")
async def volume_prune(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    f = parse_filters(request.query.get("filters", ""), ("label", "all"))
    prune_all = f.bool("all")
    deleted = []
    reclaimed = 0
    for volume in ctx.controller.volumes.list_volumes(tenant=tenant):
        if ctx.controller.containers.volume_users(tenant=tenant, name=volume.name):
            continue
        if prune_all is False and not volume.anonymous:
            continue
        if not labels_match(volume.labels, f.get("label")):
            continue
        size = await ctx.controller.volumes.usage(volume)
        await ctx.controller.volumes.remove(tenant=tenant, name=volume.name, users=[])
        deleted.append(volume.name)
        reclaimed += max(size, 0)
    return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})
