"""Registry namespaces in the native API (``/v1/namespaces``) and the operator's API.

A tenant's users list its namespaces; its admins claim new ones (``dockyard namespace
set``). The operator lists every namespace with its owner and assigns any name, reserved
ones included, to a tenant. Documented in docs/native-api.md; the rules are
``dockyard.controller.namespaces``'.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.audit import note
from dockyard.api.docker.body import get_str, read_json
from dockyard.api.docker.context import ApiContext, principal_of
from dockyard.api.errors import json_response
from dockyard.controller.app import Controller
from dockyard.core.errors import PermissionDenied
from dockyard.core.namespaces import Namespace

__all__ = ["add_namespace_admin_routes", "admin_routes", "namespace_json", "routes"]

routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()
_CONTROLLER = web.AppKey("dockyard_namespaces_controller", object)


def namespace_json(namespace: Namespace) -> dict[str, Any]:
    """A namespace as its tenant sees it."""
    return {
        "name": namespace.name,
        "created": namespace.created,
        "created_by": namespace.created_by,
    }


@routes.get("/v1/namespaces")
async def list_namespaces(request: web.Request) -> web.Response:
    """The tenant's namespaces, by name (any user: members push to them too)."""
    tenant = principal_of(request).tenant
    listed = ApiContext.of(request).controller.namespaces.list_namespaces(tenant.id)
    return json_response([namespace_json(n) for n in listed])


@routes.post("/v1/namespaces")
async def claim_namespace(request: web.Request) -> web.Response:
    """``{"name": ...}``: claim a namespace for the tenant (the ``admin`` scope, which only
    a tenant admin holds; ``write`` is the auth middleware's)."""
    principal = principal_of(request)
    name = get_str(await read_json(request), "name")
    note(request, target=name)  # refusals too are recorded with the name asked for
    if not principal.may("admin"):
        raise PermissionDenied("claiming a namespace needs a tenant admin's token ('admin' scope)")
    namespaces = ApiContext.of(request).controller.namespaces
    claimed = namespaces.claim(principal.tenant.id, name, user=principal.user.id)
    note(request, created=claimed.name)
    return json_response(namespace_json(claimed), status=201)


# the operator (the controller's internal socket) -------------------------------------------


def add_namespace_admin_routes(app: web.Application, controller: Controller) -> None:
    app[_CONTROLLER] = controller
    app.add_routes(admin_routes)


def _admin_controller(request: web.Request) -> Controller:
    controller = request.app[_CONTROLLER]
    assert isinstance(controller, Controller)
    return controller


def _owner_json(namespace: Namespace, names: dict[str, str]) -> dict[str, Any]:
    return {
        **namespace_json(namespace),
        "tenant": {"id": namespace.tenant, "name": names.get(namespace.tenant, "")},
        "retired": namespace.retired,
    }


@admin_routes.get("/admin/v1/namespaces")
async def all_namespaces(request: web.Request) -> web.Response:
    """Every namespace with its owner, retired ones included (``?tenant=NAME``: one
    tenant's, in use)."""
    controller = _admin_controller(request)
    ref = request.query.get("tenant", "")
    if ref:
        tenant = controller.identity.tenant(ref)
        names = {tenant.id: tenant.name}
        listed = controller.namespaces.list_namespaces(tenant.id)
    else:
        names = {t.id: t.name for t in controller.identity.list_tenants()}
        listed = controller.namespaces.list_all()
    return json_response([_owner_json(n, names) for n in listed])


@admin_routes.post("/admin/v1/tenants/{tenant}/namespaces")
async def assign_namespace(request: web.Request) -> web.Response:
    """``{"name": ...}``: give the tenant a namespace, reserved names included (201)."""
    controller = _admin_controller(request)
    tenant = controller.identity.tenant(request.match_info["tenant"])
    name = get_str(await read_json(request), "name")
    note(request, target=name)
    assigned = controller.namespaces.assign(tenant.id, name)
    note(request, created=assigned.name)
    return json_response(_owner_json(assigned, {tenant.id: tenant.name}), status=201)
