"""Fixtures for network tests on the real kernel (root).

Every object a test makes has a random name of its own (table ``dyt<hex>``, bridges
``<table>b<n>``, outside link ``dyo<hex>``, subnets picked at random in 10.240.0.0/12 and
198.18.0.0/15) and is removed by a finalizer, also when the test fails. Nothing here
touches eth0, the default route or an nft table the test did not create.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    links,
    nft_tables,
    random_subnet,
    run_cmd,
    spawn_netns,
)

from dockyard.network import HostNetwork

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


@pytest.fixture
def make_host(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
) -> Iterator[Callable[..., HostNetwork]]:
    """Factory of started HostNetwork objects on one random table (several = restarts)."""
    table = "dyt" + secrets.token_hex(3)
    prefix = "y" + secrets.token_hex(2)[:3]
    made: list[HostNetwork] = []

    def make() -> HostNetwork:
        host = HostNetwork(table=table, veth_prefix=prefix)
        made.append(host)
        run(host.start())
        return host

    yield make
    try:
        if made:
            run(made[-1].teardown())
    finally:
        for host in made:
            host.close()
        # Belt and braces: whatever a failed teardown left, remove it by name.
        for name in links():
            if name.startswith(table) or name.startswith(prefix):
                run_cmd("ip", "link", "del", name, check=False)
        if table in nft_tables():
            run_cmd("nft", "delete", "table", "inet", table, check=False)
    assert not [n for n in links() if n.startswith((table, prefix))]
    assert table not in nft_tables()


@pytest.fixture
def host(make_host: Callable[[], HostNetwork]) -> HostNetwork:
    return make_host()


@pytest.fixture
def make_net(
    host: HostNetwork, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> Callable[..., Net]:
    """Factory: a new bridge of ``host`` on a random /24 of 10.240.0.0/12."""
    count = 0

    def make(*, internal: bool = False) -> Net:
        nonlocal count
        net = Net(f"{host.table}b{count}", random_subnet("10.240.0.0/12", 24), internal)
        count += 1
        run(
            host.ensure_bridge(
                name=net.bridge, subnet=str(net.subnet), gateway=net.gateway, internal=internal
            )
        )
        return net

    return make


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    """Factory of fake containers: processes alone in a new netns, killed at the end."""
    made: list[Netns] = []

    def make() -> Netns:
        ns = spawn_netns()
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.kill()


@pytest.fixture
def outside(make_netns: Callable[[], Netns]) -> Iterator[Outside]:
    """An outside host on a /30 of 198.18.0.0/15, linked to the host by a veth pair."""
    ns = make_netns()
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
