"""The operator's API: tenants, their users, tokens, plans, quotas and audit logs
(``dockyard admin``).

Served on the controller's root-only internal socket, never on the tenants' endpoint:
whoever can open that socket is the operator. JSON in and out; errors in Docker's form.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.audit import audit_response, note
from dockyard.api.docker.body import (
    get_bool,
    get_int,
    get_map,
    get_str,
    get_str_list,
    read_json,
)
from dockyard.api.errors import json_response
from dockyard.api.quota_json import plan_json, report_json
from dockyard.controller.app import Controller
from dockyard.controller.identity import IdentityService, NewTenant
from dockyard.controller.plans import BOOTSTRAP_PLAN
from dockyard.core.audit import OPERATOR_LOG
from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.core.identity import Role, Token, User
from dockyard.core.quotas import parse_limit
from dockyard.core.tenancy import Tenant

__all__ = ["add_admin_routes", "routes", "token_json", "user_json"]


def tenant_json(tenant: Tenant, *, plan: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": tenant.id,
        "name": tenant.name,
        "uid_base": tenant.uid_base,
        "uid_size": tenant.uid_size,
    }
    if plan:
        out["plan"] = plan
    return out


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "role": user.role.value, "created": user.created}


def token_json(token: Token) -> dict[str, Any]:
    """A token's record as shown to people: never its secret or its hash."""
    return {
        "id": token.id,
        "user": token.user,
        "scopes": list(token.scopes),
        "created": token.created,
        "expires": token.expires,
        "revoked": token.revoked,
        "description": token.description,
    }


def _new_tenant_json(made: NewTenant, *, plan: str) -> dict[str, Any]:
    return {
        "tenant": tenant_json(made.tenant, plan=plan),
        "user": user_json(made.user),
        "token": made.token.text,
        "token_id": made.token.token.id,
    }


def _role(text: str) -> Role:
    try:
        return Role(text or "member")
    except ValueError:
        raise InvalidArgument(f"invalid role {text!r}: member or admin") from None


_CONTROLLER = web.AppKey("dockyard_admin_controller", object)
routes = web.RouteTableDef()


def add_admin_routes(app: web.Application, controller: Controller) -> None:
    app[_CONTROLLER] = controller
    app.add_routes(routes)


def _controller(request: web.Request) -> Controller:
    controller = request.app[_CONTROLLER]
    assert isinstance(controller, Controller)
    return controller


def _identity(request: web.Request) -> IdentityService:
    return _controller(request).identity


def _tenant(request: web.Request) -> Tenant:
    return _identity(request).tenant(request.match_info["tenant"])


def _plan_of(request: web.Request, tenant: Tenant) -> str:
    quotas = _controller(request).quotas
    return quotas.plan_of(quotas.settings(tenant.id)).name


@routes.post("/admin/v1/bootstrap")
async def bootstrap(request: web.Request) -> web.Response:
    body = await read_json(request)
    quotas = _controller(request).quotas
    plan = quotas.plan(get_str(body, "plan") or BOOTSTRAP_PLAN).name
    made = _identity(request).bootstrap(
        get_str(body, "tenant") or "default", user=get_str(body, "user") or "admin"
    )
    if not quotas.settings(made.tenant.id).plan:  # a plan never chosen: the operator's own
        quotas.update(made.tenant.id, plan=plan)
    note(request, tenant=made.tenant.id, created=made.tenant.id)
    return json_response(_new_tenant_json(made, plan=_plan_of(request, made.tenant)), status=201)


@routes.get("/admin/v1/tenants")
async def tenants(request: web.Request) -> web.Response:
    return json_response(
        [tenant_json(t, plan=_plan_of(request, t)) for t in _identity(request).list_tenants()]
    )


