"""The agent's network wiring on the real runtime and kernel: tenant endpoints at start,
their /etc files, connect and disconnect (over the agent protocol), ``container:`` mode,
and an agent restart."""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import Agent
from dockyard.agent.server import make_app
from dockyard.core.errors import FailedPrecondition
from dockyard.core.protocol import AgentInfo, EndpointSpec, NetworkSpec
from dockyard.core.serde import to_data

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class Network:
    def __init__(self, subnet: str, **flags: bool) -> None:
        self.id = secrets.token_hex(32)
        self.subnet = ipaddress.ip_network(subnet)
        self.flags = flags
        self.next = 2

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def endpoint(self, interface: str = "eth0") -> EndpointSpec:
        ip = str(self.subnet.network_address + self.next)
        self.next += 1
        return EndpointSpec(
            endpoint_id=secrets.token_hex(32),
            network_id=self.id,
            bridge="br-" + self.id[:12],
            subnet=str(self.subnet),
            gateway=self.gateway,
            ip=ip,
            interface=interface,
            **self.flags,
        )


def tenant(*endpoints: EndpointSpec, router: str = "t1" * 32) -> NetworkSpec:
    return NetworkSpec(mode="tenant", router=router, endpoints=endpoints)


def in_netns(pid: int, *cmd: str) -> subprocess.CompletedProcess[str]:
    command = ["nsenter", "-t", str(pid), "-n", *cmd]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def ping(pid: int, address: str) -> bool:
    return in_netns(pid, "busybox", "ping", "-c", "1", "-W", "1", address).returncode == 0


def links(pid: int) -> set[str]:
    out = in_netns(pid, "ip", "-o", "link").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


async def started(agent: Agent, name: str, network: NetworkSpec, **kw: str) -> str:
    req = agent.request(name, network, **kw)
    await agent.manager.create(req)
    await agent.manager.start(req.id)
    return req.id


def test_tenant_endpoints_at_start_and_their_etc_files(agent: Agent, run: Run) -> None:
    front, back = Network("10.61.0.0/24"), Network("10.62.0.0/24")
    web = run(started(agent, "web", tenant(front.endpoint(), back.endpoint("eth1"))))
    db = run(started(agent, "db", tenant(back.endpoint())))
    web_pid, db_pid = agent.manager.record(web).pid, agent.manager.record(db).pid
    assert links(web_pid) == {"lo", "eth0", "eth1"}
    assert ping(web_pid, "10.62.0.3")
    assert ping(db_pid, "10.62.0.2")
    assert ping(web_pid, front.gateway)
    paths = agent.manager.paths(web)
    assert "10.61.0.2\tweb\n" in paths.hosts.read_text()
    assert paths.resolv_conf.read_text().startswith(f"nameserver {front.gateway}\n")
    # Stopped, the container leaves its router; started again, it is plumbed anew.
    run(agent.manager.stop(web, signal="SIGKILL", timeout=10))
    run(agent.manager.drain())
    assert not ping(db_pid, "10.62.0.2")
    run(agent.manager.start(web))
    assert ping(db_pid, "10.62.0.2")


def test_connect_and_disconnect_over_the_agent_protocol(agent: Agent, run: Run) -> None:
    front, back = Network("10.63.0.0/24"), Network("10.64.0.0/24")
    web = run(started(agent, "web", tenant(front.endpoint())))
    db = run(started(agent, "db", tenant(back.endpoint())))
    pid = agent.manager.record(web).pid
    endpoint = back.endpoint("eth1")
    info = AgentInfo(
        id="a", boot_id="b", hostname="h", kernel_version="k", operating_system="o",
        os_type="linux", architecture="x86_64", ncpu=1, mem_total=1, cgroup_driver="cgroupfs",
        cgroup_version="1", runtime="crun", runtime_version="1", storage_driver="overlay",
        root_dir="/",
    )  # fmt: skip
    app = make_app(manager=agent.manager, execs=None, volumes=None, info=lambda: info)  # type: ignore[arg-type]

    async def calls() -> list[int]:
        async with TestClient(TestServer(app)) as client:
            codes = []
            response = await client.post(f"/v1/containers/{web}/endpoints", json=to_data(endpoint))
            codes.append(response.status)
            codes.append(int(ping(pid, "10.64.0.2")))
            again = await client.post(f"/v1/containers/{web}/endpoints", json=to_data(endpoint))
            codes.append(again.status)
            codes.append((await again.json())["error"]["kind"] == "already_exists")
            gone = await client.delete(f"/v1/containers/{web}/endpoints/{endpoint.endpoint_id}")
            codes.append(gone.status)
            codes.append(int(ping(pid, "10.64.0.2")))
            missing = await client.delete(f"/v1/containers/{web}/endpoints/{endpoint.endpoint_id}")
            codes.append(missing.status)
            return codes

    assert run(calls()) == [204, 1, 409, True, 204, 0, 404]
    assert links(pid) == {"lo", "eth0"}
    assert db in {r.id for r in agent.manager.records()}


