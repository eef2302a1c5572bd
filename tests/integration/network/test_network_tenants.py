"""Who reaches whom: tenants, networks, isolated and internal networks, egress, DNS."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    ip_of,
    router_address,
    router_exec,
    tenant_spec,
    uplink_address,
)

from dockyard.core.errors import AlreadyExists, NotFound
from dockyard.core.protocol import PortMapping
from dockyard.network import HostNetwork

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def _cid(n: int) -> str:
    return f"{n:02d}" * 32


def test_two_tenants_with_the_same_subnet(
    host: HostNetwork,
    make_tenant: Callable[[], str],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """Each tenant's pair talks over the one subnet; nothing crosses between tenants."""
    t1, t2 = make_tenant(), make_tenant()
    net1 = make_net(owner=t1, subnet="10.7.0.0/24")
    net2 = make_net(owner=t2, subnet="10.7.0.0/24")
    a1, a2 = make_netns("a1"), make_netns("a2")
    b1, b2 = make_netns("b1"), make_netns("b2")
    specs = {}
    for n, (ns, net) in enumerate(((a1, net1), (a2, net1), (b1, net2), (b2, net2))):
        specs[ns.name] = net.spec()
        run(host.attach(container_id=_cid(n), pid=ns.pid, spec=specs[ns.name]))
    # Same addresses in both tenants.
    assert ip_of(specs["a2"]) == ip_of(specs["b2"]) == "10.7.0.3"
    a2.serve("tcp", 7001)
    b2.serve("tcp", 7002)
    assert a1.query("tcp", "10.7.0.3", 7001) == "a2 10.7.0.2"
    assert b1.query("tcp", "10.7.0.3", 7002) == "b2 10.7.0.2"
    assert a1.query("tcp", "10.7.0.3", 7002, timeout=1).startswith("ERR")
    assert b1.query("tcp", "10.7.0.3", 7001, timeout=1).startswith("ERR")
    # Nor through the other tenant's router: its transit address is not reachable.
    assert not a1.ping(router_address(host, t2))
    assert a1.ping(net1.gateway)


