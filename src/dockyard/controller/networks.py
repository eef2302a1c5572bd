"""NetworkService: the networks containers join, and their addresses.

Until tenant networks arrive, every host has one default ``bridge`` network owned by the
system (visible to all tenants). Addresses come from the store's IPAM, so no address is
handed out twice and each returns to the pool when its container is removed.
"""

from __future__ import annotations

import ipaddress

from dockyard.core.clock import now_ns
from dockyard.core.errors import InvalidArgument, NotFound, PermissionDenied
from dockyard.core.ids import new_id
from dockyard.core.layout import Layout
from dockyard.core.models import Container, Network, PortBinding
from dockyard.core.protocol import NetworkSpec, PortMapping
from dockyard.store.base import Store

__all__ = ["DEFAULT_NETWORK", "NetworkService", "port_mappings"]

DEFAULT_NETWORK = "bridge"
_SYSTEM_TENANT = ""


class NetworkService:
    def __init__(self, *, store: Store, layout: Layout, subnet: str) -> None:
        self._store = store
        self._layout = layout
        self._subnet = subnet
        self._cache: dict[tuple[str, str], Network] = {}

    def ensure_default(self) -> Network:
        try:
            return self._store.get_network(tenant=_SYSTEM_TENANT, ref=DEFAULT_NETWORK)
        except NotFound:
            pass
        net = ipaddress.ip_network(self._subnet)
        gateway = next(net.hosts())
        network = Network(
            id=new_id(),
            tenant=_SYSTEM_TENANT,
            name=DEFAULT_NETWORK,
            driver="bridge",
            subnet=str(net),
            gateway=str(gateway),
            bridge=self._layout.bridge_name(0),
            created=now_ns(),
        )
        self._store.add_network(network)
        return network

    def list_networks(self, *, tenant: str) -> list[Network]:
        return self._store.list_networks(tenant=tenant)

    def get(self, *, tenant: str, ref: str) -> Network:
        """A network by id, name or prefix (cached: networks do not change yet; creating
        and removing them, in the tenant networks issue, will clear the cache)."""
        key = (tenant, ref)
        network = self._cache.get(key)
        if network is None:
            network = self._store.get_network(tenant=tenant, ref=ref)
            self._cache[key] = network
        return network

    def resolve_mode(self, *, tenant: str, mode: str) -> Network | None:
        """The network for Docker's ``NetworkMode``; None for ``none``."""
        if mode in ("", "default", DEFAULT_NETWORK):
            return self.ensure_default()
        if mode == "none":
            return None
        if mode == "host" or mode.startswith(("container:", "ns:")):
            raise PermissionDenied(
                f"network mode {mode!r} is not allowed on Dockyard: containers never share "
                "the host's or another container's network namespace"
            )
        return self.get(tenant=tenant, ref=mode)

    def allocate(self, *, network: Network, container_id: str) -> str:
        return self._store.allocate_address(network=network, owner=container_id)

    def release(self, *, container_id: str) -> None:
        self._store.release_addresses(owner=container_id)

    def spec(self, container: Container) -> NetworkSpec:
        """How the agent should plumb ``container`` (its address is already reserved)."""
        if not container.network:
            return NetworkSpec(mode="none")
        network = self.get(tenant=container.tenant, ref=container.network)
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        return NetworkSpec(
            mode="bridge",
            network_id=network.id,
            bridge=network.bridge,
            subnet=f"{network.subnet.split('/')[0]}/{prefix}",
            gateway=network.gateway,
            ip=container.ip_address,
            internal=network.internal,
            ports=port_mappings(
                container.host_config.port_bindings,
                exposed=container.config.exposed_ports,
                publish_all=container.host_config.publish_all_ports,
            ),
        )


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
