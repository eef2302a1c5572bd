"""Published host ports: validation, ephemeral allocation and reservation sockets.

A published port is *reserved* by a socket the agent keeps open on the host address
(TCP: bound and listening; UDP: bound). Traffic never reaches it (the nat hooks DNAT
first), but while it is open no other host process can take the port, and a second
container asking for it fails with Docker's "port is already allocated". The kernel
is the single source of truth for "in use", across instances and other daemons.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from dockyard.core.errors import Conflict, InvalidArgument, Unavailable
from dockyard.core.protocol import PortMapping

__all__ = [
    "ANY_IP",
    "EPHEMERAL_HIGH",
    "EPHEMERAL_LOW",
    "PROTOCOLS",
    "Binding",
    "PortAllocator",
    "bindings_from_ports",
    "check_mapping",
    "ports_dict",
]

PROTOCOLS = ("tcp", "udp")
ANY_IP = "0.0.0.0"  # noqa: S104 - Docker's spelling of "every host address"
EPHEMERAL_LOW = 32768
EPHEMERAL_HIGH = 60999


@dataclass(frozen=True, slots=True)
class Binding:
    """One published port: ``host_ip:host_port/protocol`` -> the container's port.

    ``host_ip`` is an IPv4 address or :data:`ANY_IP`; ``host_port`` 0 means "not yet
    allocated".
    """

    protocol: str
    container_port: int
    host_ip: str = ANY_IP
    host_port: int = 0

    @property
    def key(self) -> str:
        """Docker's port key, ``"80/tcp"``."""
        return f"{self.container_port}/{self.protocol}"


def check_mapping(mapping: PortMapping) -> Binding:
    """Validate a requested mapping and normalise ``host_ip`` ("" -> 0.0.0.0).

    Raises ``InvalidArgument`` for unknown protocols, ports out of range and host
    addresses that are not IPv4.
    """
    protocol = mapping.protocol.lower()
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"unsupported protocol {mapping.protocol!r} (tcp or udp)")
    if not 1 <= mapping.container_port <= 65535:
        raise InvalidArgument(f"invalid container port {mapping.container_port}")
    if not 0 <= mapping.host_port <= 65535:
        raise InvalidArgument(f"invalid host port {mapping.host_port}")
    host_ip = mapping.host_ip or ANY_IP
    try:
        addr = ipaddress.ip_address(host_ip)
    except ValueError as exc:
        raise InvalidArgument(f"invalid host IP {mapping.host_ip!r}") from exc
    if not isinstance(addr, ipaddress.IPv4Address):
        raise InvalidArgument(f"only IPv4 host addresses can be published, not {host_ip}")
    return Binding(protocol, mapping.container_port, str(addr), mapping.host_port)


def ports_dict(bindings: Iterable[Binding]) -> dict[str, list[tuple[str, int]]]:
    """Docker's view of bound ports: ``{"80/tcp": [("0.0.0.0", 8080)]}``."""
    result: dict[str, list[tuple[str, int]]] = {}
    for binding in bindings:
        result.setdefault(binding.key, []).append((binding.host_ip, binding.host_port))
    return result


def bindings_from_ports(ports: Mapping[str, Sequence[tuple[str, int]]]) -> list[Binding]:
    """Inverse of :func:`ports_dict`; raises ``InvalidArgument`` for malformed entries."""
    bindings = []
    for key, hosts in ports.items():
        port_text, _, protocol = key.partition("/")
        if not port_text.isdigit():
            raise InvalidArgument(f"invalid port key {key!r}")
        for host_ip, host_port in hosts:
            if host_port == 0:
                raise InvalidArgument(f"port {key} has no host port to restore")
            mapping = PortMapping(protocol or "tcp", int(port_text), host_ip, host_port)
            bindings.append(check_mapping(mapping))
    return bindings


class PortAllocator:
    """Takes host ports by binding sockets; picks ephemeral ports round-robin.

    Not thread-safe: one event loop owns it. The returned sockets are the reservation:
    the caller keeps them open as long as the port is published and closes them to
    release it.
    """

    def __init__(self, *, low: int = EPHEMERAL_LOW, high: int = EPHEMERAL_HIGH) -> None:
        if not 1 <= low <= high <= 65535:
            raise InvalidArgument(f"invalid ephemeral range {low}-{high}")
        self._low = low
        self._high = high
        self._next = dict.fromkeys(PROTOCOLS, low)

    def reserve(self, binding: Binding) -> tuple[Binding, socket.socket]:
        """Bind ``binding``'s host port (choosing one if it is 0); return it and the socket.

        Raises ``Conflict`` ("Bind for 0.0.0.0:8080 failed: port is already allocated")
        when the port is taken, ``Unavailable`` when the ephemeral range is exhausted,
        ``InvalidArgument`` when the host address is not local.
        """
        if binding.host_port:
            try:
                return binding, _bind(binding)
            except OSError as exc:
                raise _bind_error(binding, exc) from exc
        size = self._high - self._low + 1
        start = self._next[binding.protocol]
        for offset in range(size):
            port = self._low + (start - self._low + offset) % size
            candidate = replace(binding, host_port=port)
            try:
                sock = _bind(candidate)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise _bind_error(candidate, exc) from exc
            self._next[binding.protocol] = port + 1 if port < self._high else self._low
            return candidate, sock
        raise Unavailable(
            f"no free {binding.protocol} host port in {self._low}-{self._high} on {binding.host_ip}"
        )


def _bind(binding: Binding) -> socket.socket:
    kind = socket.SOCK_STREAM if binding.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    try:
        if kind == socket.SOCK_STREAM:
            # Like any TCP server: a listener may rebind over TIME_WAIT leftovers. It
            # still excludes every other bind of the port while listening. (On UDP the
            # option would let two sockets share the port, so it stays off there.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((binding.host_ip, binding.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(binding: Binding, exc: OSError) -> Exception:
    where = f"{binding.host_ip}:{binding.host_port}"
    if exc.errno == errno.EADDRINUSE:
        return Conflict(f"Bind for {where} failed: port is already allocated")
    if exc.errno == errno.EADDRNOTAVAIL:
        return InvalidArgument(
            f"cannot publish on {where}/{binding.protocol}: {binding.host_ip} is not "
            "an address of this host"
        )
    return Unavailable(f"cannot reserve {where}/{binding.protocol}: {exc}")
