"""Disconnecting a container's primary endpoint: as in Docker, another network becomes
the gateway network (default route, published ports, public IP follow); with only
internal networks left the container has no default route."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from network_helpers import (
    Net,
    Netns,
    Outside,
    query,
    router_exec,
    tenant_spec,
    uplink_address,
)

from dockyard.core.protocol import IngressRule, PortMapping
from dockyard.network import HostNetwork
from dockyard.network.host import remaining_endpoints

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A = "a" * 64


def _defaults(ns: Netns) -> list[tuple[str, str]]:
    return [(r["gateway"], r["dev"]) for r in ns.ip_json("route") if r["dst"] == "default"]


def _publish_map(host: HostNetwork, tenant: str) -> str:
    return router_exec(host, tenant, "nft", "list", "map", "inet", "dockyard", "publish")


def test_the_next_network_becomes_the_gateway_network(
    *,
    host: HostNetwork,
    make_host: Callable[[], HostNetwork],
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    ns = make_netns("c")
    first, second = one.endpoint("eth0"), two.endpoint("eth1")
    spec = tenant_spec(tenant, first, second, ports=(PortMapping("tcp", 80),))
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    port = ports["80/tcp"][0][1]
    ns.serve("tcp", 80)
    outside.ns.serve("tcp", 7001)
    uplink = uplink_address(host, tenant)
    assert query("tcp", "127.0.0.1", port) == f"c {uplink}"

    run(host.disconnect(container_id=A, endpoint_id=first.endpoint_id))
    assert ns.links() == {"lo", "eth1"}
    assert _defaults(ns) == [(two.gateway, "eth1")]
    assert [e.endpoint_id for e in host.endpoints(A)] == [second.endpoint_id]
    # Egress through the second network's router port, published ports to its address.
    assert ns.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"
    assert query("tcp", "127.0.0.1", port) == f"c {uplink}"
    table = _publish_map(host, tenant)
    assert f"{second.ip} . 80" in table
    assert f"{first.ip} . 80" not in table

    # An agent restart restores it from its record, whose order is the plumbing's.
    host.close()
    new = make_host()
    kept = tenant_spec(tenant, *remaining_endpoints(spec.endpoints, first.endpoint_id))
    kept = replace(kept, ports=spec.ports)
    run(new.restore(container_id=A, pid=ns.pid, spec=kept, ports=ports))
    assert f"{second.ip} . 80" in _publish_map(new, tenant)
    assert query("tcp", "127.0.0.1", port) == f"c {uplink}"
    assert _defaults(ns) == [(two.gateway, "eth1")]
    run(new.detach(container_id=A))


def test_an_internal_network_does_not_become_the_gateway_network(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    one, inner, two = make_net(), make_net(internal=True), make_net()
    ns = make_netns("c")
    first, hidden, last = one.endpoint("eth0"), inner.endpoint("eth1"), two.endpoint("eth2")
    run(host.attach(container_id=A, pid=ns.pid, spec=tenant_spec(tenant, first, hidden, last)))
    outside.ns.serve("tcp", 7001)

    # The internal network comes first, but the one after it gives the default route.
    run(host.disconnect(container_id=A, endpoint_id=first.endpoint_id))
    assert _defaults(ns) == [(two.gateway, "eth2")]
    assert [e.endpoint_id for e in host.endpoints(A)] == [last.endpoint_id, hidden.endpoint_id]
    assert ns.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"

    # Only the internal network left: no default route, no way out.
    run(host.disconnect(container_id=A, endpoint_id=last.endpoint_id))
    assert _defaults(ns) == []
    assert ns.links() == {"lo", "eth1"}
    assert ns.query("tcp", outside.ip, 7001, timeout=1).startswith("ERR")
    assert ns.ping(inner.gateway)

    # A network that is not internal connected: it is the gateway network again.
    again = two.endpoint("eth0")
    run(host.connect(container_id=A, pid=ns.pid, endpoint=again))
    assert _defaults(ns) == [(two.gateway, "eth0")]
    assert [e.endpoint_id for e in host.endpoints(A)] == [again.endpoint_id, hidden.endpoint_id]
    assert ns.query("tcp", outside.ip, 7001) == f"outside {outside.host_ip}"


def test_connecting_a_routed_network_replaces_the_route_of_an_internal_one(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    inner, one, two = make_net(internal=True), make_net(), make_net()
    ns = make_netns("c")
    hidden = inner.endpoint("eth0")
    spec = tenant_spec(tenant, hidden, ports=(PortMapping("tcp", 80),))
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    assert _defaults(ns) == [(inner.gateway, "eth0")]  # attach routes via the first
    routed = one.endpoint("eth1")
    run(host.connect(container_id=A, pid=ns.pid, endpoint=routed))
    assert _defaults(ns) == [(one.gateway, "eth1")]
    assert f"{routed.ip} . 80" in _publish_map(host, tenant)
    run(host.connect(container_id=A, pid=ns.pid, endpoint=two.endpoint("eth2")))
    assert _defaults(ns) == [(one.gateway, "eth1")]
    assert f"{routed.ip} . 80" in _publish_map(host, tenant)


def test_disconnecting_another_endpoint_keeps_the_gateway(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    ns = make_netns("c")
    first, second = one.endpoint("eth0"), two.endpoint("eth1")
    spec = tenant_spec(tenant, first, second, ports=(PortMapping("tcp", 80),))
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    run(host.disconnect(container_id=A, endpoint_id=second.endpoint_id))
    assert _defaults(ns) == [(one.gateway, "eth0")]
    assert f"{first.ip} . 80" in _publish_map(host, tenant)


def test_the_public_ip_follows_the_gateway_network(
    *,
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    pool: ipaddress.IPv4Network,
    run: Run,
) -> None:
    address = str(pool.network_address + 3)
    one, two = make_net(), make_net()
    ns = make_netns("c")
    allow = (IngressRule("tcp", 80, 80, source="0.0.0.0/0"),)
    first = replace(one.endpoint("eth0"), ingress=allow)
    second = replace(two.endpoint("eth1"), ingress=allow)
    spec = replace(
        tenant_spec(tenant, first, second),
        public_ip=address,
        public_ports=(PortMapping("tcp", 80, "", 80),),
    )
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    ns.serve("tcp", 80)
    outside.ns.serve("tcp", 7001)
    assert outside.ns.query("tcp", address, 80) == f"c {outside.ip}"

    run(host.disconnect(container_id=A, endpoint_id=first.endpoint_id))
    assert ns.query("tcp", outside.ip, 7001) == f"outside {address}"
    assert outside.ns.query("tcp", address, 80) == f"c {outside.ip}"
