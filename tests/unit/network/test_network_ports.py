"""Published-port validation and reservation (dockyard.network.ports).

Reservation binds real sockets on 127.0.0.1, which needs no privilege.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dockyard.core.errors import Conflict, InvalidArgument, Unavailable
from dockyard.core.protocol import PortMapping
from dockyard.network.ports import (
    Binding,
    PortAllocator,
    bindings_from_ports,
    check_mapping,
    ports_dict,
)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_check_mapping_normalises() -> None:
    assert check_mapping(PortMapping("TCP", 80)) == Binding("tcp", 80, "0.0.0.0", 0)
    assert check_mapping(PortMapping("udp", 53, "127.0.0.1", 5353)) == Binding(
        "udp", 53, "127.0.0.1", 5353
    )


@pytest.mark.parametrize(
    "mapping",
    [
        PortMapping("sctp", 80),
        PortMapping("tcp", 0),
        PortMapping("tcp", 70000),
        PortMapping("tcp", 80, host_port=-1),
        PortMapping("tcp", 80, host_port=65536),
        PortMapping("tcp", 80, host_ip="::"),
        PortMapping("tcp", 80, host_ip="localhost"),
    ],
)
def test_check_mapping_refuses(mapping: PortMapping) -> None:
    with pytest.raises(InvalidArgument):
        check_mapping(mapping)


def test_ports_dict_round_trip() -> None:
    bindings = [
        Binding("tcp", 80, "0.0.0.0", 8080),
        Binding("tcp", 80, "127.0.0.1", 8081),
        Binding("udp", 53, "0.0.0.0", 5353),
    ]
    ports = ports_dict(bindings)
    assert ports == {
        "80/tcp": [("0.0.0.0", 8080), ("127.0.0.1", 8081)],
        "53/udp": [("0.0.0.0", 5353)],
    }
    assert bindings_from_ports(ports) == bindings


@pytest.mark.parametrize(
    "ports",
    [{"x/tcp": [("0.0.0.0", 1)]}, {"80/tcp": [("0.0.0.0", 0)]}, {"80/icmp": [("0.0.0.0", 1)]}],
)
def test_bindings_from_ports_refuses_malformed(ports: dict[str, list[tuple[str, int]]]) -> None:
    with pytest.raises(InvalidArgument):
        bindings_from_ports(ports)


@pytest.mark.parametrize(
    ("protocol", "kind"), [("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)]
)
def test_explicit_port_is_held_and_conflicts(
    protocol: str, kind: int, sockets: list[socket.socket]
) -> None:
    allocator = PortAllocator()
    port = _free_port(kind)
    binding, sock = allocator.reserve(Binding(protocol, 80, "127.0.0.1", port))
    sockets.append(sock)
    assert binding.host_port == port
    assert sock.getsockname() == ("127.0.0.1", port)
    with pytest.raises(Conflict) as info:
        allocator.reserve(Binding(protocol, 81, "127.0.0.1", port))
    assert info.value.message == f"Bind for 127.0.0.1:{port} failed: port is already allocated"
    # Another process (here: a plain socket) cannot take it either.
    with socket.socket(socket.AF_INET, kind) as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))


def test_tcp_and_udp_are_independent(sockets: list[socket.socket]) -> None:
    allocator = PortAllocator()
    port = _free_port()
    for protocol in ("tcp", "udp"):
        sockets.append(allocator.reserve(Binding(protocol, 80, "127.0.0.1", port))[1])


def test_port_taken_by_someone_else_is_a_conflict() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(Conflict, match="port is already allocated"):
            PortAllocator().reserve(Binding("tcp", 80, "127.0.0.1", port))


def test_released_port_can_be_taken_again() -> None:
    allocator = PortAllocator()
    port = _free_port()
    _, sock = allocator.reserve(Binding("tcp", 80, "127.0.0.1", port))
    sock.close()
    allocator.reserve(Binding("tcp", 80, "127.0.0.1", port))[1].close()


def _free_window(size: int) -> int:
    """The first port of ``size`` consecutive ports free on 127.0.0.1 (TCP)."""
    for _ in range(100):
        low = _free_port()
        if low + size > 65535:
            continue
        try:
            for port in range(low, low + size):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return low
    raise AssertionError("no free window of ports")


def test_ephemeral_ports_rotate_and_skip_taken(sockets: list[socket.socket]) -> None:
    low = _free_window(4)
    allocator = PortAllocator(low=low, high=low + 3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", low + 1))
        squatter.listen()
        got = []
        for _ in range(3):
            binding, sock = allocator.reserve(Binding("tcp", 80, "127.0.0.1"))
            sockets.append(sock)
            got.append(binding.host_port)
        assert low + 1 not in got
        assert len(set(got)) == 3
        assert all(low <= port <= low + 3 for port in got)
        with pytest.raises(Unavailable, match="no free tcp host port"):
            allocator.reserve(Binding("tcp", 80, "127.0.0.1"))


def test_foreign_address_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="not an address of this host"):
        PortAllocator().reserve(Binding("tcp", 80, "203.0.113.1", 8080))


def test_allocator_range_is_checked() -> None:
    with pytest.raises(InvalidArgument):
        PortAllocator(low=10, high=5)
