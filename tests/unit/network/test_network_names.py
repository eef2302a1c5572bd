"""Names and addresses of network objects (dockyard.network.names)."""

from __future__ import annotations

import re

import pytest

from dockyard.core.errors import InvalidArgument, Unavailable
from dockyard.core.protocol import EndpointSpec
from dockyard.network.names import (
    IFNAMSIZ,
    ContainerInterface,
    check_bridge_name,
    check_container_id,
    check_interface_name,
    check_table,
    check_transit_subnet,
    endpoint_interface,
    endpoint_veth,
    gateway_address,
    mac_for,
    random_mac,
    router_netns,
    router_prefix,
    transit_pair,
    uplink_name,
)

CID = "0123456789abcdef" * 4


def test_router_namespace_names() -> None:
    assert router_netns("dyt3a9f", CID) == "dyk-dyt3a9f-0123456789ab"
    assert router_netns("dockyard", "t1").startswith(router_prefix("dockyard"))
    assert router_prefix("dockyard") == "dyk-dockyard-"
    for bad in ("", "../etc", "a/b", "a b"):
        with pytest.raises(InvalidArgument):
            router_netns("dockyard", bad)
    with pytest.raises(InvalidArgument):
        router_prefix("Not-an-instance")


def test_uplink_names_are_stable_and_fit() -> None:
    name = uplink_name("dyk-dockyard-0123456789ab")
    assert name == uplink_name("dyk-dockyard-0123456789ab")
    assert re.fullmatch(r"dyu[0-9a-f]{12}", name)
    assert len(name) < IFNAMSIZ
    assert uplink_name("dyk-other-0123456789ab") != name


def test_endpoint_veth_names() -> None:
    assert endpoint_veth(CID) == "ve" + CID[:13]
    assert len(endpoint_veth(CID)) == IFNAMSIZ - 1
    assert endpoint_veth("e1") == "vee1"
    for bad in ("", "a b", 'x"'):
        with pytest.raises(InvalidArgument):
            endpoint_veth(bad)


@pytest.mark.parametrize("name", ["eth0", "eth1", "net3", "e" * 15])
def test_good_interface_names(name: str) -> None:
    assert check_interface_name(name) == name


@pytest.mark.parametrize("name", ["", "lo", "Eth0", "0eth", "eth-0", "e" * 16, "eth 0"])
def test_bad_interface_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_interface_name(name)


def test_transit_pair_is_the_lowest_free_pair() -> None:
    assert transit_pair("100.64.0.0/16", []) == ("100.64.0.0", "100.64.0.1")
    assert transit_pair("100.64.0.0/16", ["100.64.0.0"]) == ("100.64.0.2", "100.64.0.3")
    # Either address taken takes the pair; holes are filled first.
    used = ["100.64.0.1", "100.64.0.2", "100.64.0.7", "10.0.0.4", "fe80::1", "junk"]
    assert transit_pair("100.64.0.0/16", used) == ("100.64.0.4", "100.64.0.5")
    # Addresses outside the subnet do not count.
    assert transit_pair("100.64.7.0/24", ["100.64.0.0", "100.64.0.1"])[0] == "100.64.7.0"


def test_transit_pair_exhausted() -> None:
    with pytest.raises(Unavailable, match="no free /31"):
        transit_pair("100.64.0.0/30", ["100.64.0.1", "100.64.0.2"])
    assert transit_pair("100.64.0.0/31", []) == ("100.64.0.0", "100.64.0.1")


@pytest.mark.parametrize("subnet", ["100.64.0.1/16", "100.64.0.0/32", "fd00::/64", "x"])
def test_bad_transit_subnets(subnet: str) -> None:
    with pytest.raises(InvalidArgument):
        check_transit_subnet(subnet)


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


def _endpoint(ip: str, **fields: str) -> EndpointSpec:
    base = {
        "endpoint_id": CID,
        "network_id": CID,
        "bridge": "br-0123456789ab",
        "subnet": "10.240.3.0/24",
        "gateway": "10.240.3.1",
        "ip": ip,
        "interface": "eth1",
    }
    return EndpointSpec(**{**base, **fields})  # type: ignore[arg-type]


def test_endpoint_interface() -> None:
    assert endpoint_interface(_endpoint("10.240.3.7")) == ContainerInterface(
        name="eth1", ip="10.240.3.7", prefixlen=24, gateway="10.240.3.1"
    )


@pytest.mark.parametrize("ip", ["10.240.3.1", "10.240.4.7", "10.240.3.255", "", "::1"])
def test_bad_container_addresses_are_refused(ip: str) -> None:
    with pytest.raises(InvalidArgument):
        endpoint_interface(_endpoint(ip))


@pytest.mark.parametrize(
    "fields",
    [{"interface": "lo"}, {"bridge": "b" * 16}, {"endpoint_id": "a b"}, {"gateway": "10.0.0.1"}],
)
def test_bad_endpoints_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        endpoint_interface(_endpoint("10.240.3.7", **fields))


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
