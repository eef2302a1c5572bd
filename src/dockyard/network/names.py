"""Kernel names and addresses of one instance's network objects: pure validation.

Linux interface names hold at most 15 bytes (IFNAMSIZ - 1). Everything an instance
creates is named from its nftables table name and its veth prefix, so several
instances coexist on one host and cleanup finds its objects by name.
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import NetworkSpec

__all__ = [
    "IFNAMSIZ",
    "ContainerInterface",
    "check_bridge_name",
    "check_container_id",
    "check_table",
    "check_veth_prefix",
    "container_interface",
    "gateway_address",
    "mac_for",
    "random_mac",
    "veth_name",
]

IFNAMSIZ = 16  # including the NUL: names are at most 15 characters

_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_VETH_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,3}$")
_BRIDGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ContainerInterface:
    """``eth0`` inside a container: its address, prefix length and default gateway."""

    ip: str
    prefixlen: int
    gateway: str


def check_table(table: str) -> str:
    """Return ``table`` if it is a valid instance table name (``[a-z][a-z0-9_]{0,31}``)."""
    if not _TABLE.match(table):
        raise InvalidArgument(f"invalid nftables table name {table!r}")
    return table


def check_veth_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is 1 to 4 lowercase letters/digits starting with a letter."""
    if not _VETH_PREFIX.match(prefix):
        raise InvalidArgument(f"invalid veth prefix {prefix!r} (1-4 of [a-z0-9])")
    return prefix


def check_bridge_name(name: str) -> str:
    """Return ``name`` if it is a usable bridge name (at most 15 safe characters)."""
    if not _BRIDGE.match(name):
        raise InvalidArgument(f"invalid bridge name {name!r}")
    return name


def check_container_id(container_id: str) -> str:
    """Return ``container_id`` if it is safe to use in interface names and nft comments."""
    if not _CONTAINER_ID.match(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


def veth_name(prefix: str, container_id: str) -> str:
    """Host-side veth name: ``prefix`` + as much of the id as fits in 15 characters."""
    return prefix + container_id[: IFNAMSIZ - 1 - len(prefix)]


def gateway_address(*, subnet: str, gateway: str) -> tuple[str, int]:
    """``(gateway, prefixlen)`` for a bridge, checking that the gateway is in the subnet.

    Raises ``InvalidArgument`` for malformed, non-IPv4, or mismatching addresses.
    """
    net = _ipv4_network(subnet)
    gw = _ipv4_address(gateway)
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"gateway {gateway} is not a host address of {subnet}")
    return str(gw), net.prefixlen


def container_interface(spec: NetworkSpec) -> ContainerInterface:
    """The ``eth0`` configuration of a bridge-mode spec, validated.

    Raises ``InvalidArgument`` unless ``ip`` and ``gateway`` are distinct host addresses
    of ``subnet``.
    """
    gateway, prefixlen = gateway_address(subnet=spec.subnet, gateway=spec.gateway)
    net = _ipv4_network(spec.subnet)
    ip = _ipv4_address(spec.ip)
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"container address {spec.ip} is not a host address of {net}")
    if str(ip) == gateway:
        raise InvalidArgument(f"container address {spec.ip} is the gateway")
    return ContainerInterface(ip=str(ip), prefixlen=prefixlen, gateway=gateway)


def mac_for(ip: str) -> str:
    """The container's MAC derived from its address, as Docker derives ``02:42:<ip>``.

    An address freed by one container and given to the next keeps its MAC, so neighbours'
    ARP caches stay right; a random MAC would leave the host sending to the old one until
    its neighbour entry expires (seconds of lost packets).
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
