"""Per-host network plumbing of one Dockyard instance: tenant routers, endpoints, ports.

ADR 0016: every tenant with containers on this host has a router namespace holding its
bridges, its uplink and its nft table; containers hang off those bridges by veths made
from a netlink socket held inside the router, their peers going straight into the
container's namespace. The host's root namespace keeps only the instance's root table
(uplinks, published ports, transit NAT). See :mod:`dockyard.network.router` for one
router and :mod:`dockyard.network.rules` for both tables.

Everything is named from the instance (see :mod:`dockyard.network.names`), so several
instances share a host and each cleans up by name. Nothing spawns ``ip`` or ``nft``.
Per container the cost is one netlink batch in the router, one in the container and,
with published ports, set/map elements; never a rule.

State: the kernel holds the truth (namespaces, links with the owner as alias, elements
with the owner as comment); this object keeps in memory what it attached or restored
(reservation sockets, elements, endpoints) and the routers it has open. It is bound to
the event loop that first uses it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from dockyard.core.protocol import EndpointSpec, NetworkSpec
from dockyard.network.conntrack import Conntrack
from dockyard.network.elements import delete_elements, list_elements
from dockyard.network.ingress import (
    ContainerIngress,
    EndpointIngress,
    container_ingress,
    floating_elements,
    merge_spec,
)
from dockyard.network.names import (
    check_container_id,
    check_table,
    check_transit_subnet,
    endpoint_interface,
    endpoint_veth,
    router_netns,
    router_prefix,
    uplink_name,
)
from dockyard.network.netns import NETNS_RUN_DIR, named_netns, write_sysctl
from dockyard.network.nft import Nft
from dockyard.network.ports import (
    Binding,
    PortAllocator,
    bindings_from_ports,
    check_mapping,
    ports_dict,
)
from dockyard.network.router import (
    Router,
    create_router,
    delete_links,
    list_routers,
    open_router,
    remove_router,
)
from dockyard.network.rtnl import (
    Rtnl,
    configure_interfaces,
    delete_link,
    delete_route,
    host_route,
    replace_default_route,
)
from dockyard.network.rules import (
    ENDPOINT_SETS,
    FLOATING_SETS,
    HOST_PUBLISH_MAPS,
    Element,
    host_publish_elements,
    render_add,
    root_ruleset,
    router_publish_elements,
    source_elements,
    uplink_elements,
)

__all__ = [
    "DEFAULT_TRANSIT_SUBNET",
    "EndpointWatcher",
    "HostNetwork",
    "connected_endpoints",
    "remaining_endpoints",
]

EndpointWatcher = Callable[[str, str, list[EndpointSpec]], None]
"""``(container_id, router, endpoints)``: see :meth:`HostNetwork.watch`."""

DEFAULT_TRANSIT_SUBNET = "100.64.0.0/16"
_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


@dataclass(slots=True)
class _Attachment:
    """What attach/restore made for one container, to undo it."""

    router: str  # the router namespace's name
    tenant: str  # NetworkSpec.router: whose router it is
    pid: int  # a process in the container's netns
    # The first is the primary endpoint (see remaining_endpoints), then interface order.
    endpoints: dict[str, EndpointSpec] = field(default_factory=dict)
    target_ip: str = ""  # where its published ports go (its primary endpoint's address)
    sockets: list[socket.socket] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)  # its published ports
    host_elements: list[Element] = field(default_factory=list)
    router_elements: list[Element] = field(default_factory=list)
    ingress: ContainerIngress = field(default_factory=ContainerIngress)  # as the router has it
    floating: list[Element] = field(default_factory=list)  # the root's, for its public IP
    sources: list[Element] = field(default_factory=list)  # anti-spoofing, as the router has


@dataclass(slots=True)
class _Dns:
    udp: socket.socket
    tcp: socket.socket
    on_close: Callable[[], None] | None


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
    sockets.clear()


class HostNetwork:
    """Network plumbing of one instance on this host.

    Lifecycle: ``start()`` (idempotent, also after an agent restart), then
    ``attach``/``detach`` per container run, ``connect``/``disconnect`` per endpoint of a
    running container, ``restore`` for containers that outlived a previous agent,
    ``cleanup`` to drop leftovers, ``close()`` when the agent exits (kernel state stays),
    ``teardown()`` to remove all of it. Every method runs on the one event loop; none is
    safe to call concurrently for the *same* container id. Routers and bridges without
    endpoints stay until ``cleanup``.

    Errors: ``InvalidArgument`` for malformed names and specs, ``Conflict`` for a taken
    host port, ``AlreadyExists`` for an id attached twice or a taken interface name,
    ``NotFound`` for an unknown endpoint, ``FailedPrecondition`` for a vanished
    container process, router or veth, ``Unavailable`` for netlink, nftables and sysctl
    failures.
    """

    def __init__(
        self,
        *,
        instance: str,
        transit_subnet: str = DEFAULT_TRANSIT_SUBNET,
        run_dir: Path = NETNS_RUN_DIR,
    ) -> None:
        self._table = check_table(instance)
        self._instance = instance
        self._transit = str(check_transit_subnet(transit_subnet))
        self._run_dir = run_dir
        self._nft = Nft()
        self._rtnl = Rtnl()
        self._routers: dict[str, Router] = {}
        self._attached: dict[str, _Attachment] = {}
        self._dns: dict[tuple[str, str], _Dns] = {}
        self._ports = PortAllocator()
        self._watchers: list[EndpointWatcher] = []
        self._conntrack: Conntrack | None = None  # in the host's namespace, made on first use
        # Held by cleanup and teardown while they delete routers and bridges (awaiting
        # worker threads), and by whatever plugs into a router, so that nothing is
        # plugged into what is being deleted. Plugging itself never awaits.
        self._gc = asyncio.Lock()

    @property
    def table(self) -> str:
        """The root nft table (``inet <instance>``)."""
        return self._table

    @property
    def instance(self) -> str:
        return self._instance

    @property
    def transit_subnet(self) -> str:
        return self._transit

    def attached(self) -> set[str]:
        """Ids of the containers this object attached or restored and not yet detached."""
        return set(self._attached)

    def watch(self, watcher: EndpointWatcher) -> None:
        """Call ``watcher(container_id, router, endpoints)`` whenever the endpoints a
        container has here change (attach, connect, disconnect, restore; ``[]`` at
        detach), on the event loop, after the kernel has them. ``router`` is the tenant
        (``NetworkSpec.router``). A watcher must not raise."""
        self._watchers.append(watcher)

    def _changed(self, container_id: str, att: _Attachment | None) -> None:
        endpoints = list(att.endpoints.values()) if att is not None else []
        tenant = att.tenant if att is not None else ""
        for watcher in self._watchers:
            watcher(container_id, tenant, endpoints)

    def router_name(self, router: str) -> str:
        """The namespace name of tenant ``router``'s router (under /run/netns)."""
        return router_netns(self._instance, router)

    async def start(self) -> None:
        """Enable IPv4 forwarding and (re)build the root table atomically.

        Elements already in the table (published ports and uplinks) are carried over. If
        they do not fit the table's current layout it is rebuilt empty; ``restore`` and
        the routers' reopening re-add them.
        """
        write_sysctl(_IP_FORWARD, "1")
        transit = ipaddress.ip_network(self._transit)
        kept = [
            e
            for e in list_elements(self._nft, self._table)
            if e.set_name == "uplinks"
            or e.set_name in FLOATING_SETS
            # A published port goes to a router; one to anything else is of an older
            # layout (a container address on the old system bridge).
            or (e.set_name in HOST_PUBLISH_MAPS and ipaddress.ip_address(e.value[0]) in transit)
        ]
        ruleset = root_ruleset(self._table, transit=self._transit)
        try:
            self._nft.cmd(ruleset + render_add(self._table, kept))
        except Unavailable:
            if not kept:
                raise
            self._nft.cmd(ruleset)

    async def attach(
        self, *, container_id: str, pid: int, spec: NetworkSpec
    ) -> dict[str, list[tuple[str, int]]]:
        """Plumb the netns of ``pid`` as ``spec`` says and publish its ports.

        Mode ``tenant``: per endpoint, in order, a veth on its bridge in the router of
        tenant ``spec.router`` (router and bridge made on first use), the container side
        named ``endpoint.interface`` with its address; the default route through the
        first endpoint's gateway; lo up. Each published port is reserved by a host socket
        and DNATed (root: to the router; router: to the first endpoint's address).
        Returns the bound ports, e.g. ``{"80/tcp": [("0.0.0.0", 8080)]}``. The endpoints'
        security groups and rules, and the public IP, are applied as :meth:`update`
        says. Modes ``none`` and ``container``: nothing, returns ``{}``.

        On any failure everything made for the container is undone before the error
        propagates (a router or bridge it made stays until cleanup). Raises
        ``AlreadyExists`` if the id is attached, ``Conflict`` for a taken port, plus the
        class's errors.
        """
        check_container_id(container_id)
        if spec.mode in ("none", "container"):
            return {}
        if spec.mode != "tenant":
            raise InvalidArgument(f"unsupported network mode {spec.mode!r}")
        if container_id in self._attached:
            raise AlreadyExists(f"container {container_id} is already attached")
        if not spec.endpoints:
            raise InvalidArgument("a container on tenant networks needs at least one endpoint")
        _check_endpoints(spec.endpoints)
        name = self.router_name(spec.router)
        wanted = [check_mapping(mapping) for mapping in spec.ports]
        ingress = container_ingress(spec, spec.endpoints, target=spec.endpoints[0].ip)
        att = _Attachment(router=name, tenant=spec.router, pid=pid, target_ip=spec.endpoints[0].ip)
        bound: list[Binding] = []
        try:
            # Ports first: a taken port is the likeliest failure and the cheapest undo.
            for binding in wanted:
                taken, sock = self._ports.reserve(binding)
                att.sockets.append(sock)
                bound.append(taken)
            async with self._gc:
                router = self._router(name, create=True)
                self._plug(router, att, container_id=container_id, pid=pid, new=spec.endpoints)
                self._publish(router, att, bound, container_id=container_id)
                self._set_ingress(router, att, container_id=container_id, new=ingress)
        except BaseException as exc:
            await self._undo(att, exc, container_id=container_id)
            raise
        self._attached[container_id] = att
        self._changed(container_id, att)
        return ports_dict(bound)

    async def connect(self, *, container_id: str, pid: int, endpoint: EndpointSpec) -> None:
        """Plug one more endpoint into running container ``container_id`` (its netns is
        that of ``pid``), with its security groups and rules. It becomes the primary
        endpoint as :func:`connected_endpoints` says (the only one, or the first on a
        network that is not internal): then it gets the default route (replacing one
        through an internal network) and the published ports and public IP go to its
        address. On failure nothing of its veth is left.

        Raises ``FailedPrecondition`` if the container is not attached here on tenant
        networks, ``AlreadyExists`` if the endpoint id or interface name is taken.
        """
        att = self._tenant_attachment(container_id)
        _check_endpoints([*att.endpoints.values(), endpoint])
        ordered = connected_endpoints(list(att.endpoints.values()), endpoint)
        primary = ordered[0] is endpoint
        ingress = replace(
            att.ingress, endpoints=(*att.ingress.endpoints, _endpoint_ingress(endpoint))
        )
        if primary:
            ingress = _retarget(ingress, endpoint.ip)
        async with self._gc:
            router = self._router(att.router, create=True)
            try:
                # _plug adds the default route only through a container's only endpoint.
                others = bool(att.endpoints)
                self._plug(router, att, container_id=container_id, pid=pid, new=[endpoint])
                if primary and others:
                    gateway = endpoint_interface(endpoint).gateway
                    replace_default_route(pid, interface=endpoint.interface, gateway=gateway)
                self._set_ingress(
                    router,
                    att,
                    container_id=container_id,
                    new=ingress,
                    target=endpoint.ip if primary else None,
                )
            except BaseException as exc:
                await self._unplug(att, [endpoint.endpoint_id], exc)
                raise
        att.endpoints = {e.endpoint_id: e for e in ordered}
        att.pid = pid
        self._changed(container_id, att)

    async def disconnect(self, *, container_id: str, endpoint_id: str) -> None:
        """Unplug endpoint ``endpoint_id`` of container ``container_id`` (both sides of its
        veth go, its security-group elements too; the container keeps its other
        interfaces).

        If it was the primary endpoint (the first: the default route, the address of the
        published ports and the public IP), the next primary is chosen as
        :func:`remaining_endpoints` says, as Docker moves the gateway to another network:
        the default route goes through its gateway unless its network is internal (then
        the container has none), and its published ports and public IP go to its address
        in one router transaction. The route is moved first, in one request, so egress
        never stops; the veth goes last.

        Raises ``FailedPrecondition`` if the container is not attached here on tenant
        networks, ``NotFound`` if it has no such endpoint.
        """
        att = self._tenant_attachment(container_id)
        if endpoint_id not in att.endpoints:
            raise NotFound(f"container {container_id} has no endpoint {endpoint_id}")
        gone = att.endpoints[endpoint_id].ip
        kept = remaining_endpoints(list(att.endpoints.values()), endpoint_id)
        ingress = replace(
            att.ingress, endpoints=tuple(e for e in att.ingress.endpoints if e.ip != gone)
        )
        primary = kept[0] if kept and next(iter(att.endpoints)) == endpoint_id else None
        if primary is not None:
            ingress = _retarget(ingress, primary.ip)
            if not primary.internal:
                gateway = endpoint_interface(primary).gateway
                replace_default_route(att.pid, interface=primary.interface, gateway=gateway)
        async with self._gc:
            router = self._routers.get(att.router)
            self._set_ingress(
                router,
                att,
                container_id=container_id,
                new=ingress,
                target=primary.ip if primary is not None else None,
            )
        path = named_netns(att.router, run_dir=self._run_dir)
        await asyncio.to_thread(delete_links, path, [endpoint_veth(endpoint_id)])
        att.endpoints = {e.endpoint_id: e for e in kept}
        self._changed(container_id, att)

    def endpoints(self, container_id: str) -> list[EndpointSpec]:
        """The endpoints container ``container_id`` has here (attached or restored)."""
        att = self._attached.get(container_id)
        return list(att.endpoints.values()) if att is not None else []

    async def update(self, *, container_id: str, spec: NetworkSpec) -> None:
        """Apply ``spec``'s security groups, ingress rules, public IP and DNS names to attached
        container ``container_id`` (``PUT /v1/containers/{id}/network``).

        Its endpoints are matched by id (:func:`~dockyard.network.ingress.merge_spec`: one
        ``spec`` lacks keeps what it has, one only ``spec`` has is ignored); ``spec.ports``
        say which public ports are ``-p`` publishes. What differs is changed in one
        transaction in the router. A public IP the container loses is unrouted, its
        elements deleted and then its conntrack entries, so its traffic stops at once; a
        new one is routed to the router (a /32 in the host's main table) and DNATed to
        the first endpoint's address, which leaves from it. Idempotent.

        Raises ``FailedPrecondition`` unless the container is attached here on tenant
        networks (or if its router is gone), ``InvalidArgument`` for malformed rules,
        groups or addresses, ``Unavailable`` for kernel errors (retrying is safe).
        """
        att = self._tenant_attachment(container_id)
        endpoints = merge_spec(replace(spec, endpoints=tuple(att.endpoints.values())), spec)
        ingress = container_ingress(spec, endpoints.endpoints, target=att.target_ip)
        async with self._gc:
            router = self._router(att.router, create=False)
            self._set_ingress(router, att, container_id=container_id, new=ingress)
        att.endpoints = {e.endpoint_id: e for e in endpoints.endpoints}
        self._changed(container_id, att)  # names may have changed (a rename)

    def unpublish(self, *, container_id: str) -> None:
        """Release the container's host ports now: close their reservations and remove
        their DNAT elements; take its public IP off (elements, route, conntrack entries).
        About a millisecond; the veths and security groups are left to :meth:`detach`.

        Called as soon as a container stops, so a port or address is free again the
        moment a stop or removal returns. Idempotent.
        """
        att = self._attached.get(container_id)
        if att is None:
            return
        if att.ingress.public is not None or att.floating:
            self._set_ingress(
                self._routers.get(att.router),
                att,
                container_id=container_id,
                new=replace(att.ingress, public=None),
            )
        _close_all(att.sockets)
        att.bindings = []
        delete_elements(self._nft, self._table, att.host_elements)
        att.host_elements = []
        router = self._routers.get(att.router)
        if router is not None:
            router.delete_elements(att.router_elements)
        att.router_elements = []

    async def detach(self, *, container_id: str) -> None:
        """Unpublish the container's ports, delete its security-group elements and its
        veths if they still exist.

        Idempotent. For an id this object never attached or restored nothing is looked
        for: what an earlier agent left is found by :meth:`cleanup`.
        """
        check_container_id(container_id)
        self.unpublish(container_id=container_id)
        att = self._attached.get(container_id)
        if att is None:
            return
        self._set_ingress(
            self._routers.get(att.router), att, container_id=container_id, new=ContainerIngress()
        )
        del self._attached[container_id]
        self._changed(container_id, None)
        if not att.endpoints:
            return
        veths = [endpoint_veth(e) for e in att.endpoints]
        path = named_netns(att.router, run_dir=self._run_dir)
        # The container's netns usually died first and took the veths with it; if not,
        # the kernel needs about 20 ms per veth, so it happens in a worker thread.
        await asyncio.to_thread(delete_links, path, veths)

    async def restore(
        self,
        *,
        container_id: str,
        pid: int,
        spec: NetworkSpec,
        ports: dict[str, list[tuple[str, int]]],
    ) -> None:
        """Re-adopt a container that kept running across an agent restart.

        Re-opens its router, checks its veths, re-takes the reservations of ``ports`` (as
        :meth:`attach` returned them) and makes sure its elements (published ports,
        security groups, public IP and its route) exist. Idempotent.
        Raises ``FailedPrecondition`` if its netns, router or one of its veths is gone
        (attach it anew), ``Conflict`` if another process took one of its host ports.
        """
        check_container_id(container_id)
        if container_id in self._attached or spec.mode in ("none", "container"):
            return
        if spec.mode != "tenant":
            raise InvalidArgument(f"unsupported network mode {spec.mode!r}")
        _check_endpoints(spec.endpoints)
        name = self.router_name(spec.router)
        bindings = bindings_from_ports(ports)
        target = spec.endpoints[0].ip if spec.endpoints else ""
        ingress = container_ingress(spec, spec.endpoints, target=target)
        if not Path(f"/proc/{pid}/ns/net").exists():
            raise FailedPrecondition(f"network namespace of container {container_id} is gone")
        async with self._gc:
            router = self._router(name, create=False)
            present = {link.name for link in router.endpoint_links()}
            for endpoint in spec.endpoints:
                veth = endpoint_veth(endpoint.endpoint_id)
                if veth not in present:
                    raise FailedPrecondition(f"veth {veth} of {container_id} is gone")
            att = _Attachment(
                router=name,
                tenant=spec.router,
                pid=pid,
                endpoints={e.endpoint_id: e for e in spec.endpoints},
                target_ip=target,
            )
            try:
                for binding in bindings:
                    att.sockets.append(self._ports.reserve(binding)[1])
                for endpoint in spec.endpoints:
                    router.ensure_bridge(endpoint)
                self._publish(router, att, bindings, container_id=container_id)
                self._set_ingress(router, att, container_id=container_id, new=ingress)
            except BaseException:
                _close_all(att.sockets)
                raise
        self._attached[container_id] = att
        self._changed(container_id, att)

    async def cleanup(self, *, keep: set[str]) -> None:
        """Remove what containers not in ``keep`` left: their veths, elements and
        reservations, the routes and conntrack entries of their public IPs; bridges left
        without endpoints; routers left without endpoints; rule profiles and tags no
        endpoint uses.

        Works from the kernel, so it also finds what an earlier agent process left:
        veths by their alias, elements by their owner comment, routers by name, routes
        by the uplink they go through.
        """
        for container_id in [c for c in self._attached if c not in keep]:
            await self.detach(container_id=container_id)
        async with self._gc:
            for name in [n for n, r in self._routers.items() if not r.path.exists()]:
                await self._remove_router(name)  # deleted behind our back
            root = list_elements(self._nft, self._table)
            stale = [
                e
                for e in root
                if (e.set_name in HOST_PUBLISH_MAPS or e.set_name in FLOATING_SETS)
                and e.comment not in keep
            ]
            self._drop_floating(stale)
            delete_elements(self._nft, self._table, stale)
            for name in list_routers(router_prefix(self._instance), self._run_dir):
                await self._sweep_router(name, keep)
            await self._sweep_uplinks()
            kept = {str(e.key[0]) for e in root if e.set_name == "floating" and e.comment in keep}
            self._sweep_routes(kept)

    async def teardown(self) -> None:
        """Delete everything of this instance: routers (with their bridges and veths),
        uplinks, reservations, the root table."""
        await self.cleanup(keep=set())
        async with self._gc:
            self._nft.cmd(f"add table inet {self._table}\ndelete table inet {self._table}\n")

    def router_sockets(
        self, router: str, gateway: str, *, on_close: Callable[[], None] | None = None
    ) -> tuple[socket.socket, socket.socket]:
        """UDP and TCP sockets inside tenant ``router``'s router namespace, bound to
        ``gateway``:53 (the TCP one listening), non-blocking: for the embedded DNS server.

        They belong to this object: it closes them when the gateway's bridge or the
        router is deleted, or at :meth:`close`, calling ``on_close()`` first (so the
        server can drop them from its event loop). Raises ``NotFound`` unless the router
        is open here (after an attach or restore) with a bridge of that gateway,
        ``AlreadyExists`` if sockets for it were handed out and are still open.
        """
        name = self.router_name(router)
        found = self._routers.get(name)
        if found is None or gateway not in found.gateways.values():
            raise NotFound(f"no bridge with gateway {gateway} in router {name}")
        if (name, gateway) in self._dns:
            raise AlreadyExists(f"the DNS sockets of {gateway} in {name} are handed out")
        udp, tcp = found.dns_sockets(gateway)
        self._dns[(name, gateway)] = _Dns(udp, tcp, on_close)
        return udp, tcp

    def close(self) -> None:
        """Release in-process resources (reservations, DNS and netlink sockets, nft
        contexts). Kernel state stays."""
        for att in self._attached.values():
            _close_all(att.sockets)
        self._attached.clear()
        for name in list(self._routers):
            self._close_router(name)
        if self._conntrack is not None:
            self._conntrack.close()
            self._conntrack = None
        self._rtnl.close()
        self._nft.close()

    # internals

    def _tenant_attachment(self, container_id: str) -> _Attachment:
        check_container_id(container_id)
        att = self._attached.get(container_id)
        if att is None:
            raise FailedPrecondition(
                f"container {container_id} is not attached to tenant networks on this host"
            )
        return att

    def _router(self, name: str, *, create: bool) -> Router:
        """The open router ``name``: opened, or made if ``create``. Never awaits."""
        router = self._routers.get(name)
        if router is not None:
            if router.path.exists():
                return router
            self._close_router(name)  # deleted behind our back (ip netns del): make anew
        path = named_netns(name, run_dir=self._run_dir)
        uplink = uplink_name(name)
        router = None
        if path.exists():
            try:
                router = open_router(name=name, path=path, uplink=uplink)
            except FailedPrecondition:
                if not path.exists() or not create:
                    raise
                remove_router(path, uplink)  # a creation cut short: start over
        if router is None:
            if not create:
                raise FailedPrecondition(f"router namespace {name} is gone")
            # An uplink of that name outlived its namespace's file (something still held
            # the namespace): it is stale. Usually there is none: ENODEV at once.
            delete_links(None, [uplink])
            router = create_router(
                name=name, path=path, uplink=uplink, transit=self._transit, root=self._rtnl
            )
        else:
            # Carried over by start(), unless the root table was rebuilt.
            write_sysctl(Path(f"/proc/sys/net/ipv4/conf/{uplink}/route_localnet"), "1")
        try:
            self._nft.cmd(render_add(self._table, uplink_elements(uplink=uplink, router=name)))
        except BaseException:
            router.close()
            raise
        self._routers[name] = router
        return router

    def _plug(
        self,
        router: Router,
        att: _Attachment,
        *,
        container_id: str,
        pid: int,
        new: Sequence[EndpointSpec],
    ) -> None:
        """Veths for ``new`` into ``pid``'s netns, then their addresses (and the default
        route if the container had no endpoint) in one batch in there. Each endpoint is
        recorded in ``att`` as soon as its veth exists, so an undo finds it. Never awaits.
        """
        first = not att.endpoints
        interfaces: list[tuple[str, str, int, str]] = []
        for endpoint in new:
            iface = endpoint_interface(endpoint)
            if endpoint.bridge not in router.bridges:
                self._drop_stale_bridges(router, att.router, endpoint)
            bridge = router.ensure_bridge(endpoint)
            try:
                router.plug(container_id=container_id, pid=pid, endpoint=endpoint, bridge=bridge)
            except AlreadyExists:
                # A veth of this container's previous run that nobody deleted (the agent
                # died before detaching it): delete it and try once more.
                if not self._drop_stale_veth(router, endpoint, container_id):
                    raise
                router.plug(container_id=container_id, pid=pid, endpoint=endpoint, bridge=bridge)
            att.endpoints[endpoint.endpoint_id] = endpoint
            gateway = iface.gateway if first and not interfaces else ""
            interfaces.append((iface.name, iface.ip, iface.prefixlen, gateway))
        configure_interfaces(pid, interfaces)

    def _drop_stale_bridges(self, router: Router, name: str, endpoint: EndpointSpec) -> None:
        """Delete the idle bridges of removed networks that would clash with
        ``endpoint``'s new bridge: a gateway inside its subnet (a tenant's networks never
        overlap, so such a bridge is a removed network's, left until cleanup; its subnet
        came back to a new network). The router would route the subnet to both, and its
        DNS sockets hold the gateway. Blocks for the kernel's bridge deletion (about
        20 ms, rare). Raises ``Conflict`` if such a bridge still has endpoints here."""
        subnet = ipaddress.ip_network(endpoint.subnet)
        stale = [
            bridge
            for bridge, gateway in router.gateways.items()
            if bridge != endpoint.bridge and ipaddress.ip_address(gateway) in subnet
        ]
        if not stale:
            return
        in_use = {
            e.bridge
            for a in self._attached.values()
            if a.router == name
            for e in a.endpoints.values()
        }
        for bridge in stale:
            if bridge in in_use:
                raise Conflict(f"bridge {bridge} in {name} still has endpoints in {subnet}")
        for bridge in stale:
            self._close_dns(name, router.gateways.get(bridge, ""))
            router.rtnl.transact([delete_link(bridge)], f"delete {bridge}", ignore=(errno.ENODEV,))
            router.delete_elements(
                [e for e in router.elements() if e.comment == bridge and e.set_name != "publish"]
            )
            router.forget_bridge(bridge)

    def _drop_stale_veth(self, router: Router, endpoint: EndpointSpec, container_id: str) -> bool:
        veth = endpoint_veth(endpoint.endpoint_id)
        for link in router.endpoint_links():
            if link.name == veth and link.alias == container_id:
                delete_links(router.path, [veth])
                return True
        return False

    def _publish(
        self, router: Router, att: _Attachment, bound: Sequence[Binding], *, container_id: str
    ) -> None:
        """DNAT ``bound`` to the container: router elements, then root elements."""
        if not bound:
            return
        att.bindings = list(bound)
        inner = router_publish_elements(bound, container_ip=att.target_ip, owner=container_id)
        try:
            router.add_elements(inner)
        except Unavailable as exc:
            if "File exists" not in exc.message:
                raise
            # (protocol, host port) is the router's key: one tenant's container already
            # has this host port on another host address.
            ports = ", ".join(f"{b.host_port}/{b.protocol}" for b in bound)
            raise Conflict(
                f"host port {ports} is already published by another container of the tenant"
            ) from exc
        att.router_elements = inner
        outer = host_publish_elements(bound, router_ip=router.ip, owner=container_id)
        self._nft.cmd(render_add(self._table, outer))
        att.host_elements = outer

    def _set_ingress(
        self,
        router: Router | None,
        att: _Attachment,
        *,
        container_id: str,
        new: ContainerIngress,
        target: str | None = None,
    ) -> None:
        """Take the container's security-group and public-IP state from ``att.ingress``
        to ``new``: the router's elements in one transaction, then the root's elements
        and the route of its public IP. A public IP it loses is unrouted first and loses
        its conntrack entries last, once nothing can make new ones. Never awaits.

        ``target``: the published ports' new address (``att.target_ip`` becomes it), their
        router elements changed in the same transaction; None leaves them.

        ``router`` is None when the router is gone (what was in it went with it): then a
        public IP cannot be added (``FailedPrecondition``). On failure ``att`` records
        what the kernel has, so calling again (or with an empty ``new``) converges.
        """
        uplink = uplink_name(att.router)
        public = new.public
        wanted = (
            floating_elements(address=public.address, uplink=uplink, owner=container_id)
            if public is not None
            else []
        )
        lost = {str(e.key[0]) for e in att.floating if e.set_name == "floating"}
        if att.ingress.public is not None:
            lost.add(att.ingress.public.address)
        if public is not None:
            lost.discard(public.address)
        if att.floating and att.floating != wanted:
            self._drop_floating(att.floating)
            delete_elements(self._nft, self._table, att.floating)
            att.floating = []
        # What each endpoint may send as (anti-spoofing, ADR 0022) follows its ingress
        # state: an endpoint of att whose address ``new`` has (see _source_elements).
        sources = _source_elements(att, new, owner=container_id) if router is not None else []
        publish = att.router_elements
        if target is not None and att.router_elements:
            publish = router_publish_elements(att.bindings, container_ip=target, owner=container_id)
        if router is not None:
            change = router.ingress.change(owner=container_id, old=att.ingress, new=new)
            stale = [e for e in att.router_elements if e not in publish]
            router.replace_elements(
                [*change.delete, *(e for e in att.sources if e not in sources), *stale],
                [
                    *change.add,
                    *(e for e in sources if e not in att.sources),
                    *(e for e in publish if e not in att.router_elements),
                ],
            )
            change.commit()
        elif public is not None:
            raise FailedPrecondition(f"router namespace {att.router} is gone")
        if target is not None:
            att.target_ip = target
            att.router_elements = publish
        att.ingress = new
        att.sources = sources
        for address in sorted(lost):
            if router is not None:
                router.conntrack().delete_address(address)
            self._root_conntrack().delete_address(address)
        if public is not None and router is not None and att.floating != wanted:
            self._nft.cmd(render_add(self._table, wanted))
            try:
                index = self._rtnl.link_index(uplink)
                self._rtnl.transact(
                    [host_route(public.address, gateway=router.ip, oif=index)],
                    f"route {public.address} to {att.router}",
                )
            except BaseException as exc:
                try:
                    delete_elements(self._nft, self._table, wanted)
                except DockyardError as undo_exc:
                    exc.add_note(f"rollback incomplete: {undo_exc}")
                raise
            att.floating = wanted

    def _drop_floating(self, elements: Sequence[Element]) -> None:
        """Delete the routes of the public IPs that root ``elements`` record
        (``floating_via``: the address and the uplink it is routed into); the routes of
        an uplink that is gone went with it."""
        for e in elements:
            if e.set_name != "floating_via":
                continue
            address, uplink = str(e.key[0]), str(e.key[1])
            try:
                index = self._rtnl.link_index(uplink)
            except Unavailable:
                continue
            self._rtnl.transact(
                [delete_route(address, oif=index)],
                f"delete the route of {address}",
                ignore=(errno.ESRCH,),
            )
        for address in {str(e.key[0]) for e in elements if e.set_name == "floating"}:
            self._root_conntrack().delete_address(address)

    def _sweep_routes(self, kept: set[str]) -> None:
        """Host routes (/32) into this instance's uplinks for addresses not in ``kept``
        (a crash between a route and its elements)."""
        ours = {uplink_name(n) for n in list_routers(router_prefix(self._instance), self._run_dir)}
        indexes = {link.index for link in self._rtnl.links() if link.name in ours}
        stale = [
            route
            for route in self._rtnl.routes()
            if route.oif in indexes and route.prefixlen == 32 and route.dst not in kept
        ]
        if stale:
            self._rtnl.transact(
                [delete_route(route.dst, oif=route.oif) for route in stale],
                "delete stale routes of public IPs",
                ignore=(errno.ESRCH,),
            )

    def _root_conntrack(self) -> Conntrack:
        if self._conntrack is None:
            self._conntrack = Conntrack()
        return self._conntrack

    async def _undo(self, att: _Attachment, exc: BaseException, *, container_id: str) -> None:
        """Roll back a failed attach; a failing undo step is noted on ``exc``."""
        _close_all(att.sockets)
        try:
            self._set_ingress(
                self._routers.get(att.router),
                att,
                container_id=container_id,
                new=ContainerIngress(),
            )
            delete_elements(self._nft, self._table, att.host_elements)
            router = self._routers.get(att.router)
            if router is not None:
                router.delete_elements(att.router_elements)
        except DockyardError as undo_exc:
            exc.add_note(f"rollback incomplete: {undo_exc}")
        await self._unplug(att, list(att.endpoints), exc)

    async def _unplug(self, att: _Attachment, endpoint_ids: list[str], exc: BaseException) -> None:
        """Delete the veths of ``endpoint_ids`` that ``att`` records (after a failure)."""
        made = [e for e in endpoint_ids if e in att.endpoints]
        if not made:
            return
        path = named_netns(att.router, run_dir=self._run_dir)
        try:
            await asyncio.to_thread(delete_links, path, [endpoint_veth(e) for e in made])
        except DockyardError as undo_exc:
            exc.add_note(f"rollback incomplete: {undo_exc}")
            return
        for endpoint_id in made:
            att.endpoints.pop(endpoint_id, None)

    async def _sweep_router(self, name: str, keep: set[str]) -> None:
        """Cleanup of one router: veths and elements of containers not in ``keep``, then
        bridges without ports; the whole router if no endpoint remains."""
        try:
            router = self._router(name, create=False)
        except FailedPrecondition:
            await self._remove_router(name)  # a creation cut short
            return
        veths = router.endpoint_links()
        kept = [link for link in veths if link.alias in keep]
        if not kept:
            await self._remove_router(name)
            return
        elements = router.elements()
        owned = ("publish", *ENDPOINT_SETS)
        stale = [e for e in elements if e.set_name in owned and e.comment not in keep]
        router.delete_elements(stale)
        for address in {str(e.key[0]) for e in stale if e.set_name == "fip_host"}:
            router.conntrack().delete_address(address)
        dropped = set(stale)
        router.delete_elements(router.ingress.sweep([e for e in elements if e not in dropped]))
        gone = [link.name for link in veths if link.alias not in keep]
        await asyncio.to_thread(delete_links, router.path, gone)
        used = {link.master for link in kept}
        idle = [bridge for bridge, index in router.bridges.items() if index not in used]
        for bridge in idle:
            self._close_dns(name, router.gateways.get(bridge, ""))
        await asyncio.to_thread(delete_links, router.path, idle)
        for bridge in idle:
            router.delete_elements(
                [e for e in router.elements() if e.comment == bridge and e.set_name != "publish"]
            )
            router.forget_bridge(bridge)

    async def _sweep_uplinks(self) -> None:
        """Uplink elements (and links) of routers whose namespace is gone."""
        present = set(list_routers(router_prefix(self._instance), self._run_dir))
        stale = [
            e
            for e in list_elements(self._nft, self._table)
            if e.set_name == "uplinks" and e.comment not in present
        ]
        if stale:
            await asyncio.to_thread(delete_links, None, [str(e.key[0]) for e in stale])
            delete_elements(self._nft, self._table, stale)

    async def _remove_router(self, name: str) -> None:
        """Delete router ``name``: its sockets closed, its uplink, its namespace."""
        self._close_router(name)
        uplink = uplink_name(name)
        path = named_netns(name, run_dir=self._run_dir)
        await asyncio.to_thread(remove_router, path, uplink)
        delete_elements(self._nft, self._table, uplink_elements(uplink=uplink, router=name))

    def _close_router(self, name: str) -> None:
        for router_name, gateway in [k for k in self._dns if k[0] == name]:
            self._close_dns(router_name, gateway)
        router = self._routers.pop(name, None)
        if router is not None:
            router.close()

    def _close_dns(self, name: str, gateway: str) -> None:
        dns = self._dns.pop((name, gateway), None)
        if dns is None:
            return
        try:
            if dns.on_close is not None:
                dns.on_close()
        finally:
            dns.udp.close()
            dns.tcp.close()


