"""Kernel names and addresses of one instance's network objects: pure validation (ADR 0016).

Linux interface names hold at most 15 bytes (IFNAMSIZ - 1). What an instance makes in
the host's root namespace is named from the instance (its nft table, its routers'
namespaces ``dyk-<instance>-<tenant12>`` and their uplinks ``dyu<hash12>``), so several
instances share a host and each cleans up by name. Inside a router namespace, which
belongs to one instance and one tenant, bridges are ``br-<network12>`` and a
container's veth is ``ve<endpoint13>``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument, Unavailable
from dockyard.core.protocol import EndpointSpec

__all__ = [
    "IFNAMSIZ",
    "ROUTER_TABLE",
    "UPLINK_INSIDE",
    "ContainerInterface",
    "check_bridge_name",
    "check_container_id",
    "check_interface_name",
    "check_table",
    "check_transit_subnet",
    "endpoint_interface",
    "endpoint_veth",
    "gateway_address",
    "mac_for",
    "random_mac",
    "router_netns",
    "router_prefix",
    "transit_pair",
    "uplink_name",
]

IFNAMSIZ = 16  # including the NUL: names are at most 15 characters
ROUTER_TABLE = "dockyard"  # the nft table inside every router namespace
UPLINK_INSIDE = "up0"  # the router's side of its uplink

_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_BRIDGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
_INTERFACE = re.compile(r"^[a-z][a-z0-9]{0,14}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ContainerInterface:
    """One interface inside a container: name, address, prefix length and gateway."""

    name: str
    ip: str
    prefixlen: int
    gateway: str


def check_table(table: str) -> str:
    """Return ``table`` if it is a valid instance table name (``[a-z][a-z0-9_]{0,31}``)."""
    if not _TABLE.match(table):
        raise InvalidArgument(f"invalid nftables table name {table!r}")
    return table


def check_bridge_name(name: str) -> str:
    """Return ``name`` if it is a usable bridge name (at most 15 safe characters)."""
    if not _BRIDGE.match(name):
        raise InvalidArgument(f"invalid bridge name {name!r}")
    return name


def check_interface_name(name: str) -> str:
    """Return ``name`` if it can name a container's interface (``eth0``, ``eth1``...)."""
    if not _INTERFACE.match(name) or name == "lo":
        raise InvalidArgument(f"invalid interface name {name!r}")
    return name


def check_container_id(container_id: str) -> str:
    """Return ``container_id`` if it is safe to use in interface aliases and nft comments."""
    if not _ID.match(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


def router_prefix(instance: str) -> str:
    """What the names of every router namespace of ``instance`` start with."""
    return f"dyk-{check_table(instance)}-"


def router_netns(instance: str, router: str) -> str:
    """The namespace name of tenant ``router``'s router: ``dyk-<instance>-<router[:12]>``."""
    if not _ID.match(router):
        raise InvalidArgument(f"invalid router (tenant) id {router!r}")
    return router_prefix(instance) + router[:12]


def uplink_name(netns: str) -> str:
    """The root side of router ``netns``'s uplink: ``dyu`` and 12 hex digits of a hash of
    the namespace name (15 characters, stable across agent restarts)."""
    return "dyu" + hashlib.sha256(netns.encode()).hexdigest()[:12]


def endpoint_veth(endpoint_id: str) -> str:
    """The router side of an endpoint's veth: ``ve`` and the first 13 characters of its id."""
    if not _ID.match(endpoint_id):
        raise InvalidArgument(f"invalid endpoint id {endpoint_id!r}")
    return "ve" + endpoint_id[: IFNAMSIZ - 3]


def check_transit_subnet(text: str) -> ipaddress.IPv4Network:
    """The transit subnet the routers' uplinks take /31s from (at least one /31)."""
    net = _ipv4_network(text)
    if net.prefixlen > 31:
        raise InvalidArgument(f"transit subnet {text} holds no /31")
    return net


def transit_pair(subnet: str, used: Iterable[str]) -> tuple[str, str]:
    """The lowest /31 of ``subnet`` with neither address in ``used``: ``(root, router)``,
    the root side being the even address.

    ``used`` are the addresses the host already has (the kernel's view, so a restarted
    agent agrees with its predecessor). Raises ``Unavailable`` when every pair is taken.
    """
    net = check_transit_subnet(subnet)
    taken = set()
    for text in used:
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if addr in net:
            taken.add(int(addr) & ~1)
    base = int(net.network_address)
    for pair in range(base, base + net.num_addresses, 2):
        if pair not in taken:
            return str(ipaddress.IPv4Address(pair)), str(ipaddress.IPv4Address(pair + 1))
    raise Unavailable(f"no free /31 left in the transit subnet {subnet}")


def gateway_address(*, subnet: str, gateway: str) -> tuple[str, int]:
    """``(gateway, prefixlen)`` for a bridge, checking that the gateway is in the subnet.

    Raises ``InvalidArgument`` for malformed, non-IPv4, or mismatching addresses.
    """
    net = _ipv4_network(subnet)
    gw = _ipv4_address(gateway)
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"gateway {gateway} is not a host address of {subnet}")
    return str(gw), net.prefixlen


def endpoint_interface(endpoint: EndpointSpec) -> ContainerInterface:
    """The container side of ``endpoint``, validated.

    Raises ``InvalidArgument`` unless ``ip`` and ``gateway`` are distinct host addresses
    of ``subnet`` and the names are usable.
    """
    check_bridge_name(endpoint.bridge)
    endpoint_veth(endpoint.endpoint_id)
    name = check_interface_name(endpoint.interface)
    gateway, prefixlen = gateway_address(subnet=endpoint.subnet, gateway=endpoint.gateway)
    net = _ipv4_network(endpoint.subnet)
    ip = _ipv4_address(endpoint.ip)
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"container address {endpoint.ip} is not a host address of {net}")
    if str(ip) == gateway:
        raise InvalidArgument(f"container address {endpoint.ip} is the gateway")
    return ContainerInterface(name=name, ip=str(ip), prefixlen=prefixlen, gateway=gateway)


def mac_for(ip: str) -> str:
    """The container's MAC derived from its address, as Docker derives ``02:42:<ip>``.

    An address freed by one container and given to the next keeps its MAC, so neighbours'
    ARP caches stay right; a random MAC would leave the router sending to the old one
    until its neighbour entry expires (seconds of lost packets).
    """
    octets = [0x02, 0x42, *ipaddress.IPv4Address(ip).packed]
    return ":".join(f"{o:02x}" for o in octets)


def random_mac() -> str:
    """A random locally administered unicast MAC address.

    Bridges get one explicitly: a bridge whose address was never set takes the lowest
    MAC among its ports and changes it as ports come and go, which breaks its
    neighbours' ARP caches (the kernel keeps an address set by the user:
    ``NET_ADDR_SET`` in br_stp_recalculate_bridge_id).
    """
    octets = [random.randrange(256) for _ in range(6)]  # noqa: S311 - not a secret
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{octet:02x}" for octet in octets)


def _ipv4_network(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidArgument(f"only IPv4 subnets are supported, not {text!r}")
    return net


def _ipv4_address(text: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid IP address {text!r}") from exc
    if not isinstance(addr, ipaddress.IPv4Address):
        raise InvalidArgument(f"only IPv4 addresses are supported, not {text!r}")
    return addr