@routes.post("/admin/v1/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    body = await read_json(request)
    name, user = get_str(body, "name"), get_str(body, "user") or "admin"
    quotas = _controller(request).quotas
    plan = quotas.plan(get_str(body, "plan") or quotas.default_plan).name  # before making it
    made = _identity(request).create_tenant(name, user=user)
    quotas.update(made.tenant.id, plan=plan)
    note(request, tenant=made.tenant.id, created=made.tenant.id)
    if get_bool(body, "seed_busybox"):
        images = _controller(request).images
        await images.seed_busybox(tenant=made.tenant.id, tags=("busybox:latest",))
    return json_response(_new_tenant_json(made, plan=plan), status=201)


@routes.delete("/admin/v1/tenants/{tenant}")
async def delete_tenant(request: web.Request) -> web.Response:
    controller = _controller(request)
    controller.identity.delete_tenant(request.match_info["tenant"], owns=controller.owned_by)
    return web.Response(status=204)


@routes.get("/admin/v1/tenants/{tenant}/users")
async def users(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    return json_response([user_json(u) for u in _identity(request).list_users(tenant.id)])


@routes.post("/admin/v1/tenants/{tenant}/users")
async def add_user(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await read_json(request)
    role = _role(get_str(body, "role"))
    user = _identity(request).add_user(tenant.id, get_str(body, "name"), role=role)
    return json_response(user_json(user), status=201)


@routes.delete("/admin/v1/tenants/{tenant}/users/{user}")
async def remove_user(request: web.Request) -> web.Response:
    _identity(request).remove_user(_tenant(request).id, request.match_info["user"])
    return web.Response(status=204)


@routes.get("/admin/v1/tenants/{tenant}/tokens")
async def tokens(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    listed = _identity(request).list_tokens(tenant.id, request.query.get("user") or None)
    return json_response([token_json(t) for t in listed])


@routes.post("/admin/v1/tenants/{tenant}/tokens")
async def issue(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await read_json(request)
    issued = _identity(request).issue(
        tenant.id,
        get_str(body, "user"),
        scopes=get_str_list(body, "scopes"),
        ttl=get_int(body, "ttl"),
        description=get_str(body, "description"),
    )
    return json_response({"token": issued.text, **token_json(issued.token)}, status=201)


@routes.delete("/admin/v1/tenants/{tenant}/tokens/{token}")
async def revoke(request: web.Request) -> web.Response:
    _identity(request).revoke(_tenant(request).id, request.match_info["token"])
    return web.Response(status=204)


# plans and quotas ------------------------------------------------------------------------


@routes.get("/admin/v1/plans")
async def plans(request: web.Request) -> web.Response:
    quotas = _controller(request).quotas
    return json_response(
        [plan_json(p, default=p.name == quotas.default_plan) for p in quotas.plans()]
    )


@routes.get("/admin/v1/tenants/{tenant}/quota")
async def quota(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    report = await _controller(request).quotas.report(tenant.id)
    return json_response(report_json(tenant, report))


@routes.put("/admin/v1/tenants/{tenant}/quota")
async def set_quota(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await read_json(request)
    raw = get_map(body, "limits")
    limits = {}
    for name, value in raw.items():
        if not isinstance(value, str | int):
            raise InvalidArgument(f"invalid limit for {name}: {value!r}")
        limits[name] = parse_limit(name, value)
    quotas = _controller(request).quotas
    quotas.update(
        tenant.id,
        plan=get_str(body, "plan"),
        limits=limits,
        reset=get_str_list(body, "reset") or (),
    )
    return json_response(report_json(tenant, await quotas.report(tenant.id)))


# audit logs -------------------------------------------------------------------------------


@routes.get("/admin/v1/audit")
async def operator_audit(request: web.Request) -> web.Response:
    """The operator log: failed authentications and operator calls that named no tenant."""
    return await audit_response(request, _controller(request).audit, OPERATOR_LOG)


@routes.get("/admin/v1/tenants/{tenant}/audit")
async def tenant_audit(request: web.Request) -> web.Response:
    """A tenant's audit log, by its name; a deleted tenant's (kept until its records age
    out) by its id."""
    controller = _controller(request)
    ref = request.match_info["tenant"]
    try:
        tenant_id = _tenant(request).id
    except NotFound:
        if ref == OPERATOR_LOG or ref not in controller.audit.logs():
            raise
        tenant_id = ref
    return await audit_response(request, controller.audit, tenant_id)
