"""Docker's PortBindings as the agent's port mappings (controller.networks.port_mappings)."""

from __future__ import annotations

import pytest

from dockyard.controller.networks import port_mappings
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import PortBinding
from dockyard.core.protocol import PortMapping


def mappings(
    bindings: dict[str, tuple[PortBinding, ...]],
    *,
    exposed: tuple[str, ...] = (),
    publish_all: bool = False,
) -> tuple[PortMapping, ...]:
    return port_mappings(bindings, exposed=exposed, publish_all=publish_all)


def test_nothing_published() -> None:
    assert mappings({}) == ()
    assert mappings({}, exposed=("80/tcp",)) == ()


def test_a_host_port() -> None:
    assert mappings({"80/tcp": (PortBinding(host_port="8080"),)}) == (
        PortMapping("tcp", 80, "", 8080),
    )


def test_a_host_ip_and_udp() -> None:
    assert mappings({"53/udp": (PortBinding("127.0.0.1", "5353"),)}) == (
        PortMapping("udp", 53, "127.0.0.1", 5353),
    )


def test_no_host_port_asks_for_an_ephemeral_one() -> None:
    assert mappings({"80/tcp": (PortBinding(),)}) == (PortMapping("tcp", 80, "", 0),)
    assert mappings({"80/tcp": ()}) == (PortMapping("tcp", 80, "", 0),)


def test_several_bindings_for_one_port() -> None:
    result = mappings({"80": (PortBinding(host_port="8080"), PortBinding("127.0.0.1", "9090"))})
    assert result == (PortMapping("tcp", 80, "", 8080), PortMapping("tcp", 80, "127.0.0.1", 9090))


def test_publish_all_adds_exposed_ports_not_bound_explicitly() -> None:
    result = mappings(
        {"80/tcp": (PortBinding(host_port="8080"),)},
        exposed=("80/tcp", "443", "53/udp"),
        publish_all=True,
    )
    assert result == (
        PortMapping("tcp", 80, "", 8080),
        PortMapping("tcp", 443, "", 0),
        PortMapping("udp", 53, "", 0),
    )


@pytest.mark.parametrize("key", ["80/sctp", "0/tcp", "65536/tcp", "http/tcp", "-1/tcp", "/tcp"])
def test_invalid_container_ports(key: str) -> None:
    with pytest.raises(InvalidArgument):
        mappings({key: (PortBinding(),)})


def test_invalid_exposed_port_with_publish_all() -> None:
    with pytest.raises(InvalidArgument):
        mappings({}, exposed=("80/sctp",), publish_all=True)


@pytest.mark.parametrize("host_port", ["0", "65536", "http", "-1", "80 "])
def test_invalid_host_ports(host_port: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid host port"):
        mappings({"80/tcp": (PortBinding(host_port=host_port),)})


@pytest.mark.parametrize("host_ip", ["localhost", "256.0.0.1", "::1", "1.2.3"])
def test_invalid_host_ips(host_ip: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid host IP"):
        mappings({"80/tcp": (PortBinding(host_ip=host_ip),)})
