"""Detach, cleanup, agent restarts (start + restore), teardown, and attach latency."""

from __future__ import annotations

import ipaddress
import os
import socket
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    links,
    netns_names,
    nft_tables,
    query,
    router_exec,
    router_links,
    run_cmd,
    tenant_spec,
    uplink_address,
)

from dockyard.core.errors import Conflict, FailedPrecondition
from dockyard.core.protocol import PortMapping
from dockyard.network import HostNetwork
from dockyard.network.names import router_prefix, uplink_name

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B, C = "a" * 64, "b" * 64, "c" * 64


def _root_table(host: HostNetwork) -> str:
    return run_cmd("nft", "list", "table", "inet", host.table).stdout


def _router_table(host: HostNetwork, tenant: str) -> str:
    return router_exec(host, tenant, "nft", "list", "table", "inet", "dockyard")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _owned_veths(host: HostNetwork, tenant: str) -> dict[str, str]:
    """Endpoint veths in the router: name -> owner (alias)."""
    return {
        name: link.get("ifalias", "")
        for name, link in router_links(host, tenant).items()
        if name.startswith("ve")
    }


def test_detach_removes_everything_and_is_idempotent(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    ns = make_netns()
    spec = make_net().spec(PortMapping("tcp", 80))
    port = run(host.attach(container_id=A, pid=ns.pid, spec=spec))["80/tcp"][0][1]
    assert A in _root_table(host)
    assert A in _router_table(host, tenant)
    assert not _port_is_free(port)
    run(host.detach(container_id=A))
    assert A not in _root_table(host)
    assert A not in _router_table(host, tenant)
    assert _port_is_free(port)
    assert _owned_veths(host, tenant) == {}
    assert ns.links() == {"lo"}
    run(host.detach(container_id=A))
    run(host.detach(container_id=B))  # never attached


def test_unpublish_frees_ports_but_keeps_the_veths(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    ns = make_netns()
    port = run(
        host.attach(container_id=A, pid=ns.pid, spec=make_net().spec(PortMapping("udp", 53)))
    )["53/udp"][0][1]
    host.unpublish(container_id=A)
    host.unpublish(container_id=A)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", port))
    assert A not in _root_table(host)
    assert A not in _router_table(host, tenant)
    assert list(_owned_veths(host, tenant).values()) == [A]


def test_detach_after_the_container_died(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    ns = make_netns()
    run(host.attach(container_id=A, pid=ns.pid, spec=make_net().spec(PortMapping("udp", 53))))
    ns.kill()  # the kernel removes the veth pair with the netns, asynchronously
    run(host.detach(container_id=A))
    assert A not in _root_table(host)
    assert _owned_veths(host, tenant) == {}


def test_cleanup_keeps_only_the_given_ids(
    host: HostNetwork,
    make_tenant: Callable[[], str],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """Veths, elements and reservations of the others go; so do bridges and routers left
    without an endpoint."""
    kept_tenant, gone_tenant = make_tenant(), make_tenant()
    shared, lonely = make_net(owner=kept_tenant), make_net(owner=kept_tenant)
    for cid, spec in (
        (A, shared.spec(PortMapping("tcp", 80))),
        (B, tenant_spec(kept_tenant, shared.endpoint(), lonely.endpoint("eth1"))),
        (C, make_net(owner=gone_tenant).spec(PortMapping("tcp", 80))),
    ):
        run(host.attach(container_id=cid, pid=make_netns().pid, spec=spec))
    run(host.cleanup(keep={A}))
    assert host.attached() == {A}
    table = _root_table(host)
    assert A in table
    assert B not in table
    assert C not in table
    assert list(_owned_veths(host, kept_tenant).values()) == [A]
    inside = router_links(host, kept_tenant)
    assert shared.bridge in inside
    assert lonely.bridge not in inside
    assert lonely.bridge not in _router_table(host, kept_tenant)
    assert host.router_name(gone_tenant) not in netns_names()
    assert uplink_name(host.router_name(gone_tenant)) not in links()
    assert uplink_name(host.router_name(gone_tenant)) not in table


def test_restart_restore_and_cleanup_of_leftovers(
    host: HostNetwork,
    tenant: str,
    make_host: Callable[[], HostNetwork],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """A new agent process: start() keeps elements, restore() reopens the router and
    re-reserves, connect works on a restored container, cleanup() finds what the old
    process left behind by alias and owner comment."""
    old = host
    front, back = make_net(), make_net()
    kept_ns, gone_ns = make_netns("kept"), make_netns("gone")
    kept_spec = tenant_spec(
        tenant, front.endpoint(), back.endpoint("eth1"), ports=(PortMapping("tcp", 80),)
    )
    kept_ports = run(old.attach(container_id=A, pid=kept_ns.pid, spec=kept_spec))
    gone_ports = run(
        old.attach(container_id=B, pid=gone_ns.pid, spec=front.spec(PortMapping("tcp", 80)))
    )
    kept_ns.serve("tcp", 80)
    port = kept_ports["80/tcp"][0][1]
    uplink = uplink_address(old, tenant)
    old.close()  # the agent exits: reservations go, kernel state stays
    assert _port_is_free(port)
    assert query("tcp", "127.0.0.1", port) == f"kept {uplink}"

    new = make_host()  # start() again on the same instance
    assert A in _root_table(new)
    assert B in _root_table(new)
    run(new.restore(container_id=A, pid=kept_ns.pid, spec=kept_spec, ports=kept_ports))
    run(new.restore(container_id=A, pid=kept_ns.pid, spec=kept_spec, ports=kept_ports))
    assert not _port_is_free(port)
    assert new.attached() == {A}
    assert [e.endpoint_id for e in new.endpoints(A)] == [e.endpoint_id for e in kept_spec.endpoints]
    run(new.cleanup(keep={A}))
    table = _root_table(new)
    assert A in table
    assert B not in table
    assert str(gone_ports["80/tcp"][0][1]) not in table
    assert B not in _router_table(new, tenant)
    assert set(_owned_veths(new, tenant).values()) == {A}
    assert query("tcp", "127.0.0.1", port) == f"kept {uplink}"
    # The restored container is a full citizen: connect, disconnect, detach.
    third = make_net()
    endpoint = third.endpoint("eth2")
    run(new.connect(container_id=A, pid=kept_ns.pid, endpoint=endpoint))
    assert kept_ns.ping(third.gateway)
    run(new.disconnect(container_id=A, endpoint_id=kept_spec.endpoints[1].endpoint_id))
    assert kept_ns.links() == {"lo", "eth0", "eth2"}
    run(new.detach(container_id=A))
    assert _port_is_free(port)
    assert _owned_veths(new, tenant) == {}


@pytest.mark.skipif(
    not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"),
    reason="the kernel has no br_netfilter",
)
def test_a_reopened_router_turns_br_netfilter_off_again(
    host: HostNetwork,
    tenant: str,
    make_host: Callable[[], HostNetwork],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """br_netfilter is on again in a router made before its module was loaded (and in
    routers of older agents); the next agent to open the router turns it off."""
    flag = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    ns = make_netns()
    spec = make_net().spec()
    ports = run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    assert router_exec(host, tenant, "cat", flag).strip() == "0"
    router_exec(host, tenant, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    host.close()
    new = make_host()
    run(new.restore(container_id=A, pid=ns.pid, spec=spec, ports=ports))
    assert router_exec(new, tenant, "cat", flag).strip() == "0"
    assert ns.ping(spec.endpoints[0].gateway)


def test_restore_refusals(
    host: HostNetwork,
    tenant: str,
    make_host: Callable[[], HostNetwork],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    old = host
    net = make_net()
    ns = make_netns()
    spec = net.spec(PortMapping("tcp", 80))
    ports = run(old.attach(container_id=A, pid=ns.pid, spec=spec))
    old.close()
    new = make_host()
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", ports["80/tcp"][0][1]))
        with pytest.raises(Conflict):
            run(new.restore(container_id=A, pid=ns.pid, spec=spec, ports=ports))
    assert new.attached() == set()
    with pytest.raises(FailedPrecondition, match="veth"):
        run(new.restore(container_id=B, pid=ns.pid, spec=net.spec(), ports={}))
    with pytest.raises(FailedPrecondition, match="gone"):
        other = make_net(owner="e" * 64)
        run(new.restore(container_id=B, pid=ns.pid, spec=other.spec(), ports={}))
    pid = ns.pid
    ns.kill()
    with pytest.raises(FailedPrecondition):
        run(new.restore(container_id=A, pid=pid, spec=spec, ports=ports))


def test_a_router_cut_short_is_made_again(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """A namespace without its uplink (an agent killed while making it) is replaced."""
    name = host.router_name(tenant)
    run_cmd("ip", "netns", "add", name)
    ns = make_netns()
    spec = make_net().spec()
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    assert ns.ping(spec.endpoints[0].gateway)
    assert "up0" in router_links(host, tenant)


def test_teardown_leaves_nothing(
    host: HostNetwork,
    make_tenant: Callable[[], str],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    tenants = [make_tenant(), make_tenant()]
    nets = [make_net(owner=tenants[0]), make_net(owner=tenants[1], internal=True)]
    survivors = []
    for n, net in enumerate(nets):
        ns = make_netns()
        survivors.append(ns)
        run(
            host.attach(container_id=f"{n}" * 64, pid=ns.pid, spec=net.spec(PortMapping("tcp", 80)))
        )
    udp, tcp = host.router_sockets(tenants[0], nets[0].gateway)
    run(host.teardown())
    assert not [n for n in netns_names() if n.startswith(router_prefix(host.instance))]
    assert not [t for t in tenants if uplink_name(host.router_name(t)) in links()]
    assert host.table not in nft_tables()
    assert host.attached() == set()
    assert udp.fileno() == -1
    assert tcp.fileno() == -1
    # The containers lose their interfaces once the kernel has freed the routers.
    deadline = time.monotonic() + 5
    while any(ns.links() != {"lo"} for ns in survivors) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(ns.links() == {"lo"} for ns in survivors)
    run(host.teardown())  # idempotent


def test_attach_latency(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Measured, not asserted: the machine is shared and noisy."""
    net = make_net()
    namespaces = [make_netns() for _ in range(21)]
    first, plain, published, detach = [], [], [], []
    for n, ns in enumerate(namespaces):
        ports = (PortMapping("tcp", 80), PortMapping("udp", 53)) if n % 2 else ()
        start = time.perf_counter()
        run(host.attach(container_id=f"{n:02d}" * 32, pid=ns.pid, spec=net.spec(*ports)))
        elapsed = (time.perf_counter() - start) * 1000
        (first if n == 0 else published if ports else plain).append(elapsed)
    for ns in namespaces:
        ns.kill()  # as in production: the netns dies first, then the agent detaches
    time.sleep(0.5)
    for n in range(len(namespaces)):
        start = time.perf_counter()
        run(host.detach(container_id=f"{n:02d}" * 32))
        detach.append((time.perf_counter() - start) * 1000)

    def fmt(values: list[float]) -> str:
        median = statistics.median(values)
        return f"median {median:.2f} ms, min {min(values):.2f}, max {max(values):.2f}"

    with capsys.disabled():
        print()
        print(f"  first attach (new router) : {first[0]:.2f} ms")
        print(f"  attach, no ports       ({len(plain)}): {fmt(plain)}")
        print(f"  attach, tcp+udp ports  ({len(published)}): {fmt(published)}")
        print(f"  detach after exit      ({len(detach)}): {fmt(detach)}")


def test_a_router_deleted_behind_our_back_is_made_again(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    first, second = make_netns(), make_netns()
    run(host.attach(container_id=A, pid=first.pid, spec=net.spec()))
    run_cmd("ip", "netns", "del", host.router_name(tenant))
    spec = net.spec()
    run(host.attach(container_id=B, pid=second.pid, spec=spec))
    assert second.ping(net.gateway)
    run(host.cleanup(keep={B}))
    assert list(_owned_veths(host, tenant).values()) == [B]


def test_start_drops_published_ports_of_an_older_layout(
    host: HostNetwork, make_host: Callable[[], HostNetwork]
) -> None:
    """A port DNATed straight to a container address (the old system bridge) is not
    carried over; one DNATed to a router is."""
    transit_ip = str(ipaddress.ip_network(host.transit_subnet).network_address + 1)
    run_cmd(
        "nft",
        f"add element inet {host.table} pub_any "
        f'{{ tcp . 40001 comment "{A}" : 10.89.0.2 . 80, '
        f'tcp . 40002 comment "{B}" : {transit_ip} . 40002 }}',
    )
    host.close()
    make_host()
    table = _root_table(host)
    assert A not in table
    assert B in table
