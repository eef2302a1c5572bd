"""A tenant's router namespace on this host (ADR 0016): made, opened, plumbed, removed.

A router is a named network namespace ``/run/netns/dyk-<instance>-<tenant12>`` holding
the tenant's bridges (``br-<network12>``, the gateway address on each), the router side
``up0`` of its uplink veth (the root side ``dyu<hash12>`` stays in the host's namespace),
one veth per container endpoint (``ve<endpoint13>``, alias = the container's id) and the
nft table ``inet dockyard`` (:func:`dockyard.network.rules.router_ruleset`).

A :class:`Router` object holds a NETLINK_ROUTE socket and an nft context made *inside*
the namespace: a socket stays in the namespace it was made in, so the hot path (a veth
whose peer goes straight into the container) is one netlink batch on a socket we already
have, with no namespace switch.

The uplink is a /31 of the agent's transit subnet, root side even: the lowest pair whose
addresses the host does not have, so the kernel, not a file, says which pairs are taken.

Blocking helpers meant for a worker thread (deleting links takes the kernel 20 ms each)
take a path and make their own sockets; everything else runs on the caller's thread and
does not block beyond a netlink round trip.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from dockyard.core.errors import (
    AlreadyExists,
    DockyardError,
    FailedPrecondition,
    NotFound,
    Unavailable,
)
from dockyard.core.protocol import EndpointSpec
from dockyard.network.conntrack import NETLINK_NETFILTER, Conntrack
from dockyard.network.elements import delete_elements, list_elements
from dockyard.network.ingress import RouterIngress
from dockyard.network.names import (
    ROUTER_TABLE,
    UPLINK_INSIDE,
    endpoint_veth,
    gateway_address,
    mac_for,
    random_mac,
    transit_pair,
)
from dockyard.network.netns import (
    create_named_netns,
    in_named_netns,
    remove_named_netns,
    socket_in_named_netns,
    write_sysctl,
)
from dockyard.network.nft import Nft
from dockyard.network.rtnl import (
    LOOPBACK_IFINDEX,
    Address,
    Link,
    Rtnl,
    add_address,
    default_route,
    delete_link,
    link_up,
    new_bridge,
    new_veth,
    set_port,
)
from dockyard.network.rules import (
    ROUTER_SETS,
    Element,
    bridge_elements,
    render_add,
    render_delete,
    router_ruleset,
)

__all__ = [
    "Router",
    "create_router",
    "delete_links",
    "list_routers",
    "open_router",
    "remove_router",
]

_PROC_SYS = Path("/proc/sys/net")

# Frames a bridge forwards between two of its ports stay on the bridge. br_netfilter (on
# by default in every namespace once the kernel has it) would pass each of them through
# conntrack and the inet prerouting, forward and postrouting hooks, only for the forward
# chain to accept it by ``same_bridge``; isolated ports never forward to each other at
# all. That detour was about a tenth of the CPU of a transfer between two containers of
# one network (docs/benchmarks.md, "Tenant network throughput"), and all it decided was
# to drop what conntrack calls invalid between two containers that may send each other
# any frame anyway (non-IP frames never met the hooks). Routed packets (to a gateway,
# between bridges, through the uplink) cross the router's hooks as before.
_BRIDGE_NETFILTER = (
    "bridge-nf-call-iptables",
    "bridge-nf-call-ip6tables",
    "bridge-nf-call-arptables",
)


class Router:
    """An open router namespace: sockets inside it and what it knows of its bridges.

    Made by :func:`create_router` or :func:`open_router`. ``close()`` releases the
    sockets (the namespace and everything in it stay); :func:`remove_router` deletes
    it. Not thread-safe: one event loop uses it.
    """

    def __init__(
        self, *, name: str, path: Path, uplink: str, root_ip: str, ip: str, rtnl: Rtnl, nft: Nft
    ) -> None:
        self.name = name
        self.path = path
        self.uplink = uplink
        self.root_ip = root_ip
        self.ip = ip
        self.rtnl = rtnl
        self.nft = nft
        self.bridges: dict[str, int] = {}
        """Bridge name -> ifindex, for bridges with their gateway address."""
        self.gateways: dict[str, str] = {}
        """Bridge name -> gateway address."""
        self._registered: set[str] = set()  # bridges whose nft elements this object added
        self.ingress = RouterIngress()
        """Tags and profile users of its security groups (:mod:`~dockyard.network.ingress`)."""
        self._conntrack: Conntrack | None = None

    def close(self) -> None:
        self.rtnl.close()
        self.nft.close()
        if self._conntrack is not None:
            self._conntrack.close()
            self._conntrack = None

    def conntrack(self) -> Conntrack:
        """A ctnetlink socket inside the router (made on first use, kept until close)."""
        if self._conntrack is None:
            sock = socket_in_named_netns(self.path, kind=socket.SOCK_RAW, proto=NETLINK_NETFILTER)
            self._conntrack = Conntrack(sock)
        return self._conntrack

    # bridges and endpoints

    def ensure_bridge(self, endpoint: EndpointSpec) -> int:
        """The ifindex of ``endpoint.bridge``, made (up, gateway address, fixed MAC) if
        missing, and registered in the router's table as the endpoint says (internal,
        isolated) the first time this object meets it."""
        name = endpoint.bridge
        index = self.bridges.get(name)
        if index is None:
            gateway, prefixlen = gateway_address(subnet=endpoint.subnet, gateway=endpoint.gateway)
            with contextlib.suppress(AlreadyExists):  # left without its address by a crash
                self.rtnl.transact([new_bridge(name, mac=random_mac())], f"create bridge {name}")
            index = self.rtnl.link_index(name)
            self.rtnl.transact(
                [add_address(index, gateway, prefixlen)],
                f"address bridge {name}",
                ignore=(errno.EEXIST,),
            )
            self.bridges[name] = index
            self.gateways[name] = gateway
        if name not in self._registered:
            elements = bridge_elements(
                name=name, internal=endpoint.internal, isolated=endpoint.isolated
            )
            self.nft.cmd(render_add(ROUTER_TABLE, elements))
            self._registered.add(name)
        return index

    def forget_bridge(self, name: str) -> None:
        """Drop ``name`` from what this object knows (it was deleted)."""
        self.bridges.pop(name, None)
        self.gateways.pop(name, None)
        self._registered.discard(name)

    def plug(self, *, container_id: str, pid: int, endpoint: EndpointSpec, bridge: int) -> str:
        """Create the endpoint's veth on bridge index ``bridge``, its peer going straight
        into ``pid``'s netns as ``endpoint.interface`` (MAC from its address), the router
        side named from the endpoint id with the container id as alias (and an isolated
        port if the endpoint says so). One netlink batch. Returns the router side's name.

        Raises ``AlreadyExists`` if a name is taken (either side), ``FailedPrecondition``
        if the process is gone.
        """
        veth = endpoint_veth(endpoint.endpoint_id)
        self.rtnl.transact(
            [
                new_veth(
                    veth,
                    peer=endpoint.interface,
                    peer_pid=pid,
                    peer_mac=mac_for(endpoint.ip),
                    master=bridge,
                ),
                set_port(veth, alias=container_id, isolated=endpoint.isolated),
            ],
            f"create {veth} for {endpoint.interface} of {container_id[:12]}",
        )
        return veth

    def endpoint_links(self) -> list[Link]:
        """The endpoints' veths (router side) present now."""
        return [
            link for link in self.rtnl.links() if link.kind == "veth" and link.name != UPLINK_INSIDE
        ]

    # nft

    def elements(self) -> list[Element]:
        return list_elements(self.nft, ROUTER_TABLE)

    def add_elements(self, elements: Sequence[Element]) -> None:
        if elements:
            self.nft.cmd(render_add(ROUTER_TABLE, elements))

    def delete_elements(self, elements: Sequence[Element]) -> None:
        """Delete ``elements``, tolerating those already gone."""
        delete_elements(self.nft, ROUTER_TABLE, elements)

    def replace_elements(self, delete: Sequence[Element], add: Sequence[Element]) -> None:
        """Delete ``delete`` and add ``add`` in one transaction (all or nothing).

        Tolerates what the kernel does not match: elements of ``delete`` already gone, and
        map keys of ``add`` held with another value or owner (left by a container whose
        cleanup never ran: the router's state is ours to decide) are replaced. Raises
        ``Unavailable`` if the kernel still refuses.
        """
        if not delete and not add:
            return
        try:
            self.nft.cmd(render_delete(ROUTER_TABLE, delete) + render_add(ROUTER_TABLE, add))
        except Unavailable:
            self._replace_drifted(delete, add)

    def _replace_drifted(self, delete: Sequence[Element], add: Sequence[Element]) -> None:
        present = {(e.set_name, e.key): e for e in self.elements()}
        wanted = {(e.set_name, e.key) for e in delete if (e.set_name, e.key) in present}
        for e in add:
            held = present.get((e.set_name, e.key))
            if held is not None and (held.value, held.comment) != (e.value, e.comment):
                wanted.add((e.set_name, e.key))
        stale = [present[k] for k in present if k in wanted]
        self.nft.cmd(render_delete(ROUTER_TABLE, stale) + render_add(ROUTER_TABLE, add))

    # DNS

    def dns_sockets(self, gateway: str) -> tuple[socket.socket, socket.socket]:
        """UDP and TCP sockets in the router bound to ``gateway``:53 (TCP listening),
        non-blocking and close-on-exec. ``AlreadyExists`` if the port is taken,
        ``NotFound`` if the address is not the router's."""

        def make() -> tuple[socket.socket, socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                udp.bind((gateway, 53))
                tcp.bind((gateway, 53))
                tcp.listen(128)
                udp.setblocking(False)
                tcp.setblocking(False)
            except OSError as exc:
                udp.close()
                tcp.close()
                if exc.errno == errno.EADDRINUSE:
                    raise AlreadyExists(f"{gateway}:53 is taken in {self.name}") from exc
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise NotFound(f"{gateway} is no address of {self.name}") from exc
                raise Unavailable(f"cannot bind {gateway}:53 in {self.name}: {exc}") from exc
            return udp, tcp

        return in_named_netns(self.path, make)


def create_router(*, name: str, path: Path, uplink: str, transit: str, root: Rtnl) -> Router:
    """Make router namespace ``name`` at ``path`` with its uplink ``uplink`` (root side,
    made with ``root``, a socket in the host's namespace) on the lowest free /31 of
    ``transit``, its table loaded and forwarding on. On failure nothing is left.

    Raises ``AlreadyExists`` if the namespace exists, ``Unavailable`` for kernel errors
    (``Unavailable`` too when the transit subnet is full).
    """
    root_ip, ip = transit_pair(transit, (a.address for a in root.addresses()))

    def setup() -> tuple[Rtnl, Nft]:
        # procfs resolves /proc/sys/net against the calling thread's namespace: here.
        write_sysctl(_PROC_SYS / "ipv4" / "ip_forward", "1")
        for scope in ("all", "default"):  # IPv4 only: no link-local noise, no v6 paths
            write_sysctl(_PROC_SYS / "ipv6" / "conf" / scope / "disable_ipv6", "1", optional=True)
        _bridged_frames_skip_netfilter()
        rtnl = Rtnl()
        try:
            nft = Nft()
        except BaseException:
            rtnl.close()
            raise
        return rtnl, nft

    rtnl, nft = create_named_netns(path, setup)
    router = Router(name=name, path=path, uplink=uplink, root_ip=root_ip, ip=ip, rtnl=rtnl, nft=nft)
    try:
        nft.cmd(router_ruleset())
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            root.transact(
                [new_veth(uplink, peer=UPLINK_INSIDE, peer_netns_fd=fd)], f"create uplink {uplink}"
            )
        finally:
            os.close(fd)
        outside = root.link_index(uplink)
        root.transact([add_address(outside, root_ip, 31)], f"address uplink {uplink}")
        # Lets the host's own connections to 127.0.0.1 be DNATed out through the uplink
        # (the root table's guard drops the reverse direction).
        write_sysctl(_PROC_SYS / "ipv4" / "conf" / uplink / "route_localnet", "1")
        inside = rtnl.link_index(UPLINK_INSIDE)
        rtnl.transact(
            [
                add_address(inside, ip, 31),
                link_up(inside),
                link_up(LOOPBACK_IFINDEX),
                default_route(root_ip, inside),
            ],
            f"configure {UPLINK_INSIDE} in {name}",
        )
    except BaseException:
        router.close()
        with contextlib.suppress(DockyardError, OSError):
            root.transact([delete_link(uplink)], f"delete {uplink}", ignore=(errno.ENODEV,))
        remove_named_netns(path)
        raise
    return router


def open_router(*, name: str, path: Path, uplink: str) -> Router:
    """Open the existing router namespace at ``path``: sockets inside it, its transit
    pair and bridges read from the kernel, its table reloaded with its elements kept and
    br_netfilter turned off (a newer agent brings its rules up to date, and a kernel
    module loaded after the router was made turns br_netfilter back on).

    Raises ``FailedPrecondition`` if the namespace does not exist or is not a usable
    router (no addressed uplink: a creation cut short), ``Unavailable`` for kernel errors.
    """
    rtnl, nft = in_named_netns(path, _reopen)
    try:
        links = rtnl.links()
        addresses = rtnl.addresses()
        ip = _uplink_address(name, links, addresses)
        root_ip = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(ip)) & ~1))
        kept = [e for e in list_elements(nft, ROUTER_TABLE) if e.set_name in ROUTER_SETS]
        try:
            nft.cmd(router_ruleset() + render_add(ROUTER_TABLE, kept))
        except Unavailable:
            if not kept:
                raise
            nft.cmd(router_ruleset())
            kept = []
    except BaseException:
        rtnl.close()
        nft.close()
        raise
    router = Router(name=name, path=path, uplink=uplink, root_ip=root_ip, ip=ip, rtnl=rtnl, nft=nft)
    router.ingress = RouterIngress.from_elements(kept)
    by_index = {a.index: a.address for a in addresses}
    for link in links:
        if link.kind == "bridge" and link.index in by_index:
            router.bridges[link.name] = link.index
            router.gateways[link.name] = by_index[link.index]
    return router


