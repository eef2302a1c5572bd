"""The cloud's registry in the native API (``/v1/registry/...``) and the operator's.

A tenant lists its repositories with their tags (``dockyard images``), or the curated ones
(``--curated``), copies an image between repositories on the registry side (``dockyard
cpi``) and deletes a tag or a manifest. The operator publishes the curated set (``dockyard
images seed``) and collects garbage. Documented in docs/native-api.md; the rules are
``dockyard.controller.registry_service``'s (ADR 0021).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.audit import note
from dockyard.api.docker.body import get_str, read_json
from dockyard.api.docker.context import ApiContext, principal_of
from dockyard.api.errors import json_response
from dockyard.controller.app import Controller
from dockyard.controller.registry_service import GC_GRACE, Repository
from dockyard.core.errors import InvalidArgument

__all__ = ["add_registry_admin_routes", "admin_routes", "repository_json", "routes"]

routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()
_CONTROLLER = web.AppKey("dockyard_registry_controller", object)


def repository_json(repository: Repository, address: str) -> dict[str, Any]:
    return {
        "name": repository.name,
        "reference": f"{address}/{repository.name}" if address else repository.name,
        "tags": [
            {"tag": t.tag, "digest": t.digest, "size": t.size, "pushed": t.pushed}
            for t in repository.tags
        ],
    }


@routes.get("/v1/registry/repositories")
async def list_repositories(request: web.Request) -> web.Response:
    """The tenant's repositories with their tags; ``?curated=1``: the curated ones."""
    service = ApiContext.of(request).controller.registry_service
    curated = request.query.get("curated", "") in ("1", "true")
    listed = await service.repositories(principal=principal_of(request), curated=curated)
    return json_response([repository_json(r, service.address) for r in listed])


@routes.post("/v1/registry/copy")
async def copy_image(request: web.Request) -> web.Response:
    """``{"source": REF, "destination": REF}``: ``dockyard cpi``."""
    body = await read_json(request)
    source = get_str(body, "source")
    destination = get_str(body, "destination")
    note(request, target=destination)
    service = ApiContext.of(request).controller.registry_service
    digest = await service.copy(
        principal=principal_of(request), source=source, destination=destination
    )
    note(request, created=destination)
    return json_response({"destination": destination, "digest": digest}, status=201)


@routes.delete("/v1/registry/images/{ref:.+}")
async def delete_image(request: web.Request) -> web.Response:
    """Delete a tag (``ns/app:tag``) or a manifest (``ns/app@sha256:...``)."""
    service = ApiContext.of(request).controller.registry_service
    deleted = await service.delete(principal=principal_of(request), ref=request.match_info["ref"])
    return json_response({"deleted": deleted})


# the operator ------------------------------------------------------------------------------


def add_registry_admin_routes(app: web.Application, controller: Controller) -> None:
    app[_CONTROLLER] = controller
    app.add_routes(admin_routes)


def _admin_controller(request: web.Request) -> Controller:
    controller = request.app[_CONTROLLER]
    assert isinstance(controller, Controller)
    return controller


@admin_routes.post("/admin/v1/registry/seed")
async def seed(request: web.Request) -> web.Response:
    """Publish the curated set to ``library``."""
    published = await _admin_controller(request).registry_service.seed()
    return json_response({"published": published})


@admin_routes.post("/admin/v1/registry/gc")
async def collect_garbage(request: web.Request) -> web.Response:
    """Reclaim blobs no manifest references; ``?grace=SECONDS`` (default an hour) keeps
    younger ones, which a push in progress may still reference."""
    try:
        grace = float(request.query.get("grace", GC_GRACE))
    except ValueError as exc:
        raise InvalidArgument("grace must be a number of seconds") from exc
    if grace < 0:
        raise InvalidArgument("grace must not be negative")
    report = await _admin_controller(request).registry_service.collect_garbage(grace=grace)
    return json_response(
        {
            "blobs_deleted": report.blobs_deleted,
            "bytes_freed": report.bytes_freed,
            "blobs_kept": report.blobs_kept,
        }
    )
