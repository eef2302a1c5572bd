"""Per-host network plumbing of one Dockyard instance: bridges, veths, NAT, published ports.

Everything is named from the instance's nftables ``table`` and ``veth_prefix`` (see
:mod:`dockyard.network.names`), so several instances share a host and each cleans up by
name. Kernel work goes through netlink (pyroute2 ``AsyncIPRoute``) and in-process
libnftables; nothing spawns ``ip`` or ``nft``. Per-container cost is a veth, a few
netlink requests inside the container's netns and set/map elements, never a rule
(:mod:`dockyard.network.rules`).

State: the kernel holds the truth (links, the nft table with owner comments); this
object keeps in memory what it attached or restored (reservation sockets, elements)
and the bridges it knows. It is bound to the event loop of its first netlink call.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.core.errors import (
    AlreadyExists,
    DockyardError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from dockyard.core.protocol import NetworkSpec
from dockyard.network.links import HostLinks
from dockyard.network.names import (
    check_bridge_name,
    check_container_id,
    check_table,
    check_veth_prefix,
    container_interface,
    gateway_address,
    mac_for,
    veth_name,
)
from dockyard.network.nft import Nft
from dockyard.network.ports import (
    Binding,
    PortAllocator,
    bindings_from_ports,
    check_mapping,
    ports_dict,
)
from dockyard.network.rtnl import Rtnl, configure_eth0, create_veth
from dockyard.network.rules import (
    PUBLISH_MAPS,
    Element,
    bridge_elements,
    parse_elements,
    publish_elements,
    render_add,
    render_delete,
    ruleset,
)

__all__ = ["HostNetwork"]

_PROC_SYS = Path("/proc/sys/net/ipv4")


@dataclass(slots=True)
class _Attachment:
    """What attach/restore made for one container, to undo it."""

    veth: str
    veth_created: bool = False
    sockets: list[socket.socket] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)


def _write_sysctl(path: Path, value: str) -> None:
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except OSError as exc:
        raise Unavailable(f"cannot set {path}: {exc}") from exc


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
    sockets.clear()


class HostNetwork:
    """Network plumbing of one instance on this host.

    Lifecycle: ``start()`` (idempotent, also after an agent restart), then
    ``ensure_bridge`` per network, ``attach``/``detach`` per container, ``restore`` for
    containers that outlived a previous agent, ``cleanup`` to drop leftovers,
    ``close()`` when the agent exits (kernel state stays), ``teardown()`` to remove all
    of it. Every method runs on the one event loop; none is safe to call concurrently
    for the *same* container id.

    Errors: ``InvalidArgument`` for malformed names and specs, ``Conflict`` for a taken
    host port, ``AlreadyExists`` for an id attached twice or a taken interface name,
    ``FailedPrecondition`` for a vanished container process or a non-bridge in the way,
    ``Unavailable`` for netlink, nftables and sysctl failures.
    """

    def __init__(self, *, table: str, veth_prefix: str) -> None:
        self._table = check_table(table)
        self._prefix = check_veth_prefix(veth_prefix)
        self._nft = Nft()
        self._links = HostLinks()
        self._rtnl = Rtnl()
        self._bridges: dict[str, int] = {}
        self._attached: dict[str, _Attachment] = {}
        self._ports = PortAllocator()

    @property
    def table(self) -> str:
        return self._table

    @property
    def veth_prefix(self) -> str:
        return self._prefix

    def attached(self) -> set[str]:
        """Ids of the containers this object attached or restored and not yet detached."""
        return set(self._attached)

    async def start(self) -> None:
        """Enable IPv4 forwarding and (re)build the instance's nft table atomically.

        Elements already in the table (bridges, published ports of running containers)
        are carried over. If they do not fit the table's current layout it is rebuilt
        empty; the agent's ``ensure_bridge`` and ``restore`` calls re-add them.
        """
        _write_sysctl(_PROC_SYS / "ip_forward", "1")
        kept = self._list_elements()
        try:
            self._nft.cmd(ruleset(self._table) + render_add(self._table, kept))
        except Unavailable:
            if not kept:
                raise
            self._nft.cmd(ruleset(self._table))

    async def ensure_bridge(self, *, name: str, subnet: str, gateway: str, internal: bool) -> None:
        """Make bridge ``name`` exist, up, with ``gateway``/prefix, and registered in nft.

        Idempotent. Sets route_localnet=1 on it so DNAT from 127.0.0.1 can leave through
        it. ``internal`` must be the same on every call for one bridge. Raises
        ``FailedPrecondition`` if ``name`` exists and is not a bridge.
        """
        check_bridge_name(name)
        address, prefixlen = gateway_address(subnet=subnet, gateway=gateway)
        index = await self._links.ensure_bridge(name, address=address, prefixlen=prefixlen)
        _write_sysctl(_PROC_SYS / "conf" / name / "route_localnet", "1")
        elements = bridge_elements(name=name, subnet=subnet, internal=internal)
        self._nft.cmd(render_add(self._table, elements))
        self._bridges[name] = index

    async def attach(
        self, *, container_id: str, pid: int, spec: NetworkSpec
    ) -> dict[str, list[tuple[str, int]]]:
        """Plumb the netns of ``pid`` as ``spec`` says and publish its ports.

        Bridge mode: veth (host side ``veth_prefix + id``) on ``spec.bridge``, eth0 with
        ``spec.ip``, default route via ``spec.gateway``, lo up; each published port is
        reserved by a host socket and DNATed. Returns the bound ports, e.g.
        ``{"80/tcp": [("0.0.0.0", 8080)]}``. Mode ``none``: nothing, returns ``{}``.

        The first attach to a bridge this object has not met calls :meth:`ensure_bridge`
        with the spec's bridge, subnet, gateway and internal flag (a bridge stays when an
        attach fails; it is shared). On any failure everything else done is undone
        before the error propagates. Raises ``AlreadyExists`` if the id is attached,
        ``Conflict`` for a taken port, plus the class's errors.
        """
        check_container_id(container_id)
        if spec.mode == "none":
            return {}
        if spec.mode != "bridge":
            raise InvalidArgument(f"unsupported network mode {spec.mode!r}")
        if container_id in self._attached:
            raise AlreadyExists(f"container {container_id} is already attached")
        check_bridge_name(spec.bridge)
        iface = container_interface(spec)
        wanted = [check_mapping(mapping) for mapping in spec.ports]
        att = _Attachment(veth=veth_name(self._prefix, container_id))
        bound: list[Binding] = []
        try:
            # Ports first: a taken port is the likeliest failure and the cheapest undo.
            for binding in wanted:
                taken, sock = self._ports.reserve(binding)
                att.sockets.append(sock)
                bound.append(taken)
            bridge = await self._bridge_index(spec)
            # The two hot steps go through our own small rtnetlink client (rtnl.py).
            create_veth(self._rtnl, pid=pid, veth=att.veth, master=bridge, mac=mac_for(iface.ip))
            att.veth_created = True
            # With br_netfilter, a DNAT back to the sender's own address is bridged back
            # out of the port it came in on, which a bridge refuses unless the port is in
            # hairpin mode (Docker sets it too when it runs without its userland proxy).
            _write_sysctl(Path("/sys/class/net") / att.veth / "brport" / "hairpin_mode", "1")
            configure_eth0(pid=pid, ip=iface.ip, prefixlen=iface.prefixlen, gateway=iface.gateway)
            elements = publish_elements(bound, container_ip=iface.ip, owner=container_id)
            if elements:
                self._nft.cmd(render_add(self._table, elements))
                att.elements = elements
        except BaseException as exc:
            await self._undo(att, exc)
            raise
        self._attached[container_id] = att
        return ports_dict(bound)

    def unpublish(self, *, container_id: str) -> None:
        """Release the container's host ports now: close their reservations and remove
        their DNAT elements (sub-millisecond; the veth is left to :meth:`detach`).

        Called as soon as a container stops, so a port is free again the moment a stop or
        removal returns. Idempotent.
        """
        att = self._attached.get(container_id)
        if att is None:
            return
        _close_all(att.sockets)
        att.sockets.clear()
        self._delete_elements(att.elements)
        att.elements = []

    async def detach(self, *, container_id: str) -> None:
        """Unpublish the container's ports and delete its host veth if it still exists.

        Idempotent. For an id this object never attached or restored only the veth is
        looked for; elements left by an earlier agent are removed by :meth:`cleanup`.
        """
        check_container_id(container_id)
        self.unpublish(container_id=container_id)
        att = self._attached.pop(container_id, None)
        if att is None:
            att = _Attachment(veth=veth_name(self._prefix, container_id))
        await self._links.delete(att.veth)

    async def restore(
        self,
        *,
        container_id: str,
        pid: int,
        spec: NetworkSpec,
        ports: dict[str, list[tuple[str, int]]],
    ) -> None:
        """Re-adopt a container that kept running across an agent restart.

        Re-takes the reservations of ``ports`` (as :meth:`attach` returned them), makes
        sure its map elements and its bridge's set elements exist. Idempotent. Raises
        ``FailedPrecondition`` if its netns or host veth is gone (attach it anew),
        ``Conflict`` if another process took one of its host ports meanwhile.
        """
        check_container_id(container_id)
        if container_id in self._attached or spec.mode == "none":
            return
        if spec.mode != "bridge":
            raise InvalidArgument(f"unsupported network mode {spec.mode!r}")
        iface = container_interface(spec)
        bindings = bindings_from_ports(ports)
        att = _Attachment(veth=veth_name(self._prefix, container_id), veth_created=True)
        if not Path(f"/proc/{pid}/ns/net").exists():
            raise FailedPrecondition(f"network namespace of container {container_id} is gone")
        if await self._links.get(att.veth) is None:
            raise FailedPrecondition(f"veth {att.veth} of {container_id} is gone")
        try:
            for binding in bindings:
                att.sockets.append(self._ports.reserve(binding)[1])
            published = publish_elements(bindings, container_ip=iface.ip, owner=container_id)
            registered = bridge_elements(
                name=spec.bridge, subnet=spec.subnet, internal=spec.internal
            )
            self._nft.cmd(render_add(self._table, registered + published))
        except BaseException:
            _close_all(att.sockets)
            raise
        att.elements = published
        self._attached[container_id] = att

    async def cleanup(self, *, keep: set[str]) -> None:
        """Remove this instance's veths, map elements and reservations of ids not in ``keep``.

        Also finds what an earlier agent process left: elements by their owner comment,
        veths by name prefix among the ports of this instance's bridges.
        """
        for container_id in [c for c in self._attached if c not in keep]:
            await self.detach(container_id=container_id)
        elements = self._list_elements()
        stale = [e for e in elements if e.set_name in PUBLISH_MAPS and e.comment not in keep]
        self._delete_elements(stale)
        bridges = set(self._bridges) | {str(e.key[0]) for e in elements if e.set_name == "bridges"}
        kept = {veth_name(self._prefix, c) for c in keep}
        for name in await self._links.veths_on(prefix=self._prefix, bridges=bridges):
            if name not in kept:
                await self._links.delete(name)

    async def teardown(self) -> None:
        """Delete everything of this instance: veths, reservations, the nft table, bridges."""
        await self.cleanup(keep=set())
        bridges = set(self._bridges)
        bridges.update(str(e.key[0]) for e in self._list_elements() if e.set_name == "bridges")
        self._nft.cmd(f"add table inet {self._table}\ndelete table inet {self._table}\n")
        for name in sorted(bridges):
            await self._links.delete(name)
        self._bridges.clear()

    def close(self) -> None:
        """Release in-process resources (reservation sockets, netlink, nft). Kernel state stays."""
        for att in self._attached.values():
            _close_all(att.sockets)
        self._attached.clear()
        self._links.close()
        self._rtnl.close()
        self._nft.close()

    # internals

    async def _bridge_index(self, spec: NetworkSpec) -> int:
        """Index of ``spec.bridge``, ensuring it the first time this object meets it."""
        index = self._bridges.get(spec.bridge)
        if index is None:
            await self.ensure_bridge(
                name=spec.bridge, subnet=spec.subnet, gateway=spec.gateway, internal=spec.internal
            )
            index = self._bridges[spec.bridge]
        return index

    async def _undo(self, att: _Attachment, exc: BaseException) -> None:
        """Roll back a failed attach; a failing undo step is noted on ``exc``."""
        _close_all(att.sockets)
        try:
            self._delete_elements(att.elements)
            if att.veth_created:
                await self._links.delete(att.veth)
        except DockyardError as undo_exc:
            exc.add_note(f"rollback incomplete: {undo_exc}")

    def _list_elements(self) -> list[Element]:
        """Our sets' and maps' elements; [] when the table does not exist."""
        tables = self._nft.json_cmd({"nftables": [{"list": {"tables": None}}]})
        exists = any(
            item.get("table", {}).get("family") == "inet"
            and item["table"].get("name") == self._table
            for item in tables.get("nftables", [])
        )
        if not exists:
            return []
        table = {"family": "inet", "name": self._table}
        return parse_elements(self._nft.json_cmd({"nftables": [{"list": {"table": table}}]}))

    def _delete_elements(self, elements: list[Element]) -> None:
        """Delete ``elements``, tolerating those already gone."""
        if not elements:
            return
        try:
            self._nft.cmd(render_delete(self._table, elements))
        except Unavailable:
            # One missing element fails the whole batch: delete those still there.
            present = {(e.set_name, e.key) for e in self._list_elements()}
            remaining = [e for e in elements if (e.set_name, e.key) in present]
            if remaining:
                self._nft.cmd(render_delete(self._table, remaining))
