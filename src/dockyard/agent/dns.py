"""The agent's embedded DNS: one server per tenant network bridge on this host, answering
from the endpoints plumbed here (ADR 0016).

:class:`AgentDns` watches :class:`~dockyard.network.host.HostNetwork` (``watch``): each
time a container's endpoints change it re-indexes them and makes sure a
:class:`~dockyard.network.dns.DnsServer` answers at every gateway they use (sockets bound
to ``<gateway>:53`` inside the tenant's router namespace, owned by ``HostNetwork``, which
closes them with the bridge or router; the server is closed first through ``on_close``).

What a container may resolve (:meth:`AgentDns.lookup`): the asking container is known by
its source address within its tenant's router (addresses are unique within a tenant;
each tenant's router is its own namespace, so no other tenant can ask from it). It
resolves the names of the endpoints on *its* networks: a container's name, aliases and
short id on that network (``EndpointSpec.names``), and nothing on the NAT-only
``bridge`` network (isolated: Docker's default bridge has no names either). Other names
go to the host's resolvers, unless every network of the container is internal: then
they fail (SERVFAIL, Docker's answer since CVE-2024-29018). A source address that is no
endpoint of the tenant gets no answer from the index and no forwarding.

Single host: the index holds what this agent plumbed. The cluster issue adds the
endpoints of other hosts (pushed by the controller) to the same index.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from dockyard.core.errors import DockyardError
from dockyard.core.protocol import EndpointSpec
from dockyard.network.dns import DnsServer, Lookup
from dockyard.network.host import HostNetwork

__all__ = ["AgentDns"]

log = logging.getLogger("dockyard.agent.dns")


@dataclass(slots=True)
class _Tenant:
    """The index of one tenant's endpoints on this host."""

    by_address: dict[str, tuple[str, EndpointSpec]] = field(default_factory=dict)
    """endpoint address -> (container id, endpoint)"""
    names: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """network id -> lowercase name -> addresses (in the order their containers came)"""


class _RouterResolver:
    """The :class:`~dockyard.network.dns.Resolver` of one tenant's servers."""

    def __init__(self, dns: AgentDns, tenant: str) -> None:
        self._dns = dns
        self._tenant = tenant

    def lookup(self, *, client: str, server: str, name: str) -> Lookup:
        return self._dns.lookup(self._tenant, client=client, name=name)

    def reverse(self, *, client: str, server: str, address: str) -> Lookup:
        return self._dns.reverse(self._tenant, client=client, address=address)


