"""Floating IPs: routed to the tenant's router, DNATed in and SNATed out there; unbinding
cuts traffic at once; an address moves to a replacement; nothing is left behind.

The public side is the ``outside`` namespace, which routes the test's pool (a /29 of
198.18.0.0/15) to the host; the host has the pool unreachable, so an address no router
holds goes nowhere."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    exchange,
    free_port,
    host_routes,
    ip_of,
    root_elements,
    router_elements,
)

from dockyard.core.protocol import IngressRule, NetworkSpec, PortMapping
from dockyard.network import HostNetwork
from dockyard.network.conntrack import NETLINK_NETFILTER, Conntrack
from dockyard.network.netns import NETNS_RUN_DIR, socket_in_named_netns
from dockyard.network.rules import ENDPOINT_SETS, FLOATING_SETS, PROFILE_SETS

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B, C = "a" * 64, "b" * 64, "c" * 64
WEB = "1" * 64


@dataclass
class Public:
    """The public side: an outside host, and the pool of floating IPs it routes to us."""

    outside: Outside
    pool: ipaddress.IPv4Network

    def address(self, n: int) -> str:
        return str(self.pool.network_address + n)


@pytest.fixture
def public(outside: Outside, pool: ipaddress.IPv4Network) -> Public:
    return Public(outside, pool)


def rule(protocol: str, ports: tuple[int, int] = (0, 0), **source: str) -> IngressRule:
    return IngressRule(protocol, ports[0], ports[1], **source)


def bound(
    spec: NetworkSpec,
    address: str,
    *ports: PortMapping,
    rules: Sequence[IngressRule] = (),
    groups: Sequence[str] = (),
) -> NetworkSpec:
    """``spec`` with public IP ``address`` (public ports as the controller computes them:
    ``PortMapping(protocol, container port, "", public port)``) and every endpoint's
    groups and rules."""
    endpoints = tuple(
        replace(e, groups=tuple(groups), ingress=tuple(rules)) for e in spec.endpoints
    )
    return replace(spec, endpoints=endpoints, public_ip=address, public_ports=ports)


def unbound(spec: NetworkSpec) -> NetworkSpec:
    return replace(spec, public_ip="", public_ports=())


def exposed(*ports: int) -> tuple[PortMapping, ...]:
    return tuple(PortMapping("tcp", port, "", port) for port in ports)


def conntrack_of(host: HostNetwork, tenant: str, address: str) -> tuple[int, int]:
    """Conntrack entries of ``address`` in the host's namespace and in the router."""
    with Conntrack() as root:
        outside = len(root.entries(address))
    sock = socket_in_named_netns(
        NETNS_RUN_DIR / host.router_name(tenant), kind=socket.SOCK_RAW, proto=NETLINK_NETFILTER
    )
    with Conntrack(sock) as router:
        inside = len(router.entries(address))
    return outside, inside


def test_exposed_ports_as_the_rules_allow_and_published_ones_remapped(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    public: Public,
    run: Run,
) -> None:
    outside = public.outside
    address = public.address(1)
    web = make_netns("web")
    remap = free_port()
    plain = make_net().spec(PortMapping("tcp", 22, host_port=remap))
    ports = (PortMapping("tcp", 22, "", remap), *exposed(80, 8080))
    spec = bound(plain, address, *ports, rules=[rule("tcp", (80, 80), source=outside.prefix)])
    run(host.attach(container_id=A, pid=web.pid, spec=spec))
    for port in (22, 80, 8080):
        web.serve("tcp", port)
    # -p remap: the public port reaches 22 with no rule (a publish is an allow of its own).
    assert outside.ns.query("tcp", address, remap) == f"web {outside.ip}"
    assert outside.ns.query("tcp", address, 22, timeout=1).startswith("ERR")
    # Exposed: 80 as the rule allows, 8080 not.
    assert outside.ns.query("tcp", address, 80) == f"web {outside.ip}"
    assert outside.ns.query("tcp", address, 8080, timeout=1).startswith("ERR")
    # Pings need an icmp rule; rules change while it runs.
    assert not outside.ns.ping(address)
    opened = bound(plain, address, *ports, rules=[rule("icmp", source="0.0.0.0/0")])
    run(host.update(container_id=A, spec=opened))
    assert outside.ns.ping(address)
    assert outside.ns.query("tcp", address, 80, timeout=1).startswith("ERR")
    # The host's own published port is there as before.
    assert outside.ns.query("tcp", outside.host_ip, remap) == f"web {outside.ip}"
    # Another address of the pool goes nowhere.
    assert outside.ns.query("tcp", public.address(2), 80, timeout=1).startswith("ERR")


