"""What attach, connect and disconnect make: router, bridges, veths, interfaces, routes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    free_port,
    ip_of,
    links,
    router_exec,
    router_links,
    run_cmd,
    tenant_spec,
    uplink_address,
)

from dockyard.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from dockyard.core.protocol import NetworkSpec, PortMapping
from dockyard.network import HostNetwork
from dockyard.network.names import endpoint_veth, mac_for, uplink_name

Run = Callable[[Coroutine[Any, Any, Any]], Any]
CID = "c0ffee" + "0" * 58
OTHER = "beef00" + "0" * 58


def _addresses(ns: Netns) -> dict[str, list[tuple[str, int]]]:
    return {
        link["ifname"]: [
            (a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"
        ]
        for link in ns.ip_json("addr")
    }


def test_attach_makes_the_router_and_configures_the_container(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    spec = net.spec()
    assert run(host.attach(container_id=CID, pid=ns.pid, spec=spec)) == {}
    # Inside the container: eth0 with its address and MAC, lo up, the default route.
    addrs = _addresses(ns)
    assert addrs == {"lo": [("127.0.0.1", 8)], "eth0": [(ip_of(spec), 24)]}
    (eth0,) = ns.ip_json("link", "show", "dev", "eth0")
    assert eth0["address"] == mac_for(ip_of(spec))
    assert "UP" in eth0["flags"]
    routes = ns.ip_json("route")
    assert {"dst": "default", "gateway": net.gateway, "dev": "eth0"}.items() <= routes[0].items()
    assert ns.ping(net.gateway)
    # The router: a named netns with up0, the bridge and the endpoint's veth.
    name = host.router_name(tenant)
    assert name in run_cmd("ip", "netns", "list").stdout
    inside = router_links(host, tenant)
    veth = endpoint_veth(spec.endpoints[0].endpoint_id)
    assert set(inside) == {"lo", "up0", net.bridge, veth}
    assert inside[veth]["master"] == net.bridge
    assert inside[veth]["ifalias"] == CID
    assert inside[veth]["linkinfo"]["info_slave_data"]["isolated"] is False
    # The uplink: a /31 of the transit subnet, root side even, the router's default route.
    assert uplink_name(name) in links()
    root_ip = uplink_address(host, tenant)
    assert router_exec(host, tenant, "ip", "route").startswith(f"default via {root_ip} dev up0")
    # Tenant subnets stay in the router.
    assert str(net.subnet) not in run_cmd("ip", "route").stdout
    assert host.attached() == {CID}


def test_isolated_endpoint_is_an_isolated_port(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    spec = make_net(isolated=True).spec()
    run(host.attach(container_id=CID, pid=make_netns().pid, spec=spec))
    link = router_links(host, tenant)[endpoint_veth(spec.endpoints[0].endpoint_id)]
    assert link["linkinfo"]["info_slave_data"]["isolated"] is True


def test_several_endpoints_default_route_through_the_first(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    ns = make_netns()
    spec = tenant_spec(tenant, one.endpoint("eth0"), two.endpoint("eth1"))
    run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    assert _addresses(ns) == {
        "lo": [("127.0.0.1", 8)],
        "eth0": [(ip_of(spec, 0), 24)],
        "eth1": [(ip_of(spec, 1), 24)],
    }
    defaults = [r for r in ns.ip_json("route") if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in defaults] == [(one.gateway, "eth0")]
    assert ns.ping(one.gateway)
    assert ns.ping(two.gateway)


def test_connect_and_disconnect_a_running_container(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    front, back = make_net(), make_net()
    web, db = make_netns("web"), make_netns("db")
    spec_web, spec_db = front.spec(), back.spec()
    run(host.attach(container_id="a" * 64, pid=web.pid, spec=spec_web))
    run(host.attach(container_id="b" * 64, pid=db.pid, spec=spec_db))
    db.serve("tcp", 5432)
    assert web.query("tcp", ip_of(spec_db), 5432, timeout=1).startswith("ERR")

    endpoint = back.endpoint("eth1")
    run(host.connect(container_id="a" * 64, pid=web.pid, endpoint=endpoint))
    assert web.links() == {"lo", "eth0", "eth1"}
    assert web.query("tcp", ip_of(spec_db), 5432) == f"db {endpoint.ip}"
    # Not the default route: that stays with eth0.
    defaults = [r for r in web.ip_json("route") if r["dst"] == "default"]
    assert [r["dev"] for r in defaults] == ["eth0"]
    assert [e.endpoint_id for e in host.endpoints("a" * 64)] == [
        spec_web.endpoints[0].endpoint_id,
        endpoint.endpoint_id,
    ]
    with pytest.raises(AlreadyExists):
        run(host.connect(container_id="a" * 64, pid=web.pid, endpoint=endpoint))
    with pytest.raises(AlreadyExists):  # eth1 is taken
        run(host.connect(container_id="a" * 64, pid=web.pid, endpoint=front.endpoint("eth1")))

    run(host.disconnect(container_id="a" * 64, endpoint_id=endpoint.endpoint_id))
    assert web.links() == {"lo", "eth0"}
    assert endpoint_veth(endpoint.endpoint_id) not in router_links(host, tenant)
    assert web.query("tcp", ip_of(spec_db), 5432, timeout=1).startswith("ERR")
    with pytest.raises(NotFound):
        run(host.disconnect(container_id="a" * 64, endpoint_id=endpoint.endpoint_id))
    with pytest.raises(FailedPrecondition):
        run(host.connect(container_id="c" * 64, pid=web.pid, endpoint=back.endpoint("eth2")))


def test_connect_after_disconnecting_everything_gets_the_default_route(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net, other = make_net(), make_net()
    ns = make_netns()
    spec = net.spec()
    run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    run(host.disconnect(container_id=CID, endpoint_id=spec.endpoints[0].endpoint_id))
    run(host.connect(container_id=CID, pid=ns.pid, endpoint=other.endpoint("eth3")))
    routes = [r for r in ns.ip_json("route") if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in routes] == [(other.gateway, "eth3")]


def test_a_failed_connect_leaves_nothing(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    spec = net.spec()
    run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    # The interface name is taken in the container: refused before anything exists.
    ns.run("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "x1")
    with pytest.raises(AlreadyExists):
        run(host.connect(container_id=CID, pid=ns.pid, endpoint=net.endpoint("eth1")))
    # After the veth exists: as the only endpoint it wants the default route, which the
    # container already has through another interface.
    run(host.disconnect(container_id=CID, endpoint_id=spec.endpoints[0].endpoint_id))
    ns.run("ip", "link", "set", "eth1", "up")
    ns.run("ip", "route", "add", "default", "dev", "eth1")
    endpoint = net.endpoint("eth2")
    with pytest.raises(Unavailable, match="netlink error 17"):
        run(host.connect(container_id=CID, pid=ns.pid, endpoint=endpoint))
    assert ns.links() == {"lo", "eth1", "x1"}
    assert not [n for n, link in router_links(host, tenant).items() if link.get("ifalias") == CID]
    assert host.endpoints(CID) == []


def test_mode_none_and_container_plumb_nothing(
    host: HostNetwork, make_netns: Callable[..., Netns], run: Run
) -> None:
    ns = make_netns()
    before = links()
    for spec in (NetworkSpec(), NetworkSpec(mode="container", peer="d" * 64)):
        assert run(host.attach(container_id=CID, pid=ns.pid, spec=spec)) == {}
        run(host.detach(container_id=CID))
    assert links() == before
    assert ns.links() == {"lo"}
    assert host.attached() == set()


def test_attach_twice_is_refused(
    host: HostNetwork, make_net: Callable[..., Net], make_netns: Callable[..., Netns], run: Run
) -> None:
    ns = make_netns()
    spec = make_net().spec()
    run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    with pytest.raises(AlreadyExists):
        run(host.attach(container_id=CID, pid=ns.pid, spec=spec))


def test_bad_requests_are_refused_before_any_change(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    ns = make_netns()
    before = links()
    good = net.endpoint()
    bad = [
        NetworkSpec(mode="host"),
        NetworkSpec(mode="bridge"),
        NetworkSpec(mode="tenant", router=tenant),  # no endpoint
        net.spec(PortMapping("sctp", 80)),
        tenant_spec(tenant, net.endpoint(ip="1.2.3.4")),
        tenant_spec(tenant, net.endpoint(interface="lo")),
        tenant_spec("../x", good),
    ]
    for spec in bad:
        with pytest.raises(InvalidArgument):
            run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    with pytest.raises(AlreadyExists):  # two interfaces named eth0
        run(host.attach(container_id=CID, pid=ns.pid, spec=tenant_spec(tenant, good, good)))
    assert links() == before
    assert host.router_name(tenant) not in run_cmd("ip", "netns", "list").stdout
    assert host.attached() == set()


def test_failed_attach_rolls_back(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """A failure after the veths exist (here: a default route already in the netns)."""
    one, two = make_net(), make_net()
    ns = make_netns()
    ns.run("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ns.run("ip", "link", "set", "d0", "up")
    ns.run("ip", "route", "add", "default", "dev", "d0")
    port = free_port()
    spec = tenant_spec(
        tenant,
        one.endpoint("eth0"),
        two.endpoint("eth1"),
        ports=(PortMapping("tcp", 80, host_port=port),),
    )
    with pytest.raises(Unavailable, match="netlink error 17"):
        run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    assert ns.links() == {"lo", "d0", "d1"}
    inside = router_links(host, tenant)
    assert not [name for name, link in inside.items() if link.get("ifalias") == CID]
    assert CID not in run_cmd("nft", "list", "table", "inet", host.table).stdout
    assert host.attached() == set()
    with socket.socket() as sock:  # the reservation was released
        sock.bind(("0.0.0.0", port))
    # The router and its bridges stay (shared); cleanup removes them.
    run(host.cleanup(keep=set()))
    assert host.router_name(tenant) not in run_cmd("ip", "netns", "list").stdout


def test_failure_on_the_second_endpoint_removes_the_first(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    ns = make_netns()
    ns.run("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "x1")
    spec = tenant_spec(tenant, one.endpoint("eth0"), two.endpoint("eth1"))
    with pytest.raises(AlreadyExists):
        run(host.attach(container_id=CID, pid=ns.pid, spec=spec))
    assert ns.links() == {"lo", "eth1", "x1"}
    assert not [n for n, link in router_links(host, tenant).items() if link.get("ifalias") == CID]


def test_attach_to_a_dead_process_fails_cleanly(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    ns = make_netns()
    pid = ns.pid
    ns.kill()
    with pytest.raises((FailedPrecondition, Unavailable)):
        run(host.attach(container_id=CID, pid=pid, spec=make_net().spec()))
    assert not [n for n, link in router_links(host, tenant).items() if link.get("ifalias") == CID]
    assert host.attached() == set()


def test_concurrent_attaches(
    host: HostNetwork,
    make_tenant: Callable[[], str],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """Attaches of two tenants at once, first ones included: one router each, all plumbed."""
    tenants = [make_tenant(), make_tenant()]
    nets = [make_net(owner=t) for t in tenants]
    namespaces = [make_netns(f"c{n}") for n in range(12)]
    specs = [nets[n % 2].spec(PortMapping("tcp", 80)) for n in range(12)]

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(
            *(
                host.attach(container_id=f"{n:02d}" * 32, pid=ns.pid, spec=spec)
                for n, (ns, spec) in enumerate(zip(namespaces, specs, strict=True))
            )
        )

    ports = run(all_at_once())
    assert len({p["80/tcp"][0][1] for p in ports}) == 12
    for tenant in tenants:
        assert host.router_name(tenant) in run_cmd("ip", "netns", "list").stdout
    for n, ns in enumerate(namespaces):
        peer = ip_of(specs[(n + 2) % 12])
        assert ns.ping(peer), (n, peer)
    assert len(host.attached()) == 12


def test_a_removed_networks_idle_bridge_gives_way_to_a_new_one_on_its_subnet(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """The controller hands a removed network's subnet to a new network (another bridge);
    the old bridge, idle until cleanup, must not keep the gateway address or its DNS."""
    old = make_net()
    first = make_netns()
    run(host.attach(container_id=CID, pid=first.pid, spec=old.spec()))
    host.router_sockets(tenant, old.gateway)
    run(host.detach(container_id=CID))
    assert old.bridge in router_links(host, tenant)  # idle, kept
    new = make_net(subnet=str(old.subnet))
    a, b = make_netns(), make_netns()
    spec_a, spec_b = new.spec(), new.spec()
    run(host.attach(container_id=CID, pid=a.pid, spec=spec_a))
    run(host.attach(container_id=OTHER, pid=b.pid, spec=spec_b))
    inside = router_links(host, tenant)
    assert old.bridge not in inside and new.bridge in inside
    assert a.ping(ip_of(spec_b)) and a.ping(new.gateway)
    udp, _tcp = host.router_sockets(tenant, new.gateway)  # the old ones were closed
    assert udp.getsockname()[0] == new.gateway
