"""Security groups in the native API (``/v1/security-groups``, and a container's groups
under ``/v1/containers/{id}/security-groups``). Documented in docs/native-api.md.

Every call is the caller's tenant's: another tenant's group or container is 404, as a
missing one. Reads need the ``read`` scope, changes ``write`` (the auth middleware checks
both). Answers to changes carry ``unapplied``: the containers whose agent has not taken
the change yet (it is retried in the background).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_int, get_str, get_str_map, read_json
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.errors import json_response
from dockyard.controller.security_groups import (
    Change,
    GroupRequest,
    RuleRequest,
    SecurityGroupService,
)
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import Container, SecurityGroup, SecurityGroupRule

__all__ = ["group_json", "routes", "rule_json"]

routes = web.RouteTableDef()


def _service(request: web.Request) -> SecurityGroupService:
    return ApiContext.of(request).controller.security_groups


def rule_json(rule: SecurityGroupRule, names: Mapping[str, str]) -> dict[str, Any]:
    """``names``: group id -> name, to name a source group."""
    return {
        "id": rule.id,
        "protocol": rule.protocol,
        "port_min": rule.port_min,
        "port_max": rule.port_max,
        "source": rule.source,
        "source_group": rule.source_group,
        "source_group_name": names.get(rule.source_group, ""),
        "created": rule.created,
    }


def group_json(group: SecurityGroup, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "labels": dict(group.labels),
        "created": group.created,
        "default": group.builtin,
        "rules": [rule_json(r, names) for r in group.rules],
    }


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    """An integer field, None when absent or null (a rule's ports: absent is every port)."""
    return None if body.get(key) is None else get_int(body, key)


def _names(service: SecurityGroupService, tenant: str) -> dict[str, str]:
    return {g.id: g.name for g in service.list_groups(tenant=tenant)}


def _membership(
    container: Container, groups: list[SecurityGroup], unapplied: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "id": container.id,
        "name": container.name,
        "security_groups": [{"id": g.id, "name": g.name} for g in groups],
        "unapplied": list(unapplied),
    }


def _changed_container(service: SecurityGroupService, tenant: str, change: Change) -> Any:
    assert change.container is not None
    container, groups = service.of_container(tenant=tenant, ref=change.container.id)
    return _membership(container, groups, change.unapplied)


@routes.get("/v1/security-groups")
async def list_security_groups(request: web.Request) -> web.Response:
    service = _service(request)
    groups = service.list_groups(tenant=tenant_of(request).id)
    names = {g.id: g.name for g in groups}
    return json_response([group_json(g, names) for g in groups])


@routes.post("/v1/security-groups")
async def create_security_group(request: web.Request) -> web.Response:
    body = await read_json(request)
    tenant = tenant_of(request).id
    service = _service(request)
    group = service.create(
        tenant=tenant,
        request=GroupRequest(
            name=get_str(body, "name"),
            description=get_str(body, "description"),
            labels=get_str_map(body, "labels"),
        ),
    )
    return json_response(group_json(group, {}), status=201)


@routes.get("/v1/security-groups/{name}")
async def inspect_security_group(request: web.Request) -> web.Response:
    tenant = tenant_of(request).id
    service = _service(request)
    group = service.get(tenant=tenant, ref=request.match_info["name"])
    members = [{"id": c.id, "name": c.name} for c in service.members(group)]
    return json_response({**group_json(group, _names(service, tenant)), "containers": members})


@routes.delete("/v1/security-groups/{name}")
async def remove_security_group(request: web.Request) -> web.Response:
    _service(request).remove(tenant=tenant_of(request).id, ref=request.match_info["name"])
    return web.Response(status=204)


@routes.post("/v1/security-groups/{name}/rules")
async def add_security_group_rule(request: web.Request) -> web.Response:
    body = await read_json(request)
    tenant = tenant_of(request).id
    service = _service(request)
    change = await service.add_rule(
        tenant=tenant,
        ref=request.match_info["name"],
        request=RuleRequest(
            protocol=get_str(body, "protocol"),
            port_min=_optional_int(body, "port_min"),
            port_max=_optional_int(body, "port_max"),
            source=get_str(body, "source"),
            source_group=get_str(body, "source_group"),
        ),
    )
    assert change.rule is not None
    answer = {
        **rule_json(change.rule, _names(service, tenant)),
        "group": change.group.id,
        "unapplied": list(change.unapplied),
    }
    return json_response(answer, status=201)


@routes.delete("/v1/security-groups/{name}/rules/{rule}")
async def remove_security_group_rule(request: web.Request) -> web.Response:
    tenant = tenant_of(request).id
    service = _service(request)
    change = await service.remove_rule(
        tenant=tenant, ref=request.match_info["name"], rule=request.match_info["rule"]
    )
    answer = {
        **group_json(change.group, _names(service, tenant)),
        "unapplied": list(change.unapplied),
    }
    return json_response(answer)


@routes.get("/v1/containers/{id}/security-groups")
async def container_security_groups(request: web.Request) -> web.Response:
    container, groups = _service(request).of_container(
        tenant=tenant_of(request).id, ref=request.match_info["id"]
    )
    return json_response(_membership(container, groups))


@routes.post("/v1/containers/{id}/security-groups")
async def attach_security_group(request: web.Request) -> web.Response:
    body = await read_json(request)
    tenant = tenant_of(request).id
    service = _service(request)
    group = get_str(body, "group")
    if not group:
        raise InvalidArgument("group: the security group to attach is required")
    change = await service.attach(tenant=tenant, container=request.match_info["id"], group=group)
    return json_response(_changed_container(service, tenant, change))


@routes.delete("/v1/containers/{id}/security-groups/{group}")
async def detach_security_group(request: web.Request) -> web.Response:
    tenant = tenant_of(request).id
    service = _service(request)
    change = await service.detach(
        tenant=tenant, container=request.match_info["id"], group=request.match_info["group"]
    )
    return json_response(_changed_container(service, tenant, change))
