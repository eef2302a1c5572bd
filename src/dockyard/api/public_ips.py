"""Public (floating) IPs in the native API (``/v1/ips``) and the operator's pools of them
(``/admin/v1/ip-pools``). Documented in docs/native-api.md.

A tenant's view: its addresses, each with the container it is bound to. Another tenant's
address or container answers 404, as a missing one. Docker has no word for a floating IP,
so ``docker inspect`` does not show it: ``dockyard ip list`` and these calls do.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from dockyard.api.audit import note
from dockyard.api.docker.body import get_str, read_json
from dockyard.api.docker.context import ApiContext, principal_of
from dockyard.api.errors import json_response
from dockyard.controller.app import Controller
from dockyard.controller.public_ips import PoolUsage, pool_size
from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.core.models import PublicIp

__all__ = ["add_public_ip_admin_routes", "admin_routes", "ip_json", "pool_json", "routes"]

routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()
_CONTROLLER = web.AppKey("dockyard_public_ips_controller", object)


def ip_json(ip: PublicIp, *, container_name: str = "") -> dict[str, Any]:
    return {
        "address": ip.address,
        "container": ip.container,
        "container_name": container_name,
        "created": ip.created,
    }


def pool_json(usage: PoolUsage) -> dict[str, Any]:
    return {
        "cidr": usage.pool.cidr,
        "created": usage.pool.created,
        "size": usage.size,
        "held": usage.held,
    }


def _controller(request: web.Request) -> Controller:
    return ApiContext.of(request).controller


def _shown(controller: Controller, ip: PublicIp) -> dict[str, Any]:
    """``ip`` with the name of its container (looked up; "" if it went meanwhile)."""
    name = ""
    if ip.container:
        with contextlib.suppress(NotFound):
            name = controller.containers.get(tenant=ip.tenant, ref=ip.container).name
    return ip_json(ip, container_name=name)


@routes.get("/v1/ips")
async def list_ips(request: web.Request) -> web.Response:
    controller = _controller(request)
    tenant = principal_of(request).tenant.id
    return json_response(
        [_shown(controller, ip) for ip in controller.public_ips.list_ips(tenant=tenant)]
    )


@routes.post("/v1/ips")
async def request_ip(request: web.Request) -> web.Response:
    await read_json(request, empty_ok=True)  # nothing to ask yet; a body must still be JSON
    controller = _controller(request)
    ip = await controller.public_ips.request(tenant=principal_of(request).tenant.id)
    note(request, created=ip.address)
    return json_response(ip_json(ip), status=201)


@routes.get("/v1/ips/{address}")
async def inspect_ip(request: web.Request) -> web.Response:
    controller = _controller(request)
    ip = controller.public_ips.get(
        tenant=principal_of(request).tenant.id, address=request.match_info["address"]
    )
    return json_response(_shown(controller, ip))


@routes.delete("/v1/ips/{address}")
async def release_ip(request: web.Request) -> web.Response:
    await _controller(request).public_ips.release(
        tenant=principal_of(request).tenant.id, address=request.match_info["address"]
    )
    return web.Response(status=204)


@routes.post("/v1/ips/{address}/bind")
async def bind_ip(request: web.Request) -> web.Response:
    body = await read_json(request)
    container = get_str(body, "container")
    if not container:
        raise InvalidArgument("container: the name or id of the container to bind to is required")
    controller = _controller(request)
    ip = await controller.public_ips.bind(
        tenant=principal_of(request).tenant.id,
        address=request.match_info["address"],
        container_ref=container,
    )
    return json_response(_shown(controller, ip))


@routes.post("/v1/ips/{address}/unbind")
async def unbind_ip(request: web.Request) -> web.Response:
    ip = await _controller(request).public_ips.unbind(
        tenant=principal_of(request).tenant.id, address=request.match_info["address"]
    )
    return json_response(ip_json(ip))


# the operator (the controller's internal socket) -------------------------------------------


def add_public_ip_admin_routes(app: web.Application, controller: Controller) -> None:
    app[_CONTROLLER] = controller
    app.add_routes(admin_routes)


def _admin_controller(request: web.Request) -> Controller:
    controller = request.app[_CONTROLLER]
    assert isinstance(controller, Controller)
    return controller


@admin_routes.get("/admin/v1/ip-pools")
async def list_ip_pools(request: web.Request) -> web.Response:
    return json_response([pool_json(u) for u in _admin_controller(request).public_ips.pools()])


@admin_routes.post("/admin/v1/ip-pools")
async def add_ip_pool(request: web.Request) -> web.Response:
    body = await read_json(request)
    cidr = get_str(body, "cidr")
    if not cidr:
        raise InvalidArgument("cidr: the range to add is required (198.51.100.0/24)")
    pool = _admin_controller(request).public_ips.add_pool(cidr)
    note(request, created=pool.cidr)
    # New, it overlaps no other range, so no tenant holds any of its addresses.
    return json_response(pool_json(PoolUsage(pool, pool_size(pool.cidr), 0)), status=201)


# A range's path is its CIDR as written: /admin/v1/ip-pools/198.51.100.0/24.
@admin_routes.delete("/admin/v1/ip-pools/{cidr:[^/]+(?:/[0-9]+)?}")
async def remove_ip_pool(request: web.Request) -> web.Response:
    _admin_controller(request).public_ips.remove_pool(request.match_info["cidr"])
    return web.Response(status=204)