def test_another_tenants_router_is_reached_only_through_published_ports(
    host: HostNetwork,
    make_tenant: Callable[[], str],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    t1, t2 = make_tenant(), make_tenant()
    a, b = make_netns("a"), make_netns("b")
    run(host.attach(container_id=_cid(1), pid=a.pid, spec=make_net(owner=t1).spec()))
    ports = run(
        host.attach(
            container_id=_cid(2),
            pid=b.pid,
            spec=make_net(owner=t2).spec(PortMapping("tcp", 80)),
        )
    )
    port = ports["80/tcp"][0][1]
    b.serve("tcp", 80)
    # Through a host address, as anyone could: allowed (it is public).
    assert a.query("tcp", outside.host_ip, port) == f"b {uplink_address(host, t2)}"
    # Straight at the other router's transit address, bypassing the host's DNAT: dropped.
    assert a.query("tcp", router_address(host, t2), port, timeout=1).startswith("ERR")


def test_networks_of_one_tenant_are_isolated_but_a_container_on_both_reaches_both(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    front, back = make_net(), make_net()
    a, b, both = make_netns("a"), make_netns("b"), make_netns("both")
    spec_a, spec_b = front.spec(), back.spec()
    spec_both = tenant_spec(tenant, front.endpoint("eth0"), back.endpoint("eth1"))
    run(host.attach(container_id=_cid(1), pid=a.pid, spec=spec_a))
    run(host.attach(container_id=_cid(2), pid=b.pid, spec=spec_b))
    run(host.attach(container_id=_cid(3), pid=both.pid, spec=spec_both))
    for ns in (a, b, both):
        ns.serve("tcp", 7000)
    assert both.query("tcp", ip_of(spec_a), 7000) == f"a {ip_of(spec_both, 0)}"
    assert both.query("tcp", ip_of(spec_b), 7000) == f"b {ip_of(spec_both, 1)}"
    assert a.query("tcp", ip_of(spec_both, 0), 7000) == f"both {ip_of(spec_a)}"
    assert b.query("tcp", ip_of(spec_both, 1), 7000) == f"both {ip_of(spec_b)}"
    # a and b: different networks, no route between them through the router.
    assert a.query("tcp", ip_of(spec_b), 7000, timeout=1).startswith("ERR")
    assert b.query("tcp", ip_of(spec_a), 7000, timeout=1).startswith("ERR")
    assert not a.ping(ip_of(spec_b))
    assert not a.ping(back.gateway)  # nor the other bridge's gateway


def test_isolated_ports_reach_the_outside_but_not_each_other(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    nat = make_net(isolated=True)
    a, b = make_netns("a"), make_netns("b")
    spec_a, spec_b = nat.spec(), nat.spec()
    run(host.attach(container_id=_cid(1), pid=a.pid, spec=spec_a))
    run(host.attach(container_id=_cid(2), pid=b.pid, spec=spec_b))
    b.serve("tcp", 7000)
    outside.ns.serve("tcp", 7001)
    assert a.query("tcp", ip_of(spec_b), 7000, timeout=1).startswith("ERR")
    assert not a.ping(ip_of(spec_b))
    assert a.ping(nat.gateway)
    assert a.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"
    # Not by routing through the gateway either (a hostile tenant can set routes).
    a.run("ip", "route", "add", f"{ip_of(spec_b)}/32", "via", nat.gateway)
    b.run("ip", "route", "add", f"{ip_of(spec_a)}/32", "via", nat.gateway)
    assert a.query("tcp", ip_of(spec_b), 7000, timeout=1).startswith("ERR")


_BR_NETFILTER = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables")


def _router_sysctl(host: HostNetwork, tenant: str, name: str) -> str:
    return router_exec(host, tenant, "cat", f"/proc/sys/net/bridge/{name}").strip()


def _conntrack(host: HostNetwork, tenant: str, port: int) -> list[str]:
    """The router's conntrack entries of connections to ``port``."""
    table = router_exec(host, tenant, "cat", "/proc/net/nf_conntrack")
    return [line for line in table.splitlines() if f"dport={port} " in line]


@pytest.mark.skipif(
    not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"),
    reason="the kernel has no br_netfilter",
)
@pytest.mark.parametrize("br_netfilter", ["0", "1"], ids=["bridged-off", "bridged-on"])
def test_who_reaches_whom_is_the_same_with_br_netfilter_on(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
    *,
    br_netfilter: str,
) -> None:
    """Routers keep what a bridge forwards between its ports off netfilter (br_netfilter
    off: no conntrack, no forward chain); with it on (routers before, or a router made
    before the module was loaded) the tables give the same answers: one network talks
    freely, two networks do not, isolated ports do not, not even through the gateway,
    and everyone reaches the outside. Only the router's conntrack tells them apart."""
    net, other, nat = make_net(), make_net(), make_net(isolated=True)
    a, b, c = make_netns("a"), make_netns("b"), make_netns("c")
    n1, n2 = make_netns("n1"), make_netns("n2")
    specs = {}
    for n, (ns, on) in enumerate(((a, net), (b, net), (c, other), (n1, nat), (n2, nat))):
        specs[ns.name] = on.spec()
        run(host.attach(container_id=_cid(n + 10), pid=ns.pid, spec=specs[ns.name]))
    assert [_router_sysctl(host, tenant, name) for name in _BR_NETFILTER] == ["0", "0", "0"]
    for name in _BR_NETFILTER:
        router_exec(host, tenant, "sysctl", "-qw", f"net.bridge.{name}={br_netfilter}")
    ip = {name: ip_of(spec) for name, spec in specs.items()}
    for ns in (a, b, c, n1, n2):
        ns.serve("tcp", 7000)
    outside.ns.serve("tcp", 7001)

    assert a.query("tcp", ip["b"], 7000) == f"b {ip['a']}"
    assert b.query("tcp", ip["a"], 7000) == f"a {ip['b']}"
    assert a.ping(ip["b"])
    # Bridged between a and b: seen by the router's conntrack only with br_netfilter on.
    assert bool(_conntrack(host, tenant, 7000)) == (br_netfilter == "1")
    assert a.query("tcp", ip["c"], 7000, timeout=1).startswith("ERR")
    assert c.query("tcp", ip["a"], 7000, timeout=1).startswith("ERR")
    assert n1.query("tcp", ip["n2"], 7000, timeout=1).startswith("ERR")
    assert not n1.ping(ip["n2"])
    n1.run("ip", "route", "add", f"{ip['n2']}/32", "via", nat.gateway)
    n2.run("ip", "route", "add", f"{ip['n1']}/32", "via", nat.gateway)
    assert n1.query("tcp", ip["n2"], 7000, timeout=1).startswith("ERR")
    for ns in (a, c, n1):
        assert ns.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"
    # Routed, not bridged: the router tracks it either way.
    assert _conntrack(host, tenant, 7001)


def test_internal_network_has_no_way_out(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    internal = make_net(internal=True)
    a, b = make_netns("a"), make_netns("b")
    spec_a, spec_b = internal.spec(), internal.spec(PortMapping("tcp", 7004))
    run(host.attach(container_id=_cid(1), pid=a.pid, spec=spec_a))
    port = run(host.attach(container_id=_cid(2), pid=b.pid, spec=spec_b))["7004/tcp"][0][1]
    outside.ns.serve("tcp", 7003)
    b.serve("tcp", 7004)
    assert a.query("tcp", outside.ip, 7003, timeout=1).startswith("ERR")
    assert not a.ping(outside.host_ip)
    # Inside the internal network and to its gateway, traffic flows.
    assert a.query("tcp", ip_of(spec_b), 7004) == f"b {ip_of(spec_a)}"
    assert a.ping(internal.gateway)
    # Nothing comes in from up0 either, published or not.
    assert outside.ns.query("tcp", outside.host_ip, port, timeout=1).startswith("ERR")


def test_egress_is_masqueraded_twice(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    """To the outside a container appears as the host's address on the way out."""
    ns = make_netns("c")
    run(host.attach(container_id=_cid(1), pid=ns.pid, spec=make_net().spec()))
    outside.ns.serve("tcp", 7001)
    outside.ns.serve("udp", 7002)
    assert ns.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"
    assert ns.query("udp", outside.ip, 7002) == f"outside {outside.host_ip}"
    # The outside cannot reach the router or the container unasked.
    outside.ns.run("ip", "route", "add", host.transit_subnet, "via", outside.host_ip)
    assert not outside.ns.ping(router_address(host, tenant))


def test_dns_sockets_answer_only_on_the_own_gateway(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    a, b = make_netns("a"), make_netns("b")
    spec_a = one.spec()
    run(host.attach(container_id=_cid(1), pid=a.pid, spec=spec_a))
    run(host.attach(container_id=_cid(2), pid=b.pid, spec=two.spec()))
    closed: list[str] = []
    udp, tcp = host.router_sockets(tenant, one.gateway, on_close=lambda: closed.append("one"))
    assert udp.getsockname() == (one.gateway, 53)
    assert tcp.getsockname() == (one.gateway, 53)
    with pytest.raises(AlreadyExists):
        host.router_sockets(tenant, one.gateway)
    with pytest.raises(NotFound):
        host.router_sockets(tenant, "10.255.255.1")

    def answer_udp() -> None:
        _, peer = udp.recvfrom(100)
        udp.sendto(f"dns {peer[0]}".encode(), peer)

    def answer_tcp() -> None:
        conn, peer = tcp.accept()
        with conn:
            conn.sendall(f"dns {peer[0]}".encode())

    for sock, answer, proto in ((udp, answer_udp, "udp"), (tcp, answer_tcp, "tcp")):
        sock.setblocking(True)
        sock.settimeout(5)
        thread = threading.Thread(target=answer)
        thread.start()
        assert a.query(proto, one.gateway, 53) == f"dns {ip_of(spec_a)}"
        thread.join()
    # From another bridge, the gateway of one is not reachable (input policy).
    assert b.query("tcp", one.gateway, 53, timeout=1).startswith("ERR")
    # Nor other ports of the gateway from its own bridge.
    assert a.query("tcp", one.gateway, 22, timeout=1).startswith("ERR")
    run(host.cleanup(keep=set()))
    assert closed == ["one"]
    assert udp.fileno() == -1
    assert tcp.fileno() == -1
