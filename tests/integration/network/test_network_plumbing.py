"""Bridges, veths and eth0 inside fake containers; outbound NAT and internal networks."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    free_port,
    host_ip_json,
    links,
    random_subnet,
)

from dockyard.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from dockyard.core.protocol import NetworkSpec, PortMapping
from dockyard.network import HostNetwork
from dockyard.network.names import veth_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

Run = Callable[[Coroutine[Any, Any, Any]], Any]
CID = "c0ffee" + "0" * 58


def test_ensure_bridge_is_idempotent(
    host: HostNetwork, make_net: Callable[..., Net], run: Run
) -> None:
    net = make_net()
    for _ in range(2):
        run(
            host.ensure_bridge(
                name=net.bridge, subnet=str(net.subnet), gateway=net.gateway, internal=False
            )
        )
    (link,) = host_ip_json("-d", "addr", "show", "dev", net.bridge)
    assert link["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in link["flags"]
    assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == [net.gateway]
    with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == "1"


def test_ensure_bridge_refuses_a_non_bridge(host: HostNetwork, outside: Outside, run: Run) -> None:
    with pytest.raises(FailedPrecondition, match="not a bridge"):
        run(
            host.ensure_bridge(
                name=outside.link, subnet="10.240.0.0/24", gateway="10.240.0.1", internal=False
            )
        )


def test_attach_configures_eth0_lo_and_route(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    spec = net.spec()
    assert run(host.attach(container_id=CID, pid=ns.pid, spec=spec)) == {}
    addrs = {link["ifname"]: link for link in ns.ip_json("addr")}
    assert set(addrs) == {"lo", "eth0"}
    eth0 = addrs["eth0"]
    assert "UP" in eth0["flags"] and "UP" in addrs["lo"]["flags"]
    inet = [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"]
    assert inet == [(spec.ip, net.subnet.prefixlen)]
    routes = ns.ip_json("route")
    assert {"dst": "default", "gateway": net.gateway, "dev": "eth0"}.items() <= routes[0].items()
    veth = veth_name(host.veth_prefix, CID)
    assert veth in links()
    master = host_ip_json("link", "show", "dev", veth)[0]
    assert master["master"] == net.bridge
    assert ns.ping(net.gateway)
    assert host.attached() == {CID}


def test_containers_on_one_bridge_reach_each_other(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    a, b = make_netns(), make_netns()
    spec_a, spec_b = net.spec(), net.spec()
    run(host.attach(container_id="a" * 64, pid=a.pid, spec=spec_a))
    run(host.attach(container_id="b" * 64, pid=b.pid, spec=spec_b))
    b.serve("tcp", 7000)
    assert a.ping(spec_b.ip)
    # No NAT between neighbours: b sees a's own address.
    assert a.query("tcp", spec_b.ip, 7000) == spec_a.ip


def test_outbound_nat_uses_the_hosts_address(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    outside: Outside,
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    run(host.attach(container_id=CID, pid=ns.pid, spec=net.spec()))
    outside.ns.serve("tcp", 7001)
    outside.ns.serve("udp", 7002)
    assert ns.query("tcp", outside.ip, 7001) == outside.host_ip
    assert ns.query("udp", outside.ip, 7002) == outside.host_ip


def test_internal_bridge_has_no_way_out(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    outside: Outside,
    run: Run,
) -> None:
    internal = make_net(internal=True)
    a, b = make_netns(), make_netns()
    spec_a, spec_b = internal.spec(), internal.spec()
    run(host.attach(container_id="a" * 64, pid=a.pid, spec=spec_a))
    run(host.attach(container_id="b" * 64, pid=b.pid, spec=spec_b))
    outside.ns.serve("tcp", 7003)
    b.serve("tcp", 7004)
    assert a.query("tcp", outside.ip, 7003, timeout=1).startswith("ERR")
    # Inside the internal network and to its gateway, traffic flows (br_netfilter on).
    assert a.query("tcp", spec_b.ip, 7004) == spec_a.ip
    assert a.ping(internal.gateway)
    # Nor can the outside reach into it.
    assert outside.ns.query("tcp", spec_b.ip, 7004, timeout=1).startswith("ERR")


def test_mode_none_does_nothing(
    host: HostNetwork, make_netns: Callable[[], Netns], run: Run
) -> None:
    ns = make_netns()
    before = links()
    assert run(host.attach(container_id=CID, pid=ns.pid, spec=NetworkSpec())) == {}
    assert links() == before
    assert [link["ifname"] for link in ns.ip_json("link")] == ["lo"]
    run(host.detach(container_id=CID))


def test_attach_twice_is_refused(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    spec = net.spec()
    run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    with pytest.raises(AlreadyExists):
        run(host.attach(container_id=CID, pid=ns.pid, spec=spec))


def test_bad_requests_are_refused_before_any_change(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    before = links()
    bad = [
        NetworkSpec(mode="host"),
        net.spec(PortMapping("sctp", 80)),
        NetworkSpec(
            mode="bridge",
            bridge=net.bridge,
            subnet=str(net.subnet),
            gateway=net.gateway,
            ip="1.2.3.4",
        ),
    ]
    for spec in bad:
        with pytest.raises(InvalidArgument):
            run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    assert links() == before
    assert host.attached() == set()


def test_attach_creates_a_bridge_it_has_not_met(
    host: HostNetwork, make_netns: Callable[[], Netns], run: Run
) -> None:
    net = Net(f"{host.table}n", random_subnet("10.240.0.0/12", 24), internal=False)
    ns = make_netns()
    run(host.attach(container_id=CID, pid=ns.pid, spec=net.spec()))
    assert net.bridge in links()
    assert ns.ping(net.gateway)
    run(host.teardown())
    assert net.bridge not in links()


def test_failed_attach_rolls_back(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    """A failure after the veth exists (here: a default route already in the netns)."""
    net = make_net()
    ns = make_netns()
    ns.run("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ns.run("ip", "link", "set", "d0", "up")
    ns.run("ip", "route", "add", "default", "dev", "d0")
    port = free_port()
    spec = net.spec(PortMapping("tcp", 80, host_port=port))
    with pytest.raises(Unavailable, match="netlink error 17"):
        run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    assert veth_name(host.veth_prefix, CID) not in links()
    assert {link["ifname"] for link in ns.ip_json("link")} == {"lo", "d0", "d1"}
    assert host.attached() == set()
    with socket.socket() as sock:  # the reservation was released
        sock.bind(("0.0.0.0", port))


def test_attach_to_a_dead_process_fails_cleanly(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    pid = ns.pid
    ns.kill()
    with pytest.raises((FailedPrecondition, Unavailable)):
        run(host.attach(container_id=CID, pid=pid, spec=net.spec()))
    assert veth_name(host.veth_prefix, CID) not in links()


def test_subnets_stay_in_the_test_ranges(make_net: Callable[..., Net]) -> None:
    net = make_net()
    assert net.subnet.subnet_of(ipaddress.ip_network("10.240.0.0/12"))


def test_containers_cannot_reach_host_loopback_services(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    """route_localnet=1 on the bridge must not open the host's 127.0.0.1 to containers.

    The container (root in its netns) routes 127.0.0.0/8 to the gateway, as a hostile
    tenant with CAP_NET_ADMIN or a raw socket could; the guard chain drops it.
    """
    net = make_net()
    ns = make_netns()
    run(host.attach(container_id=CID, pid=ns.pid, spec=net.spec()))
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen(4)
        port = service.getsockname()[1]
        ns.run("sysctl", "-q", "-w", "net.ipv4.conf.eth0.route_localnet=1")
        ns.run("ip", "addr", "del", "127.0.0.1/8", "dev", "lo")
        ns.run("ip", "route", "add", "127.0.0.0/8", "via", net.gateway)
        assert ns.run("ip", "route", "get", "127.0.0.1").stdout.startswith("127.0.0.1 via")
        answer = ns.query("tcp", "127.0.0.1", port, timeout=1)
        assert answer.startswith("ERR"), answer