def _source_elements(att: _Attachment, new: ContainerIngress, *, owner: str) -> list[Element]:
    """The anti-spoofing elements of the endpoints of ``att`` whose address ``new``
    has: every endpoint of an attach, connect or restore (``att.endpoints`` records a veth
    as soon as it exists), none at a detach or undo (``new`` is empty), all but the
    leaving one at a disconnect (which unplugs it after)."""
    kept = {e.ip for e in new.endpoints}
    return [
        element
        for endpoint in att.endpoints.values()
        if endpoint.ip in kept
        for element in source_elements(
            veth=endpoint_veth(endpoint.endpoint_id), ip=endpoint.ip, owner=owner
        )
    ]


def remaining_endpoints(
    endpoints: Sequence[EndpointSpec], endpoint_id: str
) -> tuple[EndpointSpec, ...]:
    """The endpoints left when ``endpoint_id`` goes, the primary one first.

    The first endpoint is the primary one (the default route, the address published
    ports and the public IP reach). When it goes, the first remaining endpoint on a
    network that is not internal takes its place, as Docker moves the gateway to a
    network that can provide one; if every remaining one is internal, the first of them
    (the container then has no default route). Others keep their order. The agent's
    record and the controller's keep endpoints in this order, so a restart or restore
    finds the same primary.
    """
    kept = [e for e in endpoints if e.endpoint_id != endpoint_id]
    if not endpoints or endpoints[0].endpoint_id != endpoint_id:
        return tuple(kept)
    routed = next((e for e in kept if not e.internal), None)
    if routed is None:
        return tuple(kept)
    return (routed, *(e for e in kept if e is not routed))


