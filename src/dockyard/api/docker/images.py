"""Docker Engine API: image operations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dockyard.api.docker import registry
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.filters import parse_filters
from dockyard.api.errors import json_response
from dockyard.controller.images import (
    matches_labels,
    matches_reference,
    matches_reference_tag,
    parse_created,
)
from dockyard.core.clock import format_rfc3339, parse_time_filter
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import Image, Status
from dockyard.wire.query import flag

__all__ = ["routes"]

routes = web.RouteTableDef()
_NAME = "{name:.+}"


def _body_stream(request: web.Request) -> AsyncIterator[bytes]:
    return request.content.iter_chunked(1 << 20)


def _users(ctx: ApiContext, tenant: str) -> dict[str, list[tuple[str, bool]]]:
    users: dict[str, list[tuple[str, bool]]] = {}
    for c in ctx.controller.containers.list_containers(tenant=tenant):
        running = c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
        users.setdefault(c.image_id, []).append((c.id, running))
    return users


def image_summary(image: Image, config: dict[str, Any], containers: int) -> dict[str, Any]:
    return {
        "Id": image.id,
        "ParentId": image.parent,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Created": image.created // 1_000_000_000,
        "Size": image.size,
        "SharedSize": -1,
        "VirtualSize": image.size,
        "Labels": (config.get("config") or {}).get("Labels") or {},
        "Containers": containers,
    }


def image_inspect_json(image: Image, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": image.parent,
        "Comment": image.comment,
        "Created": format_rfc3339(image.created),
        "Container": config.get("container", ""),  # a commit's: ADR 0017
        "ContainerConfig": config.get("container_config") or {},
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config") or {},
        "Architecture": config.get("architecture", "amd64"),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", "linux"),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Data": None, "Name": "overlayfs"},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": format_rfc3339(image.loaded_at)},
    }


@routes.get("/images/json")
async def image_list(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    f = parse_filters(
        request.query.get("filters", ""), ("dangling", "label", "before", "since", "reference")
    )
    images = ctx.controller.images.list_images(tenant=tenant)
    dangling = f.bool("dangling")
    before = (
        ctx.controller.images.resolve(tenant=tenant, ref=f.one("before"))
        if f.has("before")
        else None
    )
    since = (
        ctx.controller.images.resolve(tenant=tenant, ref=f.one("since")) if f.has("since") else None
    )
    counts: dict[str, int] = {}
    for image_id, users in _users(ctx, tenant).items():
        counts[image_id] = len(users)
    out = []
    for image in sorted(images, key=lambda i: i.created, reverse=True):
        if dangling is not None and (not image.repo_tags) != dangling:
            continue
        if before is not None and image.created >= before.created:
            continue
        if since is not None and image.created <= since.created:
            continue
        if f.has("reference"):
            if not matches_reference(image, f.get("reference")):
                continue
            # Docker lists only the tags that match the filter.
            image = dataclasses.replace(  # noqa: PLW2901  (the listed view of this image)
                image,
                repo_tags=tuple(
                    t for t in image.repo_tags if matches_reference_tag(t, f.get("reference"))
                ),
            )
        config = ctx.controller.images.config(image)
        if f.has("label") and not matches_labels(config, f.get("label")):
            continue
        out.append(image_summary(image, config, counts.get(image.id, 0)))
    return json_response(out)


@routes.post("/images/create")
async def image_create(request: web.Request) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    source = request.query.get("fromSrc", "")
    if request.query.get("fromImage"):
        return await registry.pull(request)
    if not source:
        raise InvalidArgument("either fromSrc or fromImage must be given")
    if source != "-":
        raise InvalidArgument("importing from a URL is not supported; send the archive (-)")
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    image = await ctx.controller.images.import_(
        tenant=tenant_of(request).id,
        body=_body_stream(request),
        tag=f"{repo}:{tag}" if repo and tag else repo,
        changes=request.query.getall("changes", []),
        message=request.query.get("message", ""),
    )
    return web.Response(
        body=json.dumps({"status": image.id}).encode() + b"\n",
        headers={"Content-Type": "application/json"},
    )


@routes.get(f"/images/{_NAME}/json")
async def image_inspect(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    image = ctx.controller.images.resolve(
        tenant=tenant_of(request).id, ref=request.match_info["name"]
    )
    return json_response(image_inspect_json(image, ctx.controller.images.config(image)))


@routes.get(f"/images/{_NAME}/history")
async def image_history(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    image = ctx.controller.images.resolve(
        tenant=tenant_of(request).id, ref=request.match_info["name"]
    )
    config = ctx.controller.images.config(image)
    history = config.get("history") or [{}] * len(image.layers)
    sizes = [
        ctx.controller.images.content.size(d) if ctx.controller.images.content.has(d) else 0
        for d in image.layers
    ]
    entries = []
    layer = 0
    for item in history:
        empty = bool(item.get("empty_layer"))
        size = 0
        if not empty and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        created = str(item.get("created", ""))
        entries.append(
            {
                "Id": "<missing>",
                "Created": parse_created(created) // 1_000_000_000,
                "CreatedBy": item.get("created_by", ""),
                "Tags": None,
                "Size": size,
                "Comment": item.get("comment", ""),
            }
        )
    entries.reverse()
    if entries:
        entries[0]["Id"] = image.id
        entries[0]["Tags"] = list(image.repo_tags) or None
    return json_response(entries)


@routes.post(f"/images/{_NAME}/tag")
async def image_tag(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    ctx.controller.images.tag(
        tenant=tenant_of(request).id,
        source=request.match_info["name"],
        repo=repo,
        tag=request.query.get("tag", ""),
    )
    return web.Response(status=201)


@routes.delete(f"/images/{_NAME}")
async def image_delete(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    report = await ctx.controller.images.remove(
        tenant=tenant,
        ref=request.match_info["name"],
        force=flag(request, "force"),
        users=_users(ctx, tenant),
    )
    out = [{"Untagged": t} for t in report.untagged] + [{"Deleted": d} for d in report.deleted]
    return json_response(out)


@routes.post("/images/prune")
async def image_prune(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    f = parse_filters(request.query.get("filters", ""), ("dangling", "until", "label"))
    dangling = f.bool("dangling")
    deleted, reclaimed = await ctx.controller.images.prune(
        tenant=tenant,
        dangling_only=dangling is not False,
        used=set(_users(ctx, tenant)),
        until=parse_time_filter(f.one("until")) if f.has("until") else 0,
        labels=f.get("label"),
    )
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    if not names:
        raise InvalidArgument("no images to save")
    stream = ctx.controller.images.save(tenant=tenant_of(request).id, refs=names)
    first = await anext(stream)  # resolution errors surface before the headers
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    await response.write(first)
    async for chunk in stream:
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/images/get")
async def image_get_all(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


@routes.get(f"/images/{_NAME}/get")
async def image_get(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


@routes.post("/images/load")
async def image_load(request: web.Request) -> web.StreamResponse:
    """Answers with Docker's JSON message stream (chunked, exactly application/json:
    the docker CLI decodes it only then, and docker-py reads it line by line)."""
    ctx = ApiContext.of(request)
    images = await ctx.controller.images.load(
        tenant=tenant_of(request).id, body=_body_stream(request)
    )
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for image in images:
        lines = [f"Loaded image: {t}\n" for t in image.repo_tags] or [
            f"Loaded image ID: {image.id}\n"
        ]
        for line in lines:
            await response.write(json.dumps({"stream": line}).encode() + b"\n")
    await response.write_eof()
    return response