class AgentDns:
    """Lifecycle: made with the agent's ``HostNetwork`` (it registers as its watcher),
    used on the agent's event loop, :meth:`close` when the agent stops. ``upstreams``
    (``host:port`` strings) default to the host's resolv.conf at each server's start."""

    def __init__(self, network: HostNetwork, *, upstreams: list[str] | None = None) -> None:
        self._network = network
        self._upstreams = upstreams
        self._containers: dict[str, tuple[str, list[EndpointSpec]]] = {}
        self._tenants: dict[str, _Tenant] = defaultdict(_Tenant)
        self._servers: dict[tuple[str, str], DnsServer] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self._resolvers: dict[str, _RouterResolver] = {}
        self._closed = False
        network.watch(self.endpoints_changed)

    # the index ----------------------------------------------------------------------------

    def endpoints_changed(
        self, container_id: str, router: str, endpoints: list[EndpointSpec]
    ) -> None:
        """``HostNetwork``'s watcher: re-index the container, serve its gateways."""
        old = self._containers.pop(container_id, None)
        if old is not None:
            self._unindex(container_id, *old)
        if endpoints:
            self._containers[container_id] = (router, list(endpoints))
            self._index(container_id, router, endpoints)
            for endpoint in endpoints:
                self._serve(router, endpoint.gateway)

    def _index(self, container_id: str, router: str, endpoints: list[EndpointSpec]) -> None:
        tenant = self._tenants[router]
        for endpoint in endpoints:
            tenant.by_address[endpoint.ip] = (container_id, endpoint)
            if endpoint.isolated:
                continue
            names = tenant.names.setdefault(endpoint.network_id, {})
            for name in endpoint.names:
                addresses = names.setdefault(name.lower(), [])
                if endpoint.ip not in addresses:
                    addresses.append(endpoint.ip)

    def _unindex(self, container_id: str, router: str, endpoints: list[EndpointSpec]) -> None:
        tenant = self._tenants.get(router)
        if tenant is None:
            return
        for endpoint in endpoints:
            if tenant.by_address.get(endpoint.ip, ("",))[0] == container_id:
                del tenant.by_address[endpoint.ip]
            names = tenant.names.get(endpoint.network_id, {})
            for name in endpoint.names:
                addresses = names.get(name.lower())
                if addresses is not None and endpoint.ip in addresses:
                    addresses.remove(endpoint.ip)
                    if not addresses:
                        del names[name.lower()]
            if not names:
                tenant.names.pop(endpoint.network_id, None)
        if not tenant.by_address:
            del self._tenants[router]

    # answers ------------------------------------------------------------------------------

    def lookup(self, router: str, *, client: str, name: str) -> Lookup:
        """What ``name`` means to the tenant's endpoint at address ``client``."""
        asking = self._asking(router, client)
        if asking is None:
            return Lookup.NO_FORWARD
        tenant = self._tenants[router]
        key = name.lower()
        found: list[str] = []
        for endpoint in asking:
            if endpoint.isolated:
                continue
            for address in tenant.names.get(endpoint.network_id, {}).get(key, ()):
                if address not in found:
                    found.append(address)
        if found:
            return Lookup.found(found)
        return Lookup.NO_FORWARD if all(e.internal for e in asking) else Lookup.FORWARD

    def reverse(self, router: str, *, client: str, address: str) -> Lookup:
        """The name of the endpoint at ``address``, for an endpoint sharing a network."""
        asking = self._asking(router, client)
        if asking is None:
            return Lookup.NO_FORWARD
        found = self._tenants[router].by_address.get(address)
        networks = {e.network_id for e in asking if not e.isolated}
        if found is not None and found[1].network_id in networks and found[1].names:
            return Lookup.found([found[1].names[0]])
        ip = ipaddress.ip_address(address)
        if any(ip in ipaddress.ip_network(e.subnet) for e in asking):
            return Lookup.NXDOMAIN  # an address of its own networks that is nobody's
        return Lookup.NO_FORWARD if all(e.internal for e in asking) else Lookup.FORWARD

    def _asking(self, router: str, client: str) -> list[EndpointSpec] | None:
        """The endpoints of the container at ``client``, or None for no container."""
        tenant = self._tenants.get(router)
        entry = tenant.by_address.get(client) if tenant is not None else None
        if entry is None:
            return None
        return self._containers[entry[0]][1]

    # servers ------------------------------------------------------------------------------

    def _serve(self, router: str, gateway: str) -> None:
        key = (router, gateway)
        if self._closed or key in self._servers:
            return
        try:
            udp, tcp = self._network.router_sockets(
                router, gateway, on_close=lambda: self._closed_by_network(key)
            )
        except DockyardError as exc:
            log.warning("no DNS at %s in the router of %s: %s", gateway, router, exc.message)
            return
        resolver = self._resolvers.setdefault(router, _RouterResolver(self, router))
        try:
            server = DnsServer(resolver, udp=udp, tcp=tcp, upstreams=self._upstreams)
        except DockyardError as exc:
            log.warning("no DNS at %s in the router of %s: %s", gateway, router, exc.message)
            return
        self._servers[key] = server
        task = asyncio.get_running_loop().create_task(self._start(key, server))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _start(self, key: tuple[str, str], server: DnsServer) -> None:
        try:
            await server.start()
        except (DockyardError, OSError) as exc:
            log.warning("the DNS server at %s of %s did not start: %s", key[1], key[0], exc)
            if self._servers.get(key) is server:
                del self._servers[key]

    def _closed_by_network(self, key: tuple[str, str]) -> None:
        """The bridge or router went: its sockets are about to be closed."""
        server = self._servers.pop(key, None)
        if server is not None:
            server.close_now()

    async def close(self) -> None:
        """Stop every server (the sockets are closed; the kernel state stays)."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        servers = list(self._servers.values())
        self._servers.clear()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop()
