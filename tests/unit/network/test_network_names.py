"""Names and addresses of network objects (dockyard.network.names)."""

from __future__ import annotations

import re

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import NetworkSpec
from dockyard.network.names import (
    ContainerInterface,
    check_bridge_name,
    check_container_id,
    check_table,
    check_veth_prefix,
    container_interface,
    gateway_address,
    mac_for,
    random_mac,
    veth_name,
)

CID = "0123456789abcdef" * 4


@pytest.mark.parametrize("prefix", ["v", "dy", "dyv", "dyt3"])
def test_veth_name_fills_fifteen_characters(prefix: str) -> None:
    name = veth_name(prefix, CID)
    assert len(name) == 15
    assert name == prefix + CID[: 15 - len(prefix)]


def test_veth_name_of_a_short_id_is_the_whole_id() -> None:
    assert veth_name("dyv", "abc") == "dyvabc"


@pytest.mark.parametrize("prefix", ["", "dyvet", "1abc", "Dy", "d-y"])
def test_bad_veth_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidArgument):
        check_veth_prefix(prefix)


@pytest.mark.parametrize("table", ["dockyard", "dyt3a9f", "a_b"])
def test_good_tables(table: str) -> None:
    assert check_table(table) == table


@pytest.mark.parametrize("table", ["", "Dockyard", "9x", "a-b", "x" * 33, 'a"b'])
def test_bad_tables_are_refused(table: str) -> None:
    with pytest.raises(InvalidArgument):
        check_table(table)


def test_bridge_names_fit_ifnamsiz() -> None:
    assert check_bridge_name("dockyard0") == "dockyard0"
    assert check_bridge_name("b" * 15) == "b" * 15
    for bad in ("b" * 16, "", "br 0", "br/0", 'br"0'):
        with pytest.raises(InvalidArgument):
            check_bridge_name(bad)


def test_container_ids_must_be_safe_for_nft_comments() -> None:
    assert check_container_id(CID) == CID
    for bad in ("", 'a"b', "a b", "a\nb", "x" * 129):
        with pytest.raises(InvalidArgument):
            check_container_id(bad)


def test_gateway_address_gives_prefix_length() -> None:
    assert gateway_address(subnet="10.240.3.0/24", gateway="10.240.3.1") == ("10.240.3.1", 24)


@pytest.mark.parametrize(
    ("subnet", "gateway"),
    [
        ("10.240.3.0/24", "10.240.4.1"),  # outside
        ("10.240.3.0/24", "10.240.3.0"),  # network address
        ("10.240.3.0/24", "10.240.3.255"),  # broadcast
        ("10.240.3.1/24", "10.240.3.2"),  # host bits set
        ("fd00::/64", "fd00::1"),  # IPv6
        ("nonsense", "10.0.0.1"),
        ("10.240.3.0/24", "nonsense"),
    ],
)
def test_bad_gateways_are_refused(subnet: str, gateway: str) -> None:
    with pytest.raises(InvalidArgument):
        gateway_address(subnet=subnet, gateway=gateway)


def _spec(ip: str) -> NetworkSpec:
    return NetworkSpec(
        mode="bridge", bridge="b0", subnet="10.240.3.0/24", gateway="10.240.3.1", ip=ip
    )


def test_container_interface() -> None:
    assert container_interface(_spec("10.240.3.7")) == ContainerInterface(
        ip="10.240.3.7", prefixlen=24, gateway="10.240.3.1"
    )


@pytest.mark.parametrize("ip", ["10.240.3.1", "10.240.4.7", "10.240.3.255", "", "::1"])
def test_bad_container_addresses_are_refused(ip: str) -> None:
    with pytest.raises(InvalidArgument):
        container_interface(_spec(ip))


def test_random_mac_is_local_unicast() -> None:
    for _ in range(50):
        mac = random_mac()
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
        first = int(mac[:2], 16)
        assert first & 0x01 == 0  # unicast
        assert first & 0x02 == 0x02  # locally administered


def test_mac_follows_the_address_like_docker() -> None:
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert mac_for("10.89.1.200") == "02:42:0a:59:01:c8"
