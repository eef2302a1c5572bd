"""Client certificates in the native API (``/v1/certs``) and the operator's API.

A user sends a certificate request made with its own key and gets back the certificate
and the CA's certificate: what ``docker --tlsverify`` and docker-py need beside the key
(``dockyard login`` writes them as ``ca.pem``, ``cert.pem`` and ``key.pem``). Documented
in docs/native-api.md.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_int, get_str, get_str_list, read_json
from dockyard.api.docker.context import ApiContext, principal_of
from dockyard.api.errors import json_response
from dockyard.controller.app import Controller
from dockyard.core.certs import ClientCert, parse_serial
from dockyard.core.errors import InvalidArgument, NotFound

__all__ = ["add_cert_admin_routes", "admin_routes", "cert_json", "routes"]

routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()
_CONTROLLER = web.AppKey("dockyard_certs_controller", object)


def cert_json(cert: ClientCert) -> dict[str, Any]:
    return {
        "serial": cert.serial,
        "user": cert.user,
        "scopes": list(cert.scopes),
        "token": cert.token,
        "fingerprint": cert.fingerprint,
        "created": cert.created,
        "expires": cert.expires,
        "revoked": cert.revoked,
    }


def _controller(request: web.Request) -> Controller:
    return ApiContext.of(request).controller


@routes.post("/v1/certs")
async def create_cert(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json(request)
    csr = get_str(body, "csr")
    if not csr:
        raise InvalidArgument("csr: a PEM certificate request is required")
    scopes = get_str_list(body, "scopes")
    controller = _controller(request)
    issued = controller.certs.issue(
        principal, csr, ttl=get_int(body, "ttl"), scopes=tuple(scopes) if scopes else None
    )
    answer = {
        **cert_json(issued.record),
        "certificate": issued.pem,
        "ca": controller.certs.ca.cert_pem,
        "endpoint": controller.config.tls_endpoint,
    }
    return json_response(answer, status=201)


@routes.get("/v1/certs")
async def list_certs(request: web.Request) -> web.Response:
    principal = principal_of(request)
    user = None if principal.may("admin") else principal.user.id
    listed = _controller(request).certs.list_certs(principal.tenant.id, user)
    return json_response([cert_json(c) for c in listed])


@routes.delete("/v1/certs/{serial}")
async def revoke_cert(request: web.Request) -> web.Response:
    principal = principal_of(request)
    certs = _controller(request).certs
    serial = parse_serial(request.match_info["serial"])
    if not principal.may("admin"):
        mine = {c.serial for c in certs.list_certs(principal.tenant.id, principal.user.id)}
        if serial not in mine:
            raise NotFound(f"no such certificate: {serial}")
    certs.revoke(principal.tenant.id, serial)
    return web.Response(status=204)


# the operator (the controller's internal socket) -------------------------------------------


def add_cert_admin_routes(app: web.Application, controller: Controller) -> None:
    app[_CONTROLLER] = controller
    app.add_routes(admin_routes)


def _admin_controller(request: web.Request) -> Controller:
    controller = request.app[_CONTROLLER]
    assert isinstance(controller, Controller)
    return controller


@admin_routes.get("/admin/v1/tenants/{tenant}/certs")
async def tenant_certs(request: web.Request) -> web.Response:
    controller = _admin_controller(request)
    tenant = controller.identity.tenant(request.match_info["tenant"])
    user_ref = request.query.get("user")
    user = controller.identity.user(tenant.id, user_ref).id if user_ref else None
    return json_response([cert_json(c) for c in controller.certs.list_certs(tenant.id, user)])


@admin_routes.delete("/admin/v1/tenants/{tenant}/certs/{serial}")
async def revoke_tenant_cert(request: web.Request) -> web.Response:
    controller = _admin_controller(request)
    tenant = controller.identity.tenant(request.match_info["tenant"])
    controller.certs.revoke(tenant.id, request.match_info["serial"])
    return web.Response(status=204)
