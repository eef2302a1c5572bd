"""Fixtures for network tests on the real kernel (root).

Every object a test makes has a random name of its own (see network_helpers) and is
removed by a finalizer, also when the test fails; the finalizer then checks, by name,
that no router namespace, uplink or nft table of the test's instance is left.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    links,
    netns_names,
    nft_tables,
    random_subnet,
    run_cmd,
    spawn_netns,
)

from dockyard.network import HostNetwork
from dockyard.network.names import router_prefix, uplink_name

T = TypeVar("T")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine on the test's event loop (HostNetwork is bound to one loop)."""
    return loop.run_until_complete


def leftovers(instance: str) -> tuple[list[str], list[str], bool]:
    """Router namespaces and uplinks of ``instance`` still on the host, and its table."""
    routers = sorted(n for n in netns_names() if n.startswith(router_prefix(instance)))
    present = links()
    uplinks = sorted(uplink_name(n) for n in routers if uplink_name(n) in present)
    return routers, uplinks, instance in nft_tables()


@pytest.fixture
def make_host(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
) -> Iterator[Callable[..., HostNetwork]]:
    """Factory of started HostNetwork objects of one random instance (several = restarts)."""
    instance = "dyt" + secrets.token_hex(3)
    transit = str(random_subnet("100.64.0.0/10", 24))
    made: list[HostNetwork] = []
    seen_routers: set[str] = set()

    def make() -> HostNetwork:
        host = HostNetwork(instance=instance, transit_subnet=transit)
        made.append(host)
        run(host.start())
        return host

    yield make
    seen_routers.update(leftovers(instance)[0])
    try:
        if made:
            run(made[-1].teardown())
    finally:
        for host in made:
            host.close()
        # Belt and braces: whatever a failed teardown left, remove it by name.
        for name in netns_names():
            if name.startswith(router_prefix(instance)):
                seen_routers.add(name)
                run_cmd("ip", "netns", "del", name, check=False)
        for name in seen_routers:
            if uplink_name(name) in links():
                run_cmd("ip", "link", "del", uplink_name(name), check=False)
        if instance in nft_tables():
            run_cmd("nft", "delete", "table", "inet", instance, check=False)
    routers, uplinks, table = leftovers(instance)
    assert not routers
    assert not [uplink_name(n) for n in seen_routers if uplink_name(n) in links()]
    assert not uplinks
    assert not table


@pytest.fixture
def host(make_host: Callable[[], HostNetwork]) -> HostNetwork:
    return make_host()


@pytest.fixture
def make_tenant() -> Callable[[], str]:
    """Factory of random tenant (router) ids."""
    return lambda: secrets.token_hex(32)


@pytest.fixture
def tenant(make_tenant: Callable[[], str]) -> str:
    return make_tenant()


@pytest.fixture
def make_net(tenant: str) -> Callable[..., Net]:
    """Factory of tenant networks (default: the ``tenant`` fixture's, a random /24 of
    10.0.0.0/8; tenant subnets never leave the router namespaces)."""

    def make(
        *,
        owner: str = "",
        subnet: str = "",
        internal: bool = False,
        isolated: bool = False,
    ) -> Net:
        net = ipaddress.ip_network(subnet) if subnet else random_subnet("10.0.0.0/8", 24)
        assert isinstance(net, ipaddress.IPv4Network)
        return Net(owner or tenant, net, internal=internal, isolated=isolated)

    return make


@pytest.fixture
def make_netns() -> Iterator[Callable[..., Netns]]:
    """Factory of fake containers: processes alone in a new netns, killed at the end."""
    made: list[Netns] = []

    def make(name: str = "ns") -> Netns:
        ns = spawn_netns(name)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.kill()


@pytest.fixture
def outside(make_netns: Callable[..., Netns]) -> Iterator[Outside]:
    """An outside host on a /30 of 198.18.0.0/15, linked to the host by a veth pair."""
    ns = make_netns("outside")
    net = random_subnet("198.18.0.0/15", 30)
    host_ip, peer_ip = str(net.network_address + 1), str(net.network_address + 2)
    link = "dyo" + secrets.token_hex(4)
    run_cmd("ip", "link", "add", link, "type", "veth", "peer", "name", "up0", "netns", str(ns.pid))
    try:
        run_cmd("ip", "addr", "add", f"{host_ip}/30", "dev", link)
        run_cmd("ip", "link", "set", link, "up")
        ns.run("ip", "addr", "add", f"{peer_ip}/30", "dev", "up0")
        ns.run("ip", "link", "set", "up0", "up")
        ns.run("ip", "link", "set", "lo", "up")
        yield Outside(ns, link, host_ip, peer_ip)
    finally:
        run_cmd("ip", "link", "del", link, check=False)


@pytest.fixture
def pool(outside: Outside) -> Iterator[ipaddress.IPv4Network]:
    """A /29 of floating IPs in 198.18.0.0/15: the outside host routes it to the host,
    and the host has it unreachable (an address not routed to a router must not leave
    by the host's default route). Both routes go at the end."""
    net = random_subnet("198.18.0.0/15", 29)
    run_cmd("ip", "route", "add", "unreachable", str(net))
    try:
        outside.ns.run("ip", "route", "add", str(net), "via", outside.host_ip)
        yield net
    finally:
        run_cmd("ip", "route", "del", "unreachable", str(net), check=False)
