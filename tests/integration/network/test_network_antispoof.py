"""Anti-spoofing in the router's bridge table (ADR 0022): an endpoint's veth lets in only
IPv4 and ARP frames sent as the endpoint's own MAC and address."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from network_helpers import Net, Netns, ip_of, router_exec, tenant_spec

from dockyard.core.protocol import IngressRule
from dockyard.network import HostNetwork
from dockyard.network.names import endpoint_veth, mac_for
from dockyard.network.netns import socket_in_netns
from dockyard.network.rules import Element, parse_elements

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B, M, C = "a" * 64, "b" * 64, "e" * 64, "c" * 64
WEB = "1" * 64  # a security group id
PORT = 4789


def source_elements_in(host: HostNetwork, tenant: str) -> list[Element]:
    """The elements of the router's anti-spoofing table."""
    listing = router_exec(host, tenant, "nft", "-j", "list", "table", "bridge", "dockyard")
    return parse_elements(json.loads(listing))


def listener(ns: Netns, ip: str) -> socket.socket:
    sock = socket_in_netns(ns.pid, family=socket.AF_INET, kind=socket.SOCK_DGRAM, proto=0)
    sock.bind((ip, PORT))
    sock.settimeout(0.5)
    return sock


def received(sock: socket.socket) -> list[tuple[bytes, str]]:
    """What came to ``sock`` until it was quiet for half a second."""
    got = []
    while True:
        try:
            data, (addr, _port) = sock.recvfrom(100)
        except TimeoutError:
            return got
        got.append((data, addr))


def send_from(ns: Netns, source: str, dest: str, payload: bytes) -> None:
    """One UDP datagram from inside ``ns`` with source address ``source`` (the
    netns must have it; the test adds a neighbour's address to spoof it)."""
    sock = socket_in_netns(ns.pid, family=socket.AF_INET, kind=socket.SOCK_DGRAM, proto=0)
    with sock:
        sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the address may be tentative
        sock.bind((source, 0))
        sock.sendto(payload, (dest, PORT))


def spoof(ns: Netns, ip: str) -> None:
    """Give ``ns`` a neighbour's address too, as a hostile container with NET_ADMIN can."""
    ns.run("ip", "addr", "add", f"{ip}/32", "dev", "eth0")


def pin_neighbour(ns: Netns, ip: str) -> None:
    """A permanent neighbour entry for ``ip`` (its MAC is derived from it), so that
    sending there needs no ARP: the IPv4 frame itself is what is tested."""
    ns.run("ip", "neigh", "replace", ip, "lladdr", mac_for(ip), "dev", "eth0", "nud", "permanent")


def arp_request(ns: Netns, *, sender_mac: str, sender_ip: str, target_ip: str) -> None:
    """A broadcast ARP request from ``ns``'s eth0 with the given sender fields."""
    sock = socket_in_netns(ns.pid, family=socket.AF_PACKET, kind=socket.SOCK_RAW, proto=0)
    with sock:
        sock.bind(("eth0", 0))
        mac = bytes.fromhex(sender_mac.replace(":", ""))
        frame = (
            b"\xff" * 6
            + mac
            + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, 1)
            + mac
            + socket.inet_aton(sender_ip)
            + b"\x00" * 6
            + socket.inet_aton(target_ip)
        )
        sock.send(frame)


def neighbour(ns: Netns, ip: str) -> str:
    entries = ns.ip_json("neigh", "show", ip, "dev", "eth0")
    return str(entries[0].get("lladdr", "")) if entries else ""


def attach_three(
    host: HostNetwork, net: Net, make_netns: Callable[..., Netns], run: Run
) -> list[tuple[Netns, str]]:
    """Containers A, B and M (the one that misbehaves) on ``net``: each namespace with
    its address."""
    attached = []
    for cid, name in ((A, "a"), (B, "b"), (M, "m")):
        ns, spec = make_netns(name), net.spec()
        run(host.attach(container_id=cid, pid=ns.pid, spec=spec))
        attached.append((ns, ip_of(spec)))
    return attached


