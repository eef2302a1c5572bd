"""PUT /v1/containers/{id}/network on the real runtime and kernel: security groups and a
public IP applied to a running container at once, kept for a stopped one's next start,
restored by a restarted agent, and gone with the container."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import subprocess
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import Agent
from dockyard.agent.server import make_app
from dockyard.core.errors import NotFound
from dockyard.core.protocol import AgentInfo, EndpointSpec, IngressRule, NetworkSpec, PortMapping
from dockyard.core.serde import to_data

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

Run = Callable[[Coroutine[Any, Any, Any]], Any]
ROUTER = "t1" * 32
WEB, DB = "1" * 64, "2" * 64
INFO = AgentInfo(
    id="a", boot_id="b", hostname="h", kernel_version="k", operating_system="o",
    os_type="linux", architecture="x86_64", ncpu=1, mem_total=1, cgroup_driver="cgroupfs",
    cgroup_version="1", runtime="crun", runtime_version="1", storage_driver="overlay",
    root_dir="/",
)  # fmt: skip


def endpoint(subnet: str, host: int, groups: tuple[str, ...] = ()) -> EndpointSpec:
    net = ipaddress.ip_network(subnet)
    network_id = hex(int(net.network_address))[2:].rjust(64, "0")
    return EndpointSpec(
        endpoint_id=secrets.token_hex(32),
        network_id=network_id,
        bridge="br-" + network_id[-12:],
        subnet=subnet,
        gateway=str(net.network_address + 1),
        ip=str(net.network_address + host),
        groups=groups,
    )


def spec(*endpoints: EndpointSpec, **fields: Any) -> NetworkSpec:
    return NetworkSpec(mode="tenant", router=ROUTER, endpoints=endpoints, **fields)


def with_rules(network: NetworkSpec, *rules: IngressRule, **fields: Any) -> NetworkSpec:
    endpoints = tuple(replace(e, ingress=rules) for e in network.endpoints)
    return replace(network, endpoints=endpoints, **fields)


def ping(pid: int, address: str) -> bool:
    command = ["nsenter", "-t", str(pid), "-n", "busybox", "ping", "-c", "1", "-W", "1", address]
    return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0


async def started(agent: Agent, name: str, network: NetworkSpec) -> str:
    req = agent.request(name, network, tenant="t1")
    await agent.manager.create(req)
    await agent.manager.start(req.id)
    return req.id


def a_public_ip() -> str:
    """An address of 198.19.0.0/16 (benchmarking space) that the host routes nowhere."""
    return f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}"


def routes_to(address: str) -> list[dict[str, Any]]:
    found = subprocess.run(
        ["ip", "-j", "route", "show", "exact", f"{address}/32"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return list(json.loads(found or "[]"))


def test_put_network_applies_groups_to_a_running_container(agent: Agent, run: Run) -> None:
    web_spec = spec(endpoint("10.72.0.0/24", 2, (WEB,)))
    db_spec = spec(endpoint("10.73.0.0/24", 2, (DB,)))
    web = run(started(agent, "web", web_spec))
    db = run(started(agent, "db", db_spec))
    web_pid, db_pid = agent.manager.record(web).pid, agent.manager.record(db).pid
    assert not ping(web_pid, "10.73.0.2")  # another network: nothing gets in
    opened = with_rules(db_spec, IngressRule("all", source_group=WEB))
    app = make_app(manager=agent.manager, execs=None, volumes=None, info=lambda: INFO)  # type: ignore[arg-type]

    async def put(container: str, body: NetworkSpec) -> tuple[int, Any]:
        async with TestClient(TestServer(app)) as client:
            response = await client.put(f"/v1/containers/{container}/network", json=to_data(body))
            return response.status, await response.json()

    assert run(put(db, opened)) == (200, {})
    assert ping(web_pid, "10.73.0.2")
    assert not ping(db_pid, "10.72.0.2")  # web lets nothing in
    assert run(put(db, opened)) == (200, {})  # idempotent
    assert (
        agent.manager.record(db).request.network.endpoints[0].ingress == opened.endpoints[0].ingress
    )
    status, body = run(put("f" * 64, opened))
    assert (status, body["error"]["kind"]) == (404, "not_found")
    bad = with_rules(db_spec, IngressRule("tcp", 0, 80, source="0.0.0.0/0"))
    status, body = run(put(db, bad))
    assert (status, body["error"]["kind"]) == (400, "invalid_argument")
    assert agent.manager.record(db).request.network == opened  # the record kept its spec
    assert ping(web_pid, "10.73.0.2")
    # Endpoints come and go only through the endpoint calls: one the push lacks stays.
    extra = endpoint("10.74.0.0/24", 2, (DB,))
    run(agent.manager.connect(db, replace(extra, interface="eth1")))
    run(put(db, with_rules(db_spec)))
    assert len(agent.manager.record(db).request.network.endpoints) == 2
    assert not ping(web_pid, "10.73.0.2")


def test_a_stopped_container_keeps_the_spec_for_its_next_start(agent: Agent, run: Run) -> None:
    web_spec = spec(endpoint("10.75.0.0/24", 2, (WEB,)))
    db_spec = spec(endpoint("10.76.0.0/24", 2, (DB,)))
    web = run(started(agent, "web", web_spec))
    req = agent.request("db", db_spec, tenant="t1")
    run(agent.manager.create(req))
    with pytest.raises(NotFound):
        run(agent.manager.update_network("e" * 64, db_spec))
    run(
        agent.manager.update_network(
            req.id, with_rules(db_spec, IngressRule("icmp", source="10.75.0.0/24"))
        )
    )
    run(agent.manager.start(req.id))
    assert ping(agent.manager.record(web).pid, "10.76.0.2")


def test_a_restarted_agent_restores_groups_and_the_public_ip(
    make_agent: Callable[[], Agent], run: Run
) -> None:
    agent = make_agent()
    address = a_public_ip()
    web_spec = spec(endpoint("10.77.0.0/24", 2, (WEB,)))
    plain = spec(endpoint("10.78.0.0/24", 2, (DB,)))
    db_spec = with_rules(
        plain,
        IngressRule("all", source_group=WEB),
        public_ip=address,
        public_ports=(PortMapping("tcp", 80, "", 80),),
    )
    web = run(started(agent, "web", web_spec))
    db = run(started(agent, "db", plain))
    run(agent.manager.update_network(db, db_spec))
    web_pid = agent.manager.record(web).pid
    assert ping(web_pid, "10.78.0.2")
    router = agent.network.router_name(ROUTER)
    assert len(routes_to(address)) == 1
    again = make_agent()  # a new agent process over the same state
    assert ping(web_pid, "10.78.0.2")
    assert len(routes_to(address)) == 1
    # It knows the tags it found: taking the rule and the address away works.
    run(again.manager.update_network(db, with_rules(db_spec, public_ip="", public_ports=())))
    assert not ping(web_pid, "10.78.0.2")
    assert routes_to(address) == []
    run(again.manager.update_network(db, db_spec))
    assert ping(web_pid, "10.78.0.2")
    # Stopped, the container loses its address at once; removed, everything of it goes.
    run(again.manager.stop(db, signal="SIGKILL", timeout=10))
    assert routes_to(address) == []
    run(again.manager.delete(db, force=True))
    run(again.manager.drain())
    listing = subprocess.run(
        ["ip", "netns", "exec", router, "nft", "-j", "list", "table", "inet", "dockyard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert db not in listing
    assert '"fip_host"' in listing  # the map is there, empty
    assert address not in listing