def connected_endpoints(
    endpoints: Sequence[EndpointSpec], endpoint: EndpointSpec
) -> tuple[EndpointSpec, ...]:
    """The endpoints after ``endpoint`` is connected, the primary one first: it comes
    last, unless no endpoint was on a network that is not internal and its own is not
    internal (it gives the container its default route: Docker makes such a network the
    gateway network) or there was none; then it comes first."""
    routed = any(not e.internal for e in endpoints)
    if not endpoints or (not routed and not endpoint.internal):
        return (endpoint, *endpoints)
    return (*endpoints, endpoint)


def _retarget(ingress: ContainerIngress, target: str) -> ContainerIngress:
    """``ingress`` with its public IP (if any) reaching ``target``."""
    if ingress.public is None:
        return ingress
    return replace(ingress, public=replace(ingress.public, target=target))


def _endpoint_ingress(endpoint: EndpointSpec) -> EndpointIngress:
    """An endpoint's share of its container's ingress state (its groups: the
    container's)."""
    (found,) = container_ingress(NetworkSpec(), [endpoint], target="").endpoints
    return found


def _check_endpoints(endpoints: Sequence[EndpointSpec]) -> None:
    """Every endpoint valid; ids and interface names distinct."""
    ids: set[str] = set()
    names: set[str] = set()
    for endpoint in endpoints:
        iface = endpoint_interface(endpoint)
        if endpoint.endpoint_id in ids:
            raise AlreadyExists(f"endpoint {endpoint.endpoint_id} is already plugged")
        if iface.name in names:
            raise AlreadyExists(f"interface {iface.name} is already taken")
        ids.add(endpoint.endpoint_id)
        names.add(iface.name)