def test_a_spoofed_address_or_mac_does_not_reach_a_neighbour(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    (a, ip_a), (b, ip_b), (m, ip_m) = attach_three(host, net, make_netns, run)
    assert m.ping(ip_b) and a.ping(ip_b) and m.ping(net.gateway)
    with listener(b, ip_b) as sock:
        send_from(m, ip_m, ip_b, b"honest")
        assert received(sock) == [(b"honest", ip_m)]

        # Its neighbour's address: the IPv4 frame itself (no ARP needed) is dropped.
        spoof(m, ip_a)
        pin_neighbour(m, ip_b)
        send_from(m, ip_a, ip_b, b"as a")
        assert received(sock) == []
        # An address of no one on the network either.
        spoof(m, str(net.subnet.network_address + 200))
        send_from(m, str(net.subnet.network_address + 200), ip_b, b"as nobody")
        assert received(sock) == []

        # Its neighbour's MAC with its own address: dropped too, and the bridge did not
        # learn A's MAC on M's port (A is still reachable).
        m.run("ip", "link", "set", "eth0", "address", mac_for(ip_a))
        send_from(m, ip_m, ip_b, b"with a's mac")
        assert received(sock) == []
        assert b.ping(ip_a)
        # Back to its own MAC: its own traffic passes again.
        m.run("ip", "link", "set", "eth0", "address", mac_for(ip_m))
        send_from(m, ip_m, ip_b, b"honest again")
        assert received(sock) == [(b"honest again", ip_m)]
    # IPv6 is not carried on tenant networks (link-local neither).
    six = a.ip_json("-6", "addr", "show", "dev", "eth0")
    link_local = [
        info["local"]
        for item in six
        for info in item.get("addr_info", [])
        if info["scope"] == "link"
    ]
    if link_local:
        result = b.run(
            "busybox", "ping", "-c", "1", "-W", "1", f"{link_local[0]}%eth0", check=False
        )
        assert result.returncode != 0


def test_an_arp_claiming_a_neighbours_address_is_dropped(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    net = make_net()
    (_, ip_a), (b, ip_b), (m, ip_m) = attach_three(host, net, make_netns, run)
    assert b.ping(ip_a)
    assert neighbour(b, ip_a) == mac_for(ip_a)
    time.sleep(1.2)  # past the ARP locktime: B would take a new MAC for A now
    # The crafted request works when it is honest: B learns M from it.
    arp_request(m, sender_mac=mac_for(ip_m), sender_ip=ip_m, target_ip=ip_b)
    deadline = time.monotonic() + 2
    while neighbour(b, ip_m) != mac_for(ip_m) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert neighbour(b, ip_m) == mac_for(ip_m)
    # Claiming A's address with M's MAC (ARP and Ethernet agree), or with A's MAC in the
    # ARP header only: neither reaches B.
    arp_request(m, sender_mac=mac_for(ip_m), sender_ip=ip_a, target_ip=ip_b)
    arp_request(m, sender_mac=mac_for(ip_a), sender_ip=ip_a, target_ip=ip_b)
    time.sleep(0.3)
    assert neighbour(b, ip_a) == mac_for(ip_a)
    assert b.ping(ip_a)


def test_a_spoofed_group_member_does_not_pass_a_security_group(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """The bypass of issue 5: C lets in UDP from group WEB, A is in it, M (same network
    as A, not in the group) sends one-way UDP as A."""
    one, two = make_net(), make_net()
    a, m, c = make_netns("a"), make_netns("m"), make_netns("c")
    spec_a = tenant_spec(tenant, replace(one.endpoint(), groups=(WEB,)))
    spec_m = one.spec()
    rule = IngressRule("udp", PORT, PORT, source_group=WEB)
    spec_c = tenant_spec(tenant, replace(two.endpoint(), ingress=(rule,)))
    for cid, ns, spec in ((A, a, spec_a), (M, m, spec_m), (C, c, spec_c)):
        run(host.attach(container_id=cid, pid=ns.pid, spec=spec))
    ip_a, ip_c = ip_of(spec_a), ip_of(spec_c)
    with listener(c, ip_c) as sock:
        send_from(a, ip_a, ip_c, b"member")
        assert received(sock) == [(b"member", ip_a)]
        spoof(m, ip_a)
        send_from(m, ip_a, ip_c, b"pretender")
        assert received(sock) == []


def test_elements_follow_the_endpoints(
    make_host: Callable[[], HostNetwork],
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """Attach, connect (with ``--ip``), disconnect, an agent restart and detach: the
    elements are those of the endpoints that exist, and traffic keeps flowing."""
    host = make_host()
    one, two = make_net(), make_net()
    a, b = make_netns("a"), make_netns("b")
    spec_a = one.spec()
    spec_b = tenant_spec(tenant, one.endpoint(), two.endpoint("eth1"))
    run(host.attach(container_id=A, pid=a.pid, spec=spec_a))
    run(host.attach(container_id=B, pid=b.pid, spec=spec_b))

    def expected(*endpoints: Any, owner: str) -> set[Element]:
        found = set()
        for e in endpoints:
            veth = endpoint_veth(e.endpoint_id)
            found.add(Element("port_mac", (veth, mac_for(e.ip)), comment=owner))
            found.add(Element("port_ip", (veth, mac_for(e.ip), e.ip), comment=owner))
        return found

    both = expected(*spec_a.endpoints, owner=A) | expected(*spec_b.endpoints, owner=B)
    assert set(source_elements_in(host, tenant)) == both
    assert a.ping(ip_of(spec_b)) and b.ping(ip_of(spec_a))

    # connect A to the second network with a chosen address
    extra = two.endpoint("eth1", ip=str(two.subnet.network_address + 77))
    run(host.connect(container_id=A, pid=a.pid, endpoint=extra))
    assert set(source_elements_in(host, tenant)) == both | expected(extra, owner=A)
    assert a.ping(ip_of(spec_b, 1)) and b.ping(extra.ip)

    # an agent restart: the table is reloaded with its elements, restore re-adds them
    host.close()
    host = make_host()
    restored_a = replace(spec_a, endpoints=(*spec_a.endpoints, extra))
    run(host.restore(container_id=A, pid=a.pid, spec=restored_a, ports={}))
    run(host.restore(container_id=B, pid=b.pid, spec=spec_b, ports={}))
    assert set(source_elements_in(host, tenant)) == both | expected(extra, owner=A)
    assert b.ping(extra.ip) and b.ping(ip_of(spec_a))

    run(host.disconnect(container_id=A, endpoint_id=extra.endpoint_id))
    assert set(source_elements_in(host, tenant)) == both
    assert a.ping(ip_of(spec_b))

    run(host.detach(container_id=A))
    assert set(source_elements_in(host, tenant)) == expected(*spec_b.endpoints, owner=B)
    run(host.detach(container_id=B))
    assert source_elements_in(host, tenant) == []


def test_cleanup_sweeps_what_a_dead_agent_left(
    make_host: Callable[[], HostNetwork],
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    host = make_host()
    net = make_net()
    a, b = make_netns("a"), make_netns("b")
    run(host.attach(container_id=A, pid=a.pid, spec=net.spec()))
    run(host.attach(container_id=B, pid=b.pid, spec=net.spec()))
    host.close()  # the agent dies; A's container too
    host = make_host()
    run(host.cleanup(keep={B}))
    assert {e.comment for e in source_elements_in(host, tenant)} == {B}