def list_routers(prefix: str, run_dir: Path) -> list[str]:
    """Names of the router namespaces under ``run_dir`` starting with ``prefix``."""
    try:
        return sorted(p.name for p in run_dir.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def delete_links(path: Path | None, names: Iterable[str]) -> None:
    """Delete interfaces ``names`` (missing ones are fine) in the router at ``path``, or
    in this thread's namespace when ``path`` is None. Blocking: 20 ms a veth or bridge
    (run it in a worker thread). A vanished router is fine too."""
    wanted = list(names)
    if not wanted:
        return
    try:
        sock = None if path is None else socket_in_named_netns(path, kind=socket.SOCK_RAW)
    except FailedPrecondition:
        return  # the router is gone, and everything in it
    with Rtnl(sock) as rtnl:
        rtnl.transact(
            [delete_link(name) for name in wanted],
            f"delete {', '.join(wanted)}",
            ignore=(errno.ENODEV,),
        )


def remove_router(path: Path, uplink: str) -> None:
    """Delete a router: its uplink (both sides at once), then the namespace, whose
    bridges and remaining veths the kernel deletes once nothing holds it (close the
    router's sockets first). Idempotent; blocking (run it in a worker thread)."""
    delete_links(None, [uplink])
    remove_named_netns(path)


# internals


def _uplink_address(name: str, links: list[Link], addresses: list[Address]) -> str:
    up = next((link for link in links if link.name == UPLINK_INSIDE), None)
    mine = [a.address for a in addresses if up is not None and a.index == up.index]
    if not mine:
        raise FailedPrecondition(f"router namespace {name} has no addressed uplink")
    return mine[0]


def _bridged_frames_skip_netfilter() -> None:
    """br_netfilter off in this thread's namespace (see ``_BRIDGE_NETFILTER``); nothing
    to do on a kernel without it."""
    for name in _BRIDGE_NETFILTER:
        write_sysctl(_PROC_SYS / "bridge" / name, "0", optional=True)


def _reopen() -> tuple[Rtnl, Nft]:
    """Inside an existing router: br_netfilter off, then the sockets."""
    _bridged_frames_skip_netfilter()
    rtnl = Rtnl()
    try:
        return rtnl, Nft()
    except BaseException:
        rtnl.close()
        raise
