"""Docker Engine API: the tenant's networks (ADR 0016)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_bool, get_list, get_map, get_str, get_str_map, read_json
from dockyard.api.docker.container_json import parse_endpoints
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.filters import Filters, labels_match, parse_filters
from dockyard.api.errors import json_response
from dockyard.controller.networks import NetworkRequest
from dockyard.core.clock import format_rfc3339, parse_time_filter
from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.core.models import Network, Status

__all__ = ["network_json", "routes"]

routes = web.RouteTableDef()

# Docker lists ``none`` and ``host`` as networks; ``host`` is refused here, so only
# ``none`` is shown, as Docker shows it (driver ``null``).
_NONE = "none"


def network_json(ctx: ApiContext, network: Network, *, verbose: bool = True) -> dict[str, Any]:
    """Docker's network object; ``Containers`` lists the running members (as Docker's
    endpoints exist only while a container runs) when ``verbose``."""
    members: dict[str, Any] = {}
    if verbose:
        prefix = network.subnet.split("/")[1]
        users = ctx.controller.networks.users(network)
        for container_id in users:
            try:
                c = ctx.controller.containers.get(tenant=network.tenant, ref=container_id)
            except NotFound:  # removed meanwhile
                continue
            if c.state.status not in (Status.RUNNING, Status.PAUSED):
                continue
            endpoint = next((e for e in c.endpoints if e.network_id == network.id), None)
            if endpoint is None:
                continue
            members[c.id] = {
                "Name": c.name,
                "EndpointID": endpoint.id,
                "MacAddress": "",
                "IPv4Address": f"{endpoint.ip}/{prefix}",
                "IPv6Address": "",
            }
    config: dict[str, Any] = {"Subnet": network.subnet, "Gateway": network.gateway}
    if network.ip_range:
        config["IPRange"] = network.ip_range
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": format_rfc3339(network.created),
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [config]},
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": members,
        "Options": dict(network.options),
        "Labels": dict(network.labels),
    }


def _none_json() -> dict[str, Any]:
    return {
        "Name": _NONE,
        "Id": _NONE,
        "Created": format_rfc3339(0),
        "Scope": "local",
        "Driver": "null",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }


def _matches(ctx: ApiContext, network: Network, f: Filters) -> bool:
    if f.has("name") and not any(n in network.name for n in f.get("name")):
        return False
    if f.has("id") and not any(network.id.startswith(i) for i in f.get("id")):
        return False
    if f.has("driver") and network.driver not in f.get("driver"):
        return False
    if not labels_match(network.labels, f.get("label")):
        return False
    if f.has("scope") and "local" not in f.get("scope"):
        return False
    if f.has("type"):
        kind = "builtin" if network.builtin else "custom"
        if kind not in f.get("type"):
            return False
    dangling = f.bool("dangling")
    if dangling is not None:
        used = network.builtin or bool(ctx.controller.networks.users(network))
        if used == dangling:
            return False
    return True


@routes.get("/networks")
async def network_list(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    f = parse_filters(
        request.query.get("filters", ""),
        ("name", "id", "driver", "label", "scope", "type", "dangling"),
    )
    # As Docker's list, without members (inspect shows them).
    out = [
        network_json(ctx, network, verbose=False)
        for network in ctx.controller.networks.list_networks(tenant=tenant)
        if _matches(ctx, network, f)
    ]
    none_wanted = (
        (not f.has("name") or any(n in _NONE for n in f.get("name")))
        and (not f.has("id") or any(_NONE.startswith(i) for i in f.get("id")))
        and (not f.has("driver") or "null" in f.get("driver"))
        and not f.get("label")
        and (not f.has("type") or "builtin" in f.get("type"))
        and f.bool("dangling") is not True
    )
    if none_wanted:
        out.append(_none_json())
    return json_response(out)


@routes.get("/networks/{id}")
async def network_inspect(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    ref = request.match_info["id"]
    if ref == _NONE:
        return json_response(_none_json())
    network = ctx.controller.networks.get(tenant=tenant_of(request).id, ref=ref)
    return json_response(network_json(ctx, network))


def _create_request(body: dict[str, Any]) -> NetworkRequest:
    if get_bool(body, "EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported")
    if get_bool(body, "Ingress") or get_bool(body, "ConfigOnly"):
        raise InvalidArgument("ingress and config-only networks are not supported")
    if get_map(body, "ConfigFrom"):
        raise InvalidArgument("networks made from a config-only network are not supported")
    ipam = get_map(body, "IPAM")
    if get_str(ipam, "Driver", "IPAM") not in ("", "default"):
        raise InvalidArgument(f"IPAM driver {get_str(ipam, 'Driver')!r} is not supported")
    configs = [c for c in get_list(ipam, "Config", "IPAM") or [] if c]
    if len(configs) > 1:
        raise InvalidArgument("one IPv4 subnet per network is supported")
    config = configs[0] if configs else {}
    if not isinstance(config, dict):
        raise InvalidArgument("IPAM.Config entries must be objects")
    if get_map(config, "AuxiliaryAddresses", "IPAM.Config"):
        raise InvalidArgument("auxiliary addresses are not supported")
    return NetworkRequest(
        name=get_str(body, "Name"),
        driver=get_str(body, "Driver") or "bridge",
        internal=get_bool(body, "Internal"),
        attachable=get_bool(body, "Attachable"),
        subnet=get_str(config, "Subnet", "IPAM.Config"),
        gateway=get_str(config, "Gateway", "IPAM.Config"),
        ip_range=get_str(config, "IPRange", "IPAM.Config"),
        labels=get_str_map(body, "Labels"),
        options=get_str_map(body, "Options"),
    )


@routes.post("/networks/create")
async def network_create(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    body = await read_json(request)
    network = ctx.controller.networks.create(
        tenant=tenant_of(request).id, request=_create_request(body)
    )
    return json_response({"Id": network.id, "Warning": ""}, status=201)


@routes.delete("/networks/{id}")
async def network_delete(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    ctx.controller.networks.remove(tenant=tenant_of(request).id, ref=request.match_info["id"])
    return web.Response(status=204)


@routes.post("/networks/prune")
async def network_prune(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    f = parse_filters(request.query.get("filters", ""), ("until", "label"))
    until = parse_time_filter(f.one("until")) if f.has("until") else 0
    keep = [
        n.id
        for n in ctx.controller.networks.list_networks(tenant=tenant)
        if not labels_match(n.labels, f.get("label")) or (until and n.created >= until)
    ]
    removed = ctx.controller.networks.prune(tenant=tenant, keep=keep)
    return json_response({"NetworksDeleted": [n.name for n in removed] or None})


@routes.post("/networks/{id}/connect")
async def network_connect(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    body = await read_json(request)
    container = get_str(body, "Container")
    if not container:
        raise InvalidArgument("Container is missing")
    network_ref = request.match_info["id"]
    requests, _warnings = parse_endpoints({network_ref: get_map(body, "EndpointConfig")})
    await ctx.controller.containers.connect(
        tenant=tenant_of(request).id, ref=container, network_ref=network_ref, request=requests[0]
    )
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def network_disconnect(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    body = await read_json(request)
    container = get_str(body, "Container")
    if not container:
        raise InvalidArgument("Container is missing")
    await ctx.controller.containers.disconnect(
        tenant=tenant_of(request).id, ref=container, network_ref=request.match_info["id"]
    )
    return web.Response(status=200)