def test_egress_leaves_from_the_floating_ip(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    public: Public,
    run: Run,
) -> None:
    outside = public.outside
    address = public.address(3)
    net = make_net()
    ns, neighbour = make_netns("c"), make_netns("n")
    spec = bound(net.spec(), address)
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    run(host.attach(container_id=B, pid=neighbour.pid, spec=net.spec()))
    outside.ns.serve("tcp", 7001)
    outside.ns.serve("udp", 7002)
    assert ns.query("tcp", outside.ip, 7001) == f"outside {address}"
    assert ns.query("udp", outside.ip, 7002) == f"outside {address}"
    # Only the bound container: its neighbour leaves from the host's address.
    assert neighbour.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"
    run(host.update(container_id=A, spec=unbound(spec)))
    assert ns.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"


def test_unbinding_cuts_established_connections_at_once(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    public: Public,
    run: Run,
) -> None:
    outside, pool = public.outside, public.pool
    address = public.address(2)
    ns = make_netns("c")
    spec = bound(
        make_net().spec(),
        address,
        *exposed(7000),
        rules=[rule("tcp", (7000, 7000), source="0.0.0.0/0")],
    )
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    ns.echo(7000)
    outside.ns.echo(7100)
    inbound = outside.ns.connect(address, 7000, timeout=1)
    outbound = ns.connect(outside.ip, 7100, timeout=1)
    try:
        assert exchange(inbound, "one") == f"c {outside.ip} one"
        assert exchange(outbound, "one") == f"outside {address} one"
        in_root, in_router = conntrack_of(host, tenant, address)
        assert in_root >= 2
        assert in_router >= 2
        run(host.update(container_id=A, spec=unbound(spec)))
        assert conntrack_of(host, tenant, address) == (0, 0)
        assert host_routes(pool) == []
        assert exchange(inbound, "two") == ""
        assert exchange(outbound, "two") == ""
        # New connections do not get there either.
        assert outside.ns.query("tcp", address, 7000, timeout=1).startswith("ERR")
    finally:
        inbound.close()
        outbound.close()


def test_a_replacement_container_takes_the_address_over(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    public: Public,
    run: Run,
) -> None:
    outside, pool = public.outside, public.pool
    address = public.address(4)
    net = make_net()
    old, new = make_netns("old"), make_netns("new")
    allow = [rule("tcp", (80, 80), source="0.0.0.0/0")]
    spec_old = bound(net.spec(), address, *exposed(80), rules=allow)
    run(host.attach(container_id=A, pid=old.pid, spec=spec_old))
    spec_new = net.spec()
    run(host.attach(container_id=B, pid=new.pid, spec=spec_new))
    old.serve("tcp", 80)
    new.serve("tcp", 80)
    assert outside.ns.query("tcp", address, 80) == f"old {outside.ip}"
    # The controller unbinds from the old container first, then binds to the new one.
    run(host.update(container_id=A, spec=unbound(spec_old)))
    run(host.update(container_id=B, spec=bound(spec_new, address, *exposed(80), rules=allow)))
    assert outside.ns.query("tcp", address, 80) == f"new {outside.ip}"
    fips = [e for e in router_elements(host, tenant) if e.set_name.startswith("fip_")]
    assert {e.comment for e in fips} == {B}
    assert host_routes(pool) == [address]


