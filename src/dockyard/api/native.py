"""Dockyard's own API (``/v1/...``) beside Docker's, on the same endpoint and auth.

What the ``dockyard`` CLI needs that Docker's API has no words for: who am I, my tokens,
(with the ``admin`` scope) my tenant's users and audit log, the container sizes, and my
use against my quotas. Documented in docs/native-api.md.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.admin import token_json, user_json
from dockyard.api.audit import audit_response
from dockyard.api.docker.body import get_int, get_str, get_str_list, read_json
from dockyard.api.docker.context import ApiContext, principal_of
from dockyard.api.errors import json_response
from dockyard.api.quota_json import asked_from, refusal_json, report_json, sizes_json
from dockyard.core.errors import InvalidArgument, NotFound, PermissionDenied
from dockyard.core.identity import Principal, Role
from dockyard.core.quotas import quota_exceeded

__all__ = ["routes"]

routes = web.RouteTableDef()


def _admin(request: web.Request) -> Principal:
    principal = principal_of(request)
    if not principal.may("admin"):
        raise PermissionDenied("this needs a token with the 'admin' scope")
    return principal


@routes.get("/v1/whoami")
async def whoami(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return json_response(
        {
            "tenant": {"id": principal.tenant.id, "name": principal.tenant.name},
            "user": user_json(principal.user),
            "scopes": list(principal.scopes),
            "token": principal.token_id,
            "certificate": principal.cert_serial,
        }
    )


@routes.get("/v1/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    principal = principal_of(request)
    identity = ApiContext.of(request).controller.identity
    user = None if principal.may("admin") else principal.user.id
    listed = identity.list_tokens(principal.tenant.id, user)
    return json_response([token_json(t) for t in listed])


@routes.post("/v1/tokens")
async def create_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json(request, empty_ok=True)
    scopes = get_str_list(body, "scopes") or principal.scopes
    beyond = [s for s in scopes if s not in principal.scopes]
    if beyond:
        raise PermissionDenied(f"a token cannot grant more than its maker holds: {beyond[0]!r}")
    issued = ApiContext.of(request).controller.identity.issue(
        principal.tenant.id,
        principal.user.id,
        scopes=tuple(scopes),
        ttl=get_int(body, "ttl"),
        description=get_str(body, "description"),
    )
    return json_response({"token": issued.text, **token_json(issued.token)}, status=201)


@routes.delete("/v1/tokens/{id}")
async def revoke_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    identity = ApiContext.of(request).controller.identity
    token_id = request.match_info["id"]
    if not principal.may("admin"):
        mine = {t.id for t in identity.list_tokens(principal.tenant.id, principal.user.id)}
        if token_id not in mine:
            raise NotFound(f"no such token: {token_id}")
    identity.revoke(principal.tenant.id, token_id)
    return web.Response(status=204)


@routes.get("/v1/users")
async def list_users(request: web.Request) -> web.Response:
    principal = _admin(request)
    identity = ApiContext.of(request).controller.identity
    return json_response([user_json(u) for u in identity.list_users(principal.tenant.id)])


@routes.post("/v1/users")
async def add_user(request: web.Request) -> web.Response:
    principal = _admin(request)
    body = await read_json(request)
    try:
        role = Role(get_str(body, "role") or "member")
    except ValueError:
        raise InvalidArgument("invalid role: member or admin") from None
    user = ApiContext.of(request).controller.identity.add_user(
        principal.tenant.id, get_str(body, "name"), role=role
    )
    return json_response(user_json(user), status=201)


@routes.delete("/v1/users/{name}")
async def remove_user(request: web.Request) -> web.Response:
    principal = _admin(request)
    ApiContext.of(request).controller.identity.remove_user(
        principal.tenant.id, request.match_info["name"]
    )
    return web.Response(status=204)


@routes.get("/v1/sizes")
async def sizes(request: web.Request) -> web.Response:
    config = ApiContext.of(request).controller.config
    return json_response(sizes_json(config.default_size))


@routes.get("/v1/usage")
async def usage(request: web.Request) -> web.Response:
    tenant = principal_of(request).tenant
    report = await ApiContext.of(request).controller.quotas.report(tenant.id)
    return json_response(report_json(tenant, report))


@routes.post("/v1/usage/check")
async def usage_check(request: web.Request) -> web.Response:
    controller = ApiContext.of(request).controller
    tenant = principal_of(request).tenant
    asked, chosen = asked_from(
        await read_json(request, empty_ok=True), default_size=controller.config.default_size
    )
    report, refused = await controller.quotas.dry_run(tenant.id, asked)
    return json_response(
        {
            "fits": not refused,
            "message": quota_exceeded(refused, plan=report.plan.name).message if refused else "",
            "asked": asked.as_dict(),
            "containers": [{"size": s.name, "memory": s.memory} for s in chosen],
            "refusals": [refusal_json(r) for r in refused],
            **report_json(tenant, report),
        }
    )


@routes.get("/v1/audit")
async def audit_log(request: web.Request) -> web.Response:
    """The tenant's audit log, newest first (``admin`` scope)."""
    principal = _admin(request)
    return await audit_response(
        request, ApiContext.of(request).controller.audit, principal.tenant.id
    )
