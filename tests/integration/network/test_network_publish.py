"""Published ports: DNAT from loopback, from outside and from containers; reservations."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import Net, Netns, Outside, free_port, query, run_cmd

from dockyard.core.errors import Conflict
from dockyard.core.protocol import PortMapping
from dockyard.network import HostNetwork
from dockyard.network.names import veth_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B = "a" * 64, "b" * 64


def _elements(table: str) -> str:
    return run_cmd("nft", "list", "table", "inet", table).stdout


def test_tcp_published_on_all_addresses(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    outside: Outside,
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    port = free_port()
    spec = net.spec(PortMapping("tcp", 80, host_port=port))
    assert run(host.attach(container_id=A, pid=ns.pid, spec=spec)) == {
        "80/tcp": [("0.0.0.0", port)]
    }
    ns.serve("tcp", 80)
    # From the host over loopback: source masqueraded to the bridge's address.
    assert query("tcp", "127.0.0.1", port) == net.gateway
    # From an outside host to the host's address on its link: client address kept.
    assert outside.ns.query("tcp", outside.host_ip, port) == outside.ip
    # The host's own reservation socket holds the port against other processes.
    with socket.socket() as squatter, pytest.raises(OSError):
        squatter.bind(("0.0.0.0", port))


def test_udp_published_on_loopback_only(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    outside: Outside,
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    port = free_port(socket.SOCK_DGRAM)
    spec = net.spec(PortMapping("udp", 53, host_ip="127.0.0.1", host_port=port))
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    assert ports == {"53/udp": [("127.0.0.1", port)]}
    ns.serve("udp", 53)
    assert query("udp", "127.0.0.1", port) == net.gateway
    # Bound to 127.0.0.1 only: not published on the host's other addresses.
    assert outside.ns.query("udp", outside.host_ip, port, timeout=1).startswith("ERR")


def test_specific_host_address_binding(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[[], Netns],
    outside: Outside,
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    spec = net.spec(PortMapping("tcp", 80, host_ip=outside.host_ip))
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    ((ip, port),) = ports["80/tcp"]
    assert ip == outside.host_ip
    ns.serve("tcp", 80)
    assert outside.ns.query("tcp", outside.host_ip, port) == outside.ip
    assert query("tcp", "127.0.0.1", port, timeout=1).startswith("ERR")


def test_second_container_on_a_taken_port_conflicts(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    a, b = make_netns(), make_netns()
    port = free_port()
    run(
        host.attach(
            container_id=A, pid=a.pid, spec=net.spec(PortMapping("tcp", 80, host_port=port))
        )
    )
    before = _elements(host.table)
    spec_b = net.spec(PortMapping("tcp", 8080), PortMapping("tcp", 80, host_port=port))
    with pytest.raises(Conflict) as info:
        run(host.attach(container_id=B, pid=b.pid, spec=spec_b))
    assert info.value.message == f"Bind for 0.0.0.0:{port} failed: port is already allocated"
    assert veth_name(host.veth_prefix, B) not in run_cmd("ip", "-br", "link").stdout
    assert _elements(host.table) == before
    assert host.attached() == {A}
    # A specific address on the same port conflicts with the 0.0.0.0 binding too.
    with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{port} failed"):
        spec = net.spec(PortMapping("tcp", 80, host_ip="127.0.0.1", host_port=port))
        run(host.attach(container_id=B, pid=b.pid, spec=spec))


def test_port_held_by_a_host_process_conflicts(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    ns = make_netns()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(Conflict, match="port is already allocated"):
            spec = net.spec(PortMapping("udp", 53, host_port=port))
            run(host.attach(container_id=A, pid=ns.pid, spec=spec))


def test_ephemeral_ports_are_distinct_and_in_range(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    seen = set()
    for n in range(3):
        ns = make_netns()
        spec = net.spec(PortMapping("tcp", 80), PortMapping("udp", 80))
        ports = run(host.attach(container_id=f"{n}" * 64, pid=ns.pid, spec=spec))
        for key in ("80/tcp", "80/udp"):
            ((ip, port),) = ports[key]
            assert ip == "0.0.0.0"
            assert 32768 <= port <= 60999
            seen.add((key, port))
        ns.serve("tcp", 80)
        assert query("tcp", "127.0.0.1", ports["80/tcp"][0][1]) == net.gateway
    assert len(seen) == 6


def test_hairpin_container_reaches_its_own_published_port(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    net = make_net()
    a, b = make_netns(), make_netns()
    spec_a = net.spec(PortMapping("tcp", 80))
    port = run(host.attach(container_id=A, pid=a.pid, spec=spec_a))["80/tcp"][0][1]
    run(host.attach(container_id=B, pid=b.pid, spec=net.spec()))
    a.serve("tcp", 80)
    # Through a host address (the bridge's gateway is one): DNAT back into the bridge.
    assert a.query("tcp", net.gateway, port) == net.gateway
    assert b.query("tcp", net.gateway, port) == net.gateway


def test_publishing_from_another_bridge(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[[], Netns], run: Run
) -> None:
    one, two = make_net(), make_net()
    a, b = make_netns(), make_netns()
    port = run(host.attach(container_id=A, pid=a.pid, spec=one.spec(PortMapping("tcp", 80))))[
        "80/tcp"
    ][0][1]
    run(host.attach(container_id=B, pid=b.pid, spec=two.spec()))
    a.serve("tcp", 80)
    assert b.query("tcp", two.gateway, port) in (one.gateway, two.gateway)
