"""Published ports: DNAT from loopback, from outside and from containers; reservations."""

from __future__ import annotations

import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    free_port,
    query,
    router_exec,
    router_links,
    run_cmd,
    tenant_spec,
    uplink_address,
)

from dockyard.core.errors import Conflict
from dockyard.core.protocol import PortMapping
from dockyard.network import HostNetwork

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B = "a" * 64, "b" * 64


def _root_table(host: HostNetwork) -> str:
    return run_cmd("nft", "list", "table", "inet", host.table).stdout


def test_tcp_published_on_all_addresses(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    ns = make_netns("web")
    port = free_port()
    spec = make_net().spec(PortMapping("tcp", 80, host_port=port))
    assert run(host.attach(container_id=A, pid=ns.pid, spec=spec)) == {
        "80/tcp": [("0.0.0.0", port)]
    }
    ns.serve("tcp", 80)
    # From the host over loopback: masqueraded to the host's side of the uplink.
    assert query("tcp", "127.0.0.1", port) == f"web {uplink_address(host, tenant)}"
    # From an outside host to the host's address on its link: client address kept.
    assert outside.ns.query("tcp", outside.host_ip, port) == f"web {outside.ip}"
    # The host's own reservation socket holds the port against other processes.
    with socket.socket() as squatter, pytest.raises(OSError):
        squatter.bind(("0.0.0.0", port))
    # Two elements, both owned by the container: the host's and the router's.
    assert A in _root_table(host)
    assert A in router_exec(host, tenant, "nft", "list", "table", "inet", "dockyard")


def test_udp_published_on_loopback_only(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    ns = make_netns("dns")
    port = free_port(socket.SOCK_DGRAM)
    spec = make_net().spec(PortMapping("udp", 53, host_ip="127.0.0.1", host_port=port))
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    assert ports == {"53/udp": [("127.0.0.1", port)]}
    ns.serve("udp", 53)
    assert query("udp", "127.0.0.1", port) == f"dns {uplink_address(host, tenant)}"
    # Bound to 127.0.0.1 only: not published on the host's other addresses.
    assert outside.ns.query("udp", outside.host_ip, port, timeout=1).startswith("ERR")


def test_specific_host_address_binding(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    ns = make_netns("web")
    spec = make_net().spec(PortMapping("tcp", 80, host_ip=outside.host_ip))
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    ((ip, port),) = ports["80/tcp"]
    assert ip == outside.host_ip
    ns.serve("tcp", 80)
    assert outside.ns.query("tcp", outside.host_ip, port) == f"web {outside.ip}"
    assert query("tcp", "127.0.0.1", port, timeout=1).startswith("ERR")


def test_second_container_on_a_taken_port_conflicts(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    a, b = make_netns(), make_netns()
    port = free_port()
    run(
        host.attach(
            container_id=A, pid=a.pid, spec=net.spec(PortMapping("tcp", 80, host_port=port))
        )
    )
    before = _root_table(host)
    spec_b = net.spec(PortMapping("tcp", 8080), PortMapping("tcp", 80, host_port=port))
    with pytest.raises(Conflict) as info:
        run(host.attach(container_id=B, pid=b.pid, spec=spec_b))
    assert info.value.message == f"Bind for 0.0.0.0:{port} failed: port is already allocated"
    assert _root_table(host) == before
    assert host.attached() == {A}
    assert b.links() == {"lo"}
    # A specific address on the same port conflicts with the 0.0.0.0 binding too.
    with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{port} failed"):
        spec = net.spec(PortMapping("tcp", 80, host_ip="127.0.0.1", host_port=port))
        run(host.attach(container_id=B, pid=b.pid, spec=spec))


def test_one_tenant_one_port_on_two_host_addresses_conflicts(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    """The router keys its DNAT by (protocol, host port): a second container of the same
    tenant cannot take the same port on another host address (another tenant can)."""
    net = make_net()
    a, b = make_netns("a"), make_netns("b")
    port = free_port()
    on_link = PortMapping("tcp", 80, host_ip=outside.host_ip, host_port=port)
    on_loopback = PortMapping("tcp", 80, host_ip="127.0.0.1", host_port=port)
    run(host.attach(container_id=A, pid=a.pid, spec=net.spec(on_link)))
    with pytest.raises(Conflict, match="already published by another container"):
        run(host.attach(container_id=B, pid=b.pid, spec=net.spec(on_loopback)))
    assert host.attached() == {A}
    assert b.links() == {"lo"}
    other = make_net(owner="f" * 64)
    run(host.attach(container_id=B, pid=b.pid, spec=other.spec(on_loopback)))
    a.serve("tcp", 80)
    b.serve("tcp", 80)
    assert outside.ns.query("tcp", outside.host_ip, port) == f"a {outside.ip}"
    assert query("tcp", "127.0.0.1", port).startswith("b ")


def test_port_held_by_a_host_process_conflicts(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[..., Netns], run: Run
) -> None:
    ns = make_netns()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(Conflict, match="port is already allocated"):
            spec = make_net().spec(PortMapping("udp", 53, host_port=port))
            run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    assert ns.links() == {"lo"}


def test_ephemeral_ports_are_distinct_and_in_range(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    seen = set()
    for n in range(3):
        ns = make_netns(f"c{n}")
        spec = net.spec(PortMapping("tcp", 80), PortMapping("udp", 80))
        ports = run(host.attach(container_id=f"{n}" * 64, pid=ns.pid, spec=spec))
        for key in ("80/tcp", "80/udp"):
            ((ip, port),) = ports[key]
            assert ip == "0.0.0.0"
            assert 32768 <= port <= 60999
            seen.add((key, port))
        ns.serve("tcp", 80)
        answer = query("tcp", "127.0.0.1", ports["80/tcp"][0][1])
        assert answer == f"c{n} {uplink_address(host, tenant)}"
    assert len(seen) == 6


def test_hairpin_container_reaches_its_own_published_port(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    net = make_net()
    a, b = make_netns("a"), make_netns("b")
    port = run(host.attach(container_id=A, pid=a.pid, spec=net.spec(PortMapping("tcp", 80))))[
        "80/tcp"
    ][0][1]
    run(host.attach(container_id=B, pid=b.pid, spec=net.spec()))
    a.serve("tcp", 80)
    uplink = uplink_address(host, tenant)
    # Through a host address: out of the router, DNATed by the host, back in.
    assert a.query("tcp", outside.host_ip, port) == f"a {uplink}"
    assert b.query("tcp", outside.host_ip, port) == f"a {uplink}"
    assert a.query("tcp", uplink, port) == f"a {uplink}"
    # Published ports are DNATed only for traffic arriving on the uplink.
    assert a.query("tcp", net.gateway, port, timeout=1).startswith("ERR")


def test_published_port_of_a_second_network_goes_to_the_first_endpoint(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    ns = make_netns("both")
    spec = tenant_spec(
        tenant, one.endpoint("eth0"), two.endpoint("eth1"), ports=(PortMapping("tcp", 80),)
    )
    port = run(host.attach(container_id=A, pid=ns.pid, spec=spec))["80/tcp"][0][1]
    ns.serve("tcp", 80)
    assert query("tcp", "127.0.0.1", port) == f"both {uplink_address(host, tenant)}"
    table = router_exec(host, tenant, "nft", "list", "map", "inet", "dockyard", "publish")
    assert f"{spec.endpoints[0].ip} . 80" in table
    assert set(router_links(host, tenant)) >= {one.bridge, two.bridge, "up0"}
