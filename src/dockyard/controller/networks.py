"""NetworkService: tenants' networks, their addresses, and how containers join them.

Every tenant has two predefined networks, made on first use (ADR 0016): ``default``, the
private network a container joins unless told otherwise (Docker's CLI sends NetworkMode
``default``), and ``bridge``, NAT only (its members cannot reach each other). Tenants
create more; names are per tenant and subnets may overlap between tenants, never within
one. Addresses come from the store's IPAM, so none is handed out twice, and each goes back
to the pool when its container leaves the network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dockyard.controller.events import EventLog
from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from dockyard.core.ids import is_full_id, new_id
from dockyard.core.models import Container, Endpoint, Network, PortBinding, SecurityGroup
from dockyard.core.protocol import EndpointSpec, IngressRule, NetworkSpec, PortMapping
from dockyard.store.base import Store

__all__ = [
    "BRIDGE_NETWORK",
    "DEFAULT_NETWORK",
    "EndpointRequest",
    "NetworkRequest",
    "NetworkService",
    "group_records",
    "ingress_rules",
    "port_mappings",
    "public_port_mappings",
]

DEFAULT_NETWORK = "default"
BRIDGE_NETWORK = "bridge"
_PREDEFINED = (DEFAULT_NETWORK, BRIDGE_NETWORK)
_NOT_NETWORKS = ("none", "host")  # Docker's other predefined names: modes, not networks
DRIVERS = ("bridge", "overlay")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")

# Where networks created without a subnet get one (Docker's default address pools), and
# what no tenant network may use: this host's own ranges and the routers' transit links.
_POOLS = (
    *(ipaddress.IPv4Network(f"172.{n}.0.0/16") for n in range(17, 32)),
    *(ipaddress.IPv4Network(f"192.168.{n}.0/20") for n in range(0, 256, 16)),
)
_FORBIDDEN = tuple(
    ipaddress.IPv4Network(n)
    for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "224.0.0.0/3")
)


@dataclass(frozen=True, slots=True)
class NetworkRequest:
    """``docker network create`` as Dockyard reads it (IPv4 only)."""

    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    """A network a container is to join: by name or id, with aliases and an address."""

    network: str
    aliases: tuple[str, ...] = ()
    ip: str = ""


class NetworkService:
    """Lifecycle: one per controller. Everything is per tenant; a network or address of
    another tenant is NotFound."""

    def __init__(
        self, *, store: Store, events: EventLog, bridge_subnet: str, default_subnet: str
    ) -> None:
        self._store = store
        self._events = events
        self._predefined_subnets = {
            BRIDGE_NETWORK: _subnet(bridge_subnet),
            DEFAULT_NETWORK: _subnet(default_subnet),
        }
        self._ready: set[str] = set()
        # Networks are never changed once made, and only this service removes them: it
        # keeps those it has read, by id and by (tenant, name), and forgets one it removes.
        self._by_id: dict[str, Network] = {}
        self._by_name: dict[tuple[str, str], Network] = {}

    # reading ------------------------------------------------------------------------------

    def list_networks(self, *, tenant: str) -> list[Network]:
        self.ensure_predefined(tenant)
        return self._store.list_networks(tenant=tenant)

    def get(self, *, tenant: str, ref: str) -> Network:
        """The tenant's network by id, name or unique id prefix."""
        cached = self._by_id.get(ref)
        if cached is not None and cached.tenant == tenant:
            return cached
        if not is_full_id(ref):
            # The store matches an id or a name: a ref no id can equal is a name.
            cached = self._by_name.get((tenant, ref))
            if cached is not None:
                return cached
        self.ensure_predefined(tenant)
        network = self._store.get_network(tenant=tenant, ref=ref)
        self._by_id[network.id] = network
        self._by_name[(network.tenant, network.name)] = network
        return network

    def _forget(self, network: Network) -> None:
        self._by_id.pop(network.id, None)
        self._by_name.pop((network.tenant, network.name), None)

    def find(self, *, tenant: str, network_id: str) -> Network | None:
        """The network with this exact id, or None if it is gone."""
        try:
            network = self.get(tenant=tenant, ref=network_id)
        except NotFound:
            return None
        return network if network.id == network_id else None

    def users(self, network: Network) -> dict[str, str]:
        """Container id -> address of every container holding an address on it."""
        return self._store.network_users(network_id=network.id)

    # predefined networks ------------------------------------------------------------------

    def ensure_predefined(self, tenant: str) -> None:
        """Make the tenant's ``default`` and ``bridge`` networks if they are missing."""
        if tenant in self._ready:
            return
        present = {n.name for n in self._store.list_networks(tenant=tenant)}
        for name in _PREDEFINED:
            if name in present:
                continue
            subnet = self._predefined_subnets[name]
            network = self._network(
                tenant=tenant,
                request=NetworkRequest(name=name, subnet=str(subnet)),
                gateway=str(next(subnet.hosts())),
                builtin=True,
                isolated=name == BRIDGE_NETWORK,
            )
            try:
                self._store.add_network(network)
            except AlreadyExists:
                continue  # made by a concurrent caller
        self._ready.add(tenant)

    # create and remove --------------------------------------------------------------------

    def create(self, *, tenant: str, request: NetworkRequest) -> Network:
        """A new network for the tenant. Raises InvalidArgument for a malformed request,
        NotFound for an unknown driver, AlreadyExists for a taken name, PermissionDenied
        for ``host``/``none`` and a subnet overlapping one of the tenant's networks."""
        name = request.name
        if not name:
            raise InvalidArgument("network name is missing")
        if name in _NOT_NETWORKS:
            raise PermissionDenied(f"operation is not permitted on predefined {name} network")
        if not _NAME.match(name):
            raise InvalidArgument(
                f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        driver = request.driver or "bridge"
        if driver not in DRIVERS:
            raise NotFound(f'plugin "{driver}" not found')
        self.ensure_predefined(tenant)
        existing = self._store.list_networks(tenant=tenant)
        if any(n.name == name for n in existing):
            raise AlreadyExists(f"network with name {name} already exists")
        taken = [ipaddress.IPv4Network(n.subnet) for n in existing]
        if request.subnet:
            subnet = _subnet(request.subnet)
            _check_usable(subnet)
            clash = next((t for t in taken if t.overlaps(subnet)), None)
            if clash is not None:
                raise PermissionDenied(
                    f"invalid pool request: Pool overlaps with other one on this address "
                    f"space ({subnet} overlaps {clash})"
                )
        elif request.gateway or request.ip_range:
            raise InvalidArgument("a gateway or ip-range needs a subnet (--subnet)")
        else:
            subnet = _free_pool(taken)
        gateway = _gateway(subnet, request.gateway)
        ip_range = _ip_range(subnet, request.ip_range)
        network = self._network(
            tenant=tenant,
            request=NetworkRequest(
                name=name,
                driver=driver,
                internal=request.internal,
                attachable=request.attachable,
                subnet=str(subnet),
                ip_range=ip_range,
                labels=dict(request.labels),
                options=dict(request.options),
            ),
            gateway=gateway,
        )
        self._store.add_network(network)
        self._event(network, "create")
        return network

    def remove(self, *, tenant: str, ref: str) -> Network:
        """Remove a network no container holds an address on. PermissionDenied for the
        predefined ones, Conflict while in use."""
        if ref in _NOT_NETWORKS:
            raise PermissionDenied(f"{ref} is a pre-defined network and cannot be removed")
        network = self.get(tenant=tenant, ref=ref)
        if network.builtin:
            raise PermissionDenied(f"{network.name} is a pre-defined network and cannot be removed")
        try:
            self._store.delete_network(tenant=tenant, network_id=network.id)
        except Conflict:
            raise Conflict(
                f"error while removing network: network {network.name} id {network.id} "
                "has active endpoints"
            ) from None
        self._forget(network)
        self._event(network, "destroy")
        return network

    def prune(self, *, tenant: str, keep: Iterable[str] = ()) -> list[Network]:
        """Remove every network of the tenant that is not predefined, holds no address and
        is not in ``keep`` (ids); returns those removed."""
        kept = set(keep)
        removed = []
        for network in self.list_networks(tenant=tenant):
            if network.builtin or network.id in kept or self.users(network):
                continue
            try:
                self._store.delete_network(tenant=tenant, network_id=network.id)
            except (Conflict, NotFound):
                continue  # joined or removed meanwhile
            self._forget(network)
            self._event(network, "destroy")
            removed.append(network)
        return removed

    # containers ---------------------------------------------------------------------------

    def resolve(
        self, *, tenant: str, mode: str, requests: Sequence[EndpointRequest]
    ) -> list[tuple[Network, EndpointRequest]]:
        """The networks a new container joins, first the one its NetworkMode names.

        ``requests`` are the create's EndpointsConfig; the one naming the mode's network
        gives its aliases and address. ``none`` and ``container:`` modes join none (and
        take no endpoint requests). Raises NotFound for a network the tenant lacks,
        PermissionDenied for ``host``.
        """
        if mode == "host":
            raise PermissionDenied(
                "network mode 'host' is not allowed on Dockyard: containers never share the "
                "host's network namespace"
            )
        if mode == "none" or mode.startswith("container:"):
            if any(r.network not in ("none", mode) for r in requests):
                raise InvalidArgument(
                    f"Container cannot be connected to network endpoints with network mode {mode}"
                )
            return []
        primary_ref = DEFAULT_NETWORK if mode in ("", DEFAULT_NETWORK) else mode
        primary = self.get(tenant=tenant, ref=primary_ref)
        chosen: list[tuple[Network, EndpointRequest]] = []
        by_network: dict[str, EndpointRequest] = {}
        for request in requests:
            ref = DEFAULT_NETWORK if request.network == DEFAULT_NETWORK else request.network
            network = self.get(tenant=tenant, ref=ref)
            if network.id in by_network:
                raise InvalidArgument(f"network {network.name} is given twice")
            by_network[network.id] = request
        chosen.append((primary, by_network.pop(primary.id, EndpointRequest(primary.name))))
        for network_id, request in by_network.items():
            chosen.append((self.get(tenant=tenant, ref=network_id), request))
        return chosen

    def join(self, *, container_id: str, network: Network, request: EndpointRequest) -> Endpoint:
        """Reserve an address for the container on ``network`` (``request.ip`` if given,
        Conflict when taken)."""
        wanted = _requested_ip(network, request.ip) if request.ip else ""
        address = self._store.allocate_address(network=network, owner=container_id, address=wanted)
        return Endpoint(
            network_id=network.id,
            id=new_id(),
            ip=address,
            aliases=tuple(dict.fromkeys(request.aliases)),
            requested_ip=wanted,
        )

    def leave(self, *, container_id: str, network_id: str) -> None:
        self._store.release_address(network_id=network_id, owner=container_id)

    def endpoint_spec(
        self,
        container: Container,
        endpoint: Endpoint,
        index: int,
        *,
        groups: Sequence[SecurityGroup] | None = None,
    ) -> EndpointSpec:
        """``groups``: the records of the container's security groups, which every one
        of its endpoints carries (ids and the union of their rules); by default the
        store's."""
        if groups is None:
            groups = group_records(self._store, container)
        network = self.get(tenant=container.tenant, ref=endpoint.network_id)
        names: tuple[str, ...] = ()
        if not network.isolated:
            names = tuple(dict.fromkeys((container.name, *endpoint.aliases, container.id[:12])))
        return EndpointSpec(
            endpoint_id=endpoint.id,
            network_id=network.id,
            bridge=network.bridge,
            subnet=network.subnet,
            gateway=network.gateway,
            ip=endpoint.ip,
            interface=f"eth{index}",
            internal=network.internal,
            isolated=network.isolated,
            names=names,
            groups=tuple(g.id for g in groups),
            ingress=ingress_rules(groups),
        )

    def spec(
        self,
        container: Container,
        *,
        peer: str = "",
        groups: Sequence[SecurityGroup] | None = None,
        public_ip: str | None = None,
    ) -> NetworkSpec:
        """How the agent should plumb ``container`` (its addresses are already reserved);
        ``peer`` is the running container whose netns a ``container:`` mode joins.

        ``groups`` are the records of its security groups (see :meth:`endpoint_spec`) and
        ``public_ip`` the floating IP it carries; by default both are what the store holds
        (a caller applying a change before recording it names the new value, ``""`` for
        no public IP). Every spec pushed to an agent whole carries both, or the push would
        take them away. Only a container with networks of its own can use a public IP
        (:func:`public_port_mappings` says which ports reach it).
        """
        if container.host_config.network_mode.startswith("container:"):
            return NetworkSpec(mode="container", peer=peer)
        if not container.endpoints:
            return NetworkSpec(mode="none")
        if public_ip is None:
            public_ip = self._store.public_ip_of(tenant=container.tenant, container_id=container.id)
        if groups is None:
            groups = group_records(self._store, container)
        return NetworkSpec(
            mode="tenant",
            router=container.tenant,
            endpoints=tuple(
                self.endpoint_spec(container, e, i, groups=groups)
                for i, e in enumerate(container.endpoints)
            ),
            ports=port_mappings(
                container.host_config.port_bindings,
                exposed=container.config.exposed_ports,
                publish_all=container.host_config.publish_all_ports,
            ),
            public_ip=public_ip,
            public_ports=public_port_mappings(
                container.host_config.port_bindings,
                exposed=container.config.exposed_ports,
                public_ip=public_ip,
            )
            if public_ip
            else (),
        )

    # internals ----------------------------------------------------------------------------

    def _network(
        self,
        *,
        tenant: str,
        request: NetworkRequest,
        gateway: str,
        builtin: bool = False,
        isolated: bool = False,
    ) -> Network:
        network_id = new_id()
        return Network(
            id=network_id,
            tenant=tenant,
            name=request.name,
            driver=request.driver,
            subnet=request.subnet,
            gateway=gateway,
            bridge=f"br-{network_id[:12]}",
            created=now_ns(),
            internal=request.internal,
            labels=dict(request.labels),
            ip_range=request.ip_range,
            attachable=request.attachable,
            options=dict(request.options),
            builtin=builtin,
            isolated=isolated,
        )

    def _event(self, network: Network, action: str) -> None:
        self._events.record(
            tenant=network.tenant,
            type="network",
            action=action,
            actor_id=network.id,
            attributes={"name": network.name, "type": network.driver},
        )


def group_records(store: Store, container: Container) -> list[SecurityGroup]:
    """The records of the container's security groups, in its order (a group removed
    meanwhile is left out: it had no rule the container could still need)."""
    found = []
    for group_id in container.security_groups:
        with contextlib.suppress(NotFound):
            found.append(store.get_security_group(tenant=container.tenant, ref=group_id))
    return found


def _subnet(text: str) -> ipaddress.IPv4Network:
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from None
    if not isinstance(loose, ipaddress.IPv4Network):
        raise InvalidArgument(f"only IPv4 subnets are supported, not {text}")
    if str(loose.network_address) != text.split("/", maxsplit=1)[0]:
        raise InvalidArgument(f"invalid subnet {text} : it should be {loose}")
    if loose.prefixlen > 30:
        raise InvalidArgument(f"subnet {text} is too small: at most /30")
    return loose


def _check_usable(subnet: ipaddress.IPv4Network) -> None:
    for forbidden in _FORBIDDEN:
        if subnet.overlaps(forbidden):
            raise InvalidArgument(f"subnet {subnet} overlaps {forbidden}, which is reserved")


def _free_pool(taken: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for pool in _POOLS:
        if not any(pool.overlaps(t) for t in taken):
            return pool
    raise Conflict("could not find an available, non-overlapping IPv4 address pool")


def _address(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise InvalidArgument(f"only IPv4 addresses are supported, not {text}")
    return address


def _gateway(subnet: ipaddress.IPv4Network, text: str) -> str:
    if not text:
        return str(next(subnet.hosts()))
    gateway = _address(text, "gateway")
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {text} is not a host address of subnet {subnet}")
    return str(gateway)


def _ip_range(subnet: ipaddress.IPv4Network, text: str) -> str:
    if not text:
        return ""
    try:
        ip_range = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid ip-range {text!r}: {exc}") from None
    if not isinstance(ip_range, ipaddress.IPv4Network) or not ip_range.subnet_of(subnet):
        raise InvalidArgument(f"ip-range {text} is not within subnet {subnet}")
    return str(ip_range)


def _requested_ip(network: Network, text: str) -> str:
    address = _address(text, "IPv4 address")
    subnet = ipaddress.IPv4Network(network.subnet)
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(
            f"invalid IPv4 address {text}: not a host address of network {network.name} ({subnet})"
        )
    return str(address)


def ingress_rules(groups: Sequence[SecurityGroup]) -> tuple[IngressRule, ...]:
    """The union of the groups' rules as the agent gets them (each distinct rule once, in
    the order of the groups, then of their rules)."""
    rules = (
        IngressRule(
            protocol=r.protocol,
            port_min=r.port_min,
            port_max=r.port_max,
            source=r.source,
            source_group=r.source_group,
        )
        for g in groups
        for r in g.rules
    )
    return tuple(dict.fromkeys(rules))


def _split_port(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in port {key!r}")
    if not number.isdecimal() or not 0 < int(number) < 65536:
        raise InvalidArgument(f"invalid port {key!r}")
    return int(number), proto


def port_mappings(
    bindings: dict[str, tuple[PortBinding, ...]],
    *,
    exposed: tuple[str, ...],
    publish_all: bool,
) -> tuple[PortMapping, ...]:
    """Docker's PortBindings (plus ``-P``) as the agent's port mappings."""
    out: list[PortMapping] = []
    seen: set[str] = set()
    for key, targets in bindings.items():
        port, proto = _split_port(key)
        seen.add(f"{port}/{proto}")
        for target in targets or (PortBinding(),):
            host_port = 0
            if target.host_port:
                if not target.host_port.isdecimal() or not 0 < int(target.host_port) < 65536:
                    raise InvalidArgument(f"invalid host port {target.host_port!r}")
                host_port = int(target.host_port)
            if target.host_ip:
                try:
                    ipaddress.IPv4Address(target.host_ip)
                except ValueError as exc:
                    raise InvalidArgument(f"invalid host IP {target.host_ip!r}") from exc
            out.append(PortMapping(proto, port, target.host_ip, host_port))
    if publish_all:
        for key in exposed:
            port, proto = _split_port(key)
            if f"{port}/{proto}" not in seen:
                out.append(PortMapping(proto, port, "", 0))
    return tuple(out)


def public_port_mappings(
    bindings: dict[str, tuple[PortBinding, ...]],
    *,
    exposed: tuple[str, ...],
    public_ip: str,
) -> tuple[PortMapping, ...]:
    """The ports that reach a container on its floating IP ``public_ip``: ``host_port``
    there goes to ``container_port`` (``host_ip`` stays empty: the spec's ``public_ip``
    says where).

    - ``-p HOST:CONTAINER`` (host IP empty, ``0.0.0.0`` or the public IP itself) maps HOST
      to CONTAINER: ``-p 10022:22`` makes public port 10022 reach 22, and 22 is then not
      reached under its own number;
    - ``-p CONTAINER`` without a host port, and every exposed port no ``-p`` remaps, keeps
      its number (the whole address is the container's, so no port needs moving; ``-P``
      therefore changes nothing on the public IP);
    - ``-p 127.0.0.1:8080:80`` names another address of the host and leaves the public IP
      alone (port 80 is then reached under its own number if exposed).

    A public port claimed twice goes to the first claim: remappings, in binding order,
    before exposed ports.
    """
    remapped: list[PortMapping] = []
    kept: list[PortMapping] = []
    moved: set[str] = set()
    for key, targets in bindings.items():
        port, proto = _split_port(key)
        for target in targets or (PortBinding(),):
            if target.host_ip not in ("", "0.0.0.0", public_ip):  # noqa: S104  (a wildcard)
                continue
            if not target.host_port:
                kept.append(PortMapping(proto, port, "", port))
                continue
            if not target.host_port.isdecimal() or not 0 < int(target.host_port) < 65536:
                raise InvalidArgument(f"invalid host port {target.host_port!r}")
            host_port = int(target.host_port)
            remapped.append(PortMapping(proto, port, "", host_port))
            if host_port != port:
                moved.add(f"{port}/{proto}")
    for key in exposed:
        port, proto = _split_port(key)
        if f"{port}/{proto}" not in moved:
            kept.append(PortMapping(proto, port, "", port))
    out: list[PortMapping] = []
    claimed: set[tuple[str, int]] = set()
    for mapping in (*remapped, *kept):
        if (mapping.protocol, mapping.host_port) not in claimed:
            claimed.add((mapping.protocol, mapping.host_port))
            out.append(mapping)
    return tuple(out)