def test_members_reach_in_through_their_public_address(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    public: Public,
    run: Run,
) -> None:
    """A member of the source group coming through the target's public IP is known by
    its own public IP; without one it comes from the router's address, not a member."""
    outside = public.outside
    target_ip, member_ip = public.address(5), public.address(6)
    target, member = make_netns("target"), make_netns("member")
    net = make_net()
    spec = bound(
        net.spec(), target_ip, *exposed(80), rules=[rule("tcp", (80, 80), source_group=WEB)]
    )
    run(host.attach(container_id=A, pid=target.pid, spec=spec))
    member_spec = bound(net.spec(), member_ip, groups=[WEB])
    run(host.attach(container_id=B, pid=member.pid, spec=member_spec))
    target.serve("tcp", 80)
    assert member.query("tcp", target_ip, 80) == f"target {member_ip}"
    assert outside.ns.query("tcp", target_ip, 80, timeout=1).startswith("ERR")
    run(host.update(container_id=B, spec=unbound(member_spec)))
    assert member.query("tcp", target_ip, 80, timeout=1).startswith("ERR")
    # On the same network it needs no rule at all.
    assert member.query("tcp", ip_of(spec), 80) == f"target {ip_of(member_spec)}"


def _leftovers(host: HostNetwork, pool: ipaddress.IPv4Network, address: str) -> list[str]:
    """The route, root elements and conntrack entries of ``address``."""
    found = [f"route {r}" for r in host_routes(pool) if r == address]
    found += [
        f"root {e}"
        for e in root_elements(host)
        if e.set_name in FLOATING_SETS and e.key[0] == address
    ]
    with Conntrack() as root:
        found += [f"conntrack {e}" for e in root.entries(address)]
    return found


def _ingress_elements(host: HostNetwork, tenant: str) -> list[str]:
    wanted = (*ENDPOINT_SETS, *PROFILE_SETS, "sg_tags")
    return [str(e) for e in router_elements(host, tenant) if e.set_name in wanted]


def test_nothing_is_left_behind(
    tenant: str,
    make_host: Callable[[], HostNetwork],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    public: Public,
    run: Run,
) -> None:
    outside, pool = public.outside, public.pool
    host = make_host()
    net = make_net()
    allow = [rule("tcp", (80, 80), source="0.0.0.0/0"), rule("all", source_group=WEB)]
    a, b, c = make_netns("a"), make_netns("b"), make_netns("c")
    addresses = [public.address(n) for n in (1, 2, 3)]

    def attach_all(on: HostNetwork) -> dict[str, NetworkSpec]:
        specs = {}
        for owner, ns, address in zip((A, B, C), (a, b, c), addresses, strict=True):
            specs[owner] = bound(net.spec(), address, *exposed(80), rules=allow, groups=[WEB])
            run(on.attach(container_id=owner, pid=ns.pid, spec=specs[owner]))
        return specs

    def use() -> None:
        for ns in (a, b, c):
            ns.serve("tcp", 80)
        for address, name in zip(addresses, "abc", strict=True):
            assert outside.ns.query("tcp", address, 80) == f"{name} {outside.ip}"

    # Detach: everything of a container goes with it.
    attach_all(host)
    use()
    for owner in (A, B, C):
        run(host.detach(container_id=owner))
    assert _ingress_elements(host, tenant) == []
    for address in addresses:
        assert _leftovers(host, pool, address) == []
    # A restarted agent restores what still runs, and its cleanup removes the rest.
    specs = attach_all(host)
    for address, name in zip(addresses, "abc", strict=True):
        assert outside.ns.query("tcp", address, 80) == f"{name} {outside.ip}"
    host.close()
    again = make_host()
    run(again.restore(container_id=A, pid=a.pid, spec=specs[A], ports={}))
    run(again.cleanup(keep={A}))
    assert outside.ns.query("tcp", addresses[0], 80) == f"a {outside.ip}"
    for address in addresses[1:]:
        assert _leftovers(again, pool, address) == []
        assert outside.ns.query("tcp", address, 80, timeout=1).startswith("ERR")
    assert all(
        e.comment in (A, "") or e.set_name not in ENDPOINT_SETS
        for e in router_elements(again, tenant)
    )
    # Teardown: nothing at all.
    run(again.teardown())
    for address in addresses:
        assert _leftovers(again, pool, address) == []