def test_endpoints_of_a_stopped_container_apply_at_its_next_start(agent: Agent, run: Run) -> None:
    front, back = Network("10.65.0.0/24"), Network("10.66.0.0/24")
    req = agent.request("web", tenant(front.endpoint()))
    run(agent.manager.create(req))
    endpoint = back.endpoint("eth1")
    run(agent.manager.connect(req.id, endpoint))
    run(agent.manager.start(req.id))
    pid = agent.manager.record(req.id).pid
    assert links(pid) == {"lo", "eth0", "eth1"}
    assert ping(pid, back.gateway)


def test_container_mode_joins_the_peers_network(agent: Agent, run: Run) -> None:
    net = Network("10.67.0.0/24")
    peer = run(started(agent, "peer", tenant(net.endpoint())))
    other = run(started(agent, "other", tenant(net.endpoint())))
    joined = run(started(agent, "joined", NetworkSpec(mode="container", peer=peer)))
    peer_pid = agent.manager.record(peer).pid
    pid = agent.manager.record(joined).pid
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/proc/{peer_pid}/ns/net").st_ino
    assert ping(pid, "10.67.0.3")
    config = (agent.manager.paths(joined).bundle / "config.json").read_text()
    assert '"hostname": "peer"' in config
    assert str(agent.manager.paths(peer).hosts) in config
    # Its own /sys shows its (the peer's) interfaces, not the host's.
    sys_net = subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "ls", "/sys/class/net"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(sys_net) == ["eth0", "lo"]
    # A peer that does not run, or belongs to another tenant, is refused.
    run(agent.manager.stop(other, signal="SIGKILL", timeout=10))
    for spec, tenant_id in ((other, "t1"), (peer, "t2")):
        req = agent.request("late", NetworkSpec(mode="container", peer=spec), tenant=tenant_id)
        run(agent.manager.create(req))
        with pytest.raises(FailedPrecondition, match="not running"):
            run(agent.manager.start(req.id))


def test_a_restarted_agent_restores_every_endpoint(
    make_agent: Callable[[], Agent], run: Run
) -> None:
    agent = make_agent()
    front, back, third = Network("10.68.0.0/24"), Network("10.69.0.0/24"), Network("10.70.0.0/24")
    web = run(started(agent, "web", tenant(front.endpoint())))
    db = run(started(agent, "db", tenant(back.endpoint())))
    run(agent.manager.connect(web, back.endpoint("eth1")))
    pid = agent.manager.record(web).pid
    again = make_agent()  # the old one closed: a new process over the same state
    assert again.network.attached() == {web, db}
    assert ping(pid, "10.69.0.2")
    assert [e.interface for e in again.network.endpoints(web)] == ["eth0", "eth1"]
    run(again.manager.connect(web, third.endpoint("eth2")))
    assert ping(pid, third.gateway)
    run(
        again.manager.disconnect(
            web, again.manager.record(web).request.network.endpoints[1].endpoint_id
        )
    )
    assert links(pid) == {"lo", "eth0", "eth2"}


def test_a_container_whose_network_is_gone_is_killed_with_the_reason(
    make_agent: Callable[[], Agent], run: Run
) -> None:
    """An agent starts even if a container's plumbing vanished while it was away; the
    container, which would only look alive, exits with the reason."""
    agent = make_agent()
    net = Network("10.71.0.0/24")
    endpoint = net.endpoint()
    web = run(started(agent, "web", tenant(endpoint)))
    keep = run(started(agent, "keep", tenant(net.endpoint())))
    router = agent.network.router_name("t1" * 32)
    run(agent.close())
    subprocess.run(
        ["ip", "netns", "exec", router, "ip", "link", "del", "ve" + endpoint.endpoint_id[:13]],
        check=True,
    )
    again = make_agent()
    assert run(again.manager.wait_exit(web, 10))
    record = again.manager.record(web)
    assert record.status == "exited"
    assert "network could not be restored" in record.error
    assert again.manager.record(keep).status == "running"
    assert again.network.attached() == {keep}
