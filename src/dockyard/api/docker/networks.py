"""Docker Engine API: networks (read-only until tenant networks arrive)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.filters import parse_filters
from dockyard.api.errors import json_response
from dockyard.core.clock import format_rfc3339
from dockyard.core.models import Network, Status

__all__ = ["routes"]

routes = web.RouteTableDef()


def network_json(ctx: ApiContext, network: Network, tenant: str) -> dict[str, Any]:
    members = {}
    for c in ctx.controller.containers.list_containers(tenant=tenant):
        if c.network == network.name and c.state.status in (Status.RUNNING, Status.PAUSED):
            prefix = network.subnet.split("/")[1]
            members[c.id] = {
                "Name": c.name,
                "EndpointID": c.id,
                "MacAddress": "",
                "IPv4Address": f"{c.ip_address}/{prefix}",
                "IPv6Address": "",
            }
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": format_rfc3339(network.created),
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": None,
            "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}],
        },
        "Internal": network.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": members,
        "Options": {},
        "Labels": dict(network.labels),
    }


@routes.get("/networks")
async def network_list(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    f = parse_filters(
        request.query.get("filters", ""), ("name", "id", "driver", "label", "scope", "type")
    )
    out = []
    for network in ctx.controller.networks.list_networks(tenant=tenant):
        if f.has("name") and not any(n in network.name for n in f.get("name")):
            continue
        if f.has("id") and not any(network.id.startswith(i) for i in f.get("id")):
            continue
        if f.has("driver") and network.driver not in f.get("driver"):
            continue
        out.append(network_json(ctx, network, tenant))
    return json_response(out)


@routes.get("/networks/{id}")
async def network_inspect(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    network = ctx.controller.networks.get(tenant=tenant, ref=request.match_info["id"])
    return json_response(network_json(ctx, network, tenant))
