"""api.security_groups: the native routes on an app served by aiohttp with the real auth
middleware, identity service, SecurityGroupService and SQLite store (containers are records
made here; the agent is a RecordingAgent): answers, statuses, scopes and tenant scoping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import dockyard.wire  # noqa: F401  (before aiohttp)
from dockyard.api import security_groups
from dockyard.api.auth import FailureLimiter, auth_middleware
from dockyard.api.docker.context import CONTEXT_KEY, ApiContext
from dockyard.api.errors import docker_errors
from dockyard.controller.events import EventLog
from dockyard.controller.identity import IdentityService
from dockyard.controller.networks import EndpointRequest, NetworkService
from dockyard.controller.security_groups import (
    GROUPS_LABEL,
    SecurityGroupService,
    groups_for_create,
)
from dockyard.core.identity import TOKEN_HEADER, Role
from dockyard.core.models import Container, ContainerConfig, HostConfig
from dockyard.store import SqlStore
from dockyard.testing.security_groups import RecordingAgent, StoreMembers

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout=20)

    return asyncio.run(bounded())


@dataclass
class World:
    client: TestClient[web.Request, web.Application]
    store: SqlStore
    networks: NetworkService
    agent: RecordingAgent
    tokens: dict[str, str]
    tenants: dict[str, str]

    async def call(self, who: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = await self.client.request(
            method, path, json=body, headers={TOKEN_HEADER: self.tokens[who]}
        )
        payload = await response.json() if response.status != 204 else None
        return response.status, payload

    def container(self, who: str, name: str, labels: dict[str, str] | None = None) -> Container:
        tenant = self.tenants[who]
        number = len(self.store.list_containers(tenant="*")) + 1
        container = Container(
            id=(f"{number:x}" * 64)[:64],
            tenant=tenant,
            name=name,
            created=1,
            image="busybox",
            image_id="sha256:" + "d" * 64,
            config=ContainerConfig(image="busybox", labels=labels or {}),
            host_config=HostConfig(),
            host="h1",
            security_groups=groups_for_create(self.store, tenant=tenant, labels=labels or {}),
        )
        network = self.networks.get(tenant=tenant, ref="default")
        container.endpoints.append(
            self.networks.join(
                container_id=container.id, network=network, request=EndpointRequest("")
            )
        )
        self.store.add_container(container)
        return container


@asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
    identity = IdentityService(store)
    acme = identity.create_tenant("acme", user="ann")
    bob = identity.add_user(acme.tenant.id, "bob", role=Role.MEMBER)
    reader = identity.issue(acme.tenant.id, bob.id, scopes=("read",))
    writer = identity.issue(acme.tenant.id, bob.id, scopes=("read", "write"))
    globex = identity.create_tenant("globex", user="gil")
    networks = NetworkService(
        store=store,
        events=EventLog(store, keep=100, max_age=0),
        bridge_subnet="172.17.0.0/16",
        default_subnet="172.18.0.0/16",
    )
    agent = RecordingAgent()
    service = SecurityGroupService(
        store=store, networks=networks, containers=StoreMembers(store), agent_for=lambda _: agent
    )
    app = web.Application(
        middlewares=[docker_errors, auth_middleware(identity, FailureLimiter(max_failures=100))]
    )
    app[CONTEXT_KEY] = ApiContext(controller=SimpleNamespace(security_groups=service))  # type: ignore[arg-type]
    app.add_routes(security_groups.routes)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield World(
            client=client,
            store=store,
            networks=networks,
            agent=agent,
            tokens={
                "ann": acme.token.text,
                "bob": writer.text,
                "bob-read": reader.text,
                "gil": globex.token.text,
            },
            tenants={
                "ann": acme.tenant.id,
                "bob": acme.tenant.id,
                "bob-read": acme.tenant.id,
                "gil": globex.tenant.id,
            },
        )
    finally:
        await client.close()
        store.close()


def test_groups_and_rules(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            status, listed = await w.call("ann", "GET", "/v1/security-groups")
            assert status == 200
            assert [(g["name"], g["default"], g["rules"]) for g in listed] == [
                ("default", True, [])
            ]
            status, web_group = await w.call(
                "bob",
                "POST",
                "/v1/security-groups",
                {"name": "web", "description": "front", "labels": {"k": "v"}},
            )
            assert status == 201
            assert set(web_group) == {
                "id", "name", "description", "labels", "created", "default", "rules",
            }  # fmt: skip
            assert (web_group["name"], web_group["labels"], web_group["default"]) == (
                "web",
                {"k": "v"},
                False,
            )
            status, rule = await w.call(
                "bob",
                "POST",
                "/v1/security-groups/web/rules",
                {"protocol": "tcp", "port_min": 80, "port_max": 90, "source": "10.0.0.0/8"},
            )
            assert status == 201
            assert (rule["group"], rule["unapplied"], rule["port_min"], rule["port_max"]) == (
                web_group["id"],
                [],
                80,
                90,
            )
            status, by_group = await w.call(
                "bob",
                "POST",
                f"/v1/security-groups/{web_group['id'][:12]}/rules",
                {"protocol": "udp", "source_group": "web"},
            )
            assert status == 201
            assert (by_group["port_min"], by_group["port_max"]) == (1, 65535)
            assert by_group["source_group_name"] == "web"
            status, shown = await w.call("ann", "GET", "/v1/security-groups/web")
            assert status == 200 and shown["containers"] == []
            assert [r["id"] for r in shown["rules"]] == [rule["id"], by_group["id"]]
            status, error = await w.call(
                "bob", "POST", "/v1/security-groups/web/rules", {"protocol": "tcp", "port_min": 0,
                "source": "10.0.0.0/8"},
            )  # fmt: skip
            assert status == 400 and "ports are 1-65535" in error["message"]
            status, error = await w.call(
                "bob", "POST", "/v1/security-groups/web/rules", {"protocol": "tcp", "port_min": "x"}
            )
            assert status == 400
            status, after = await w.call(
                "bob", "DELETE", f"/v1/security-groups/web/rules/{rule['id'][:10]}"
            )
            assert status == 200 and after["unapplied"] == []
            assert [r["id"] for r in after["rules"]] == [by_group["id"]]
            assert (await w.call("bob", "DELETE", "/v1/security-groups/web/rules/nope"))[0] == 404
            status, error = await w.call("bob", "DELETE", "/v1/security-groups/default")
            assert status == 403 and "cannot be removed" in error["message"]
            assert (await w.call("bob", "DELETE", "/v1/security-groups/web"))[0] == 204
            assert (await w.call("bob", "GET", "/v1/security-groups/web"))[0] == 404

    run(scenario)


def test_scopes_and_tenants(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            status, made = await w.call("ann", "POST", "/v1/security-groups", {"name": "web"})
            assert status == 201
            assert (await w.call("bob-read", "GET", "/v1/security-groups/web"))[0] == 200
            status, error = await w.call(
                "bob-read", "POST", "/v1/security-groups", {"name": "more"}
            )
            assert status == 403 and "'write' scope" in error["message"]
            mine = w.container("ann", "app")
            for ref in ("web", made["id"], made["id"][:12]):
                status, theirs = await w.call("gil", "GET", f"/v1/security-groups/{ref}")
                assert status == 404 and theirs["message"] == f"security group {ref} not found"
                assert (await w.call("gil", "DELETE", f"/v1/security-groups/{ref}"))[0] == 404
                status, _ = await w.call(
                    "gil",
                    "POST",
                    f"/v1/security-groups/{ref}/rules",
                    {"protocol": "all", "source": "0.0.0.0/0"},
                )
                assert status == 404
            for ref in ("app", mine.id, mine.id[:12]):
                status, error = await w.call("gil", "GET", f"/v1/containers/{ref}/security-groups")
                assert status == 404 and error["message"] == f"No such container: {ref}"
                status, _ = await w.call(
                    "gil", "POST", f"/v1/containers/{ref}/security-groups", {"group": "default"}
                )
                assert status == 404
            # gil's own group cannot take ann's container, nor ann's group gil's rule.
            await w.call("gil", "POST", "/v1/security-groups", {"name": "lure"})
            status, _ = await w.call(
                "ann", "POST", "/v1/containers/app/security-groups", {"group": "lure"}
            )
            assert status == 404
            status, error = await w.call(
                "gil",
                "POST",
                "/v1/security-groups/lure/rules",
                {"protocol": "all", "source_group": made["id"]},
            )
            assert status == 400
            assert error["message"] == f"source group {made['id']}: no such security group"

    run(scenario)


def test_a_containers_groups(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await w.call("ann", "POST", "/v1/security-groups", {"name": "web"})
            await w.call(
                "ann",
                "POST",
                "/v1/security-groups/web/rules",
                {"protocol": "tcp", "port_min": 80, "source": "0.0.0.0/0"},
            )
            app = w.container("ann", "app")
            labelled = w.container("ann", "front", labels={GROUPS_LABEL: "web"})
            status, groups = await w.call("ann", "GET", "/v1/containers/app/security-groups")
            assert status == 200
            assert (groups["id"], groups["name"], groups["unapplied"]) == (app.id, "app", [])
            assert [g["name"] for g in groups["security_groups"]] == ["default"]
            status, _ = await w.call("ann", "POST", "/v1/containers/app/security-groups", {})
            assert status == 400
            status, attached = await w.call(
                "bob", "POST", f"/v1/containers/{app.id[:12]}/security-groups", {"group": "web"}
            )
            assert status == 200
            assert [g["name"] for g in attached["security_groups"]] == ["default", "web"]
            assert w.agent.last(app.id).endpoints[0].ingress[0].port_min == 80
            status, error = await w.call(
                "bob", "POST", "/v1/containers/app/security-groups", {"group": "web"}
            )
            assert status == 409 and "already in security group web" in error["message"]
            status, shown = await w.call("ann", "GET", "/v1/security-groups/web")
            assert sorted(c["name"] for c in shown["containers"]) == ["app", "front"]
            status, error = await w.call("ann", "DELETE", "/v1/security-groups/web")
            assert status == 409 and "in use by containers" in error["message"]
            w.agent.down = True
            status, detached = await w.call(
                "bob", "DELETE", "/v1/containers/front/security-groups/web"
            )
            assert status == 200
            assert (detached["security_groups"], detached["unapplied"]) == ([], [labelled.id])
            status, error = await w.call(
                "bob", "DELETE", "/v1/containers/front/security-groups/web"
            )
            assert status == 409 and "not in security group web" in error["message"]

    run(scenario)
