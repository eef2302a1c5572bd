"""The root and router nft tables and their elements, as text and JSON (dockyard.network.rules)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.network.ports import Binding
from dockyard.network.rules import (
    BRIDGE_SETS,
    ENDPOINT_SETS,
    INTERVAL_SETS,
    MEMBER_SLOTS,
    PUBLISHED_MARK,
    ROOT_SETS,
    ROUTER_SETS,
    SCHEMA,
    Element,
    bridge_elements,
    host_publish_elements,
    parse_elements,
    render_add,
    render_delete,
    root_ruleset,
    router_publish_elements,
    router_ruleset,
    source_elements,
    uplink_elements,
)

# What `nft -j list table inet ...` printed on the build host (nftables 1.0.6), trimmed to
# the parts parse_elements reads; a root and a router table in one listing.
LISTING: dict[str, Any] = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "dyt1", "handle": 1}},
        {
            "map": {
                "family": "inet",
                "name": "pub_any",
                "table": "dyt1",
                "type": ["inet_proto", "inet_service"],
                "map": "ipv4_addr . inet_service",
                "elem": [
                    [
                        {"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "c1"}},
                        {"concat": ["100.64.0.1", 8080]},
                    ]
                ],
            }
        },
        {
            "map": {
                "family": "inet",
                "name": "pub_ip",
                "table": "dyt1",
                "elem": [
                    [
                        {"elem": {"val": {"concat": ["127.0.0.1", "udp", 53]}, "comment": "c2"}},
                        {"concat": ["100.64.0.3", 53]},
                    ]
                ],
            }
        },
        {
            "set": {
                "family": "inet",
                "name": "uplinks",
                "table": "dyt1",
                "elem": [{"elem": {"val": "dyu0123456789ab", "comment": "dyk-dyt1-t1"}}],
            }
        },
        {
            "map": {
                "family": "inet",
                "name": "publish",
                "table": "dockyard",
                "elem": [
                    [
                        {"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "c1"}},
                        {"concat": ["10.0.0.2", 80]},
                    ]
                ],
            }
        },
        {"set": {"family": "inet", "name": "bridges", "table": "dockyard", "elem": ["br-0"]}},
        {
            "set": {
                "family": "inet",
                "name": "same_bridge",
                "table": "dockyard",
                "elem": [{"concat": ["br-0", "br-0"]}],
            }
        },
        {"set": {"family": "inet", "name": "nat_subnets", "table": "dyt1", "elem": ["x"]}},
        {"chain": {"family": "inet", "table": "dyt1", "name": "forward"}},
    ]
}


def test_parse_elements() -> None:
    assert parse_elements(LISTING) == [
        Element("pub_any", ("tcp", 8080), ("100.64.0.1", 8080), "c1"),
        Element("pub_ip", ("127.0.0.1", "udp", 53), ("100.64.0.3", 53), "c2"),
        Element("uplinks", ("dyu0123456789ab",), (), "dyk-dyt1-t1"),
        Element("publish", ("tcp", 8080), ("10.0.0.2", 80), "c1"),
        Element("bridges", ("br-0",)),
        Element("same_bridge", ("br-0", "br-0")),
    ]


def test_parse_prefixes_and_ranges() -> None:
    listing = {
        "nftables": [
            {
                "set": {
                    "name": "bridges",
                    "elem": [
                        {"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 24}}}},
                        {"range": ["10.0.1.1", "10.0.1.9"]},
                    ],
                }
            }
        ]
    }
    assert [e.key for e in parse_elements(listing)] == [("10.0.0.0/24",), ("10.0.1.1-10.0.1.9",)]


def test_parse_elements_of_an_empty_listing() -> None:
    assert parse_elements({}) == []
    assert parse_elements({"nftables": [{"set": {"name": "bridges"}}]}) == []


def test_parse_refuses_unknown_shapes() -> None:
    odd = {"nftables": [{"set": {"name": "bridges", "elem": [{"set": ["x"]}]}}]}
    with pytest.raises(InvalidArgument):
        parse_elements(odd)


def test_render_add_groups_by_set_and_quotes_interface_names() -> None:
    text = render_add("dyt1", parse_elements(LISTING))
    assert text.splitlines() == [
        'add element inet dyt1 pub_any { tcp . 8080 comment "c1" : 100.64.0.1 . 8080 }',
        'add element inet dyt1 pub_ip { 127.0.0.1 . udp . 53 comment "c2" : 100.64.0.3 . 53 }',
        'add element inet dyt1 uplinks { "dyu0123456789ab" comment "dyk-dyt1-t1" }',
        'add element inet dyt1 publish { tcp . 8080 comment "c1" : 10.0.0.2 . 80 }',
        'add element inet dyt1 bridges { "br-0" }',
        'add element inet dyt1 same_bridge { "br-0" . "br-0" }',
    ]


def test_render_delete_uses_keys_only() -> None:
    elements = [Element("pub_any", ("tcp", 8080), ("100.64.0.1", 8080), "c1")]
    assert render_delete("dyt1", elements) == "delete element inet dyt1 pub_any { tcp . 8080 }\n"


def test_render_nothing() -> None:
    assert render_add("dyt1", []) == ""
    assert render_delete("dyt1", []) == ""


@pytest.mark.parametrize(
    "element",
    [
        Element("nope", ("x",)),
        Element("bridges", ("a", "b")),
        Element("pub_any", ("tcp", 80)),  # map element without a value
        Element("bridges", ('b"; flush ruleset; "',)),
        Element("bridges", ("b0",), comment="a b"),
    ],
)
def test_render_refuses_bad_elements(element: Element) -> None:
    with pytest.raises(InvalidArgument):
        render_add("dyt1", [element])


def test_host_publish_elements_point_at_the_router() -> None:
    bindings = [Binding("tcp", 80, "0.0.0.0", 8080), Binding("udp", 53, "127.0.0.1", 5353)]
    assert host_publish_elements(bindings, router_ip="100.64.0.1", owner="c1") == [
        Element("pub_any", ("tcp", 8080), ("100.64.0.1", 8080), "c1"),
        Element("pub_ip", ("127.0.0.1", "udp", 5353), ("100.64.0.1", 5353), "c1"),
    ]


def test_router_publish_elements_key_by_protocol_and_host_port() -> None:
    bindings = [
        Binding("tcp", 80, "127.0.0.1", 8080),
        Binding("tcp", 80, "10.1.2.3", 8080),  # the same host port on two addresses
        Binding("udp", 53, "0.0.0.0", 5353),
    ]
    assert router_publish_elements(bindings, container_ip="10.0.0.2", owner="c1") == [
        Element("publish", ("tcp", 8080), ("10.0.0.2", 80), "c1"),
        Element("publish", ("udp", 5353), ("10.0.0.2", 53), "c1"),
    ]


def test_bridge_elements() -> None:
    plain = bridge_elements(name="br-a", internal=False, isolated=False)
    internal = bridge_elements(name="br-b", internal=True, isolated=False)
    isolated = bridge_elements(name="br-c", internal=False, isolated=True)
    assert {e.set_name for e in plain} == {"bridges", "same_bridge"}
    assert {e.set_name for e in internal} == {"bridges", "same_bridge", "internal"}
    # Ports of an isolated bridge may not talk, not even routed back through the gateway
    # (where security groups would otherwise decide).
    assert {e.set_name for e in isolated} == {"bridges", "hairpin"}
    assert Element("hairpin", ("br-c", "br-c"), comment="br-c") in isolated
    assert Element("same_bridge", ("br-a", "br-a"), comment="br-a") in plain


def test_uplink_elements() -> None:
    assert uplink_elements(uplink="dyu1", router="dyk-x-t") == [
        Element("uplinks", ("dyu1",), comment="dyk-x-t")
    ]


def test_root_ruleset_declares_its_sets_and_no_per_container_rule() -> None:
    text = root_ruleset("dyt1", transit="100.64.0.0/16")
    assert text.startswith("add table inet dyt1\ndelete table inet dyt1\ntable inet dyt1 {")
    declared = {
        line.split()[1] for line in text.splitlines() if line.strip().startswith(("set ", "map "))
    }
    assert declared == set(ROOT_SETS)
    assert "fib daddr type local" in text
    assert "ip saddr 100.64.0.0/16 oifname != @uplinks masquerade" in text
    assert "10." not in text  # no tenant addresses: those never leave the routers


def test_router_ruleset_declares_its_sets_and_a_place_for_security_groups() -> None:
    text = router_ruleset()
    assert text.startswith("add table inet dockyard\ndelete table inet dockyard\n")
    declared = {
        line.split()[1] for line in text.splitlines() if line.strip().startswith(("set ", "map "))
    }
    assert declared == set(ROUTER_SETS)
    assert "oifname @bridges jump security_groups" in text
    assert "chain security_groups {" in text
    assert f"meta mark 0x{PUBLISHED_MARK:x} accept" in text
    assert text.count("policy drop") == 2  # input and forward
    assert set(SCHEMA) == set(ROOT_SETS) | set(ROUTER_SETS)
    # One pair of rules per membership slot, none per endpoint, group or rule.
    assert text.count("map @sg_members jump sg_source") == MEMBER_SLOTS
    assert "meta mark set 15 ip saddr . meta mark != @sg_members return" in text
    for name in INTERVAL_SETS:
        assert f"set {name} {{ type" in text
    assert text.count("flags interval") == len(INTERVAL_SETS)


def test_the_router_has_a_bridge_table_against_spoofing() -> None:
    text = router_ruleset()
    bridge = text.split("add table bridge dockyard\ndelete table bridge dockyard\n")[1]
    assert "set port_mac { type ifname . ether_addr; }" in bridge
    assert "set port_ip { type ifname . ether_addr . ipv4_addr; }" in bridge
    chain = bridge.split("chain prerouting {")[1].split("\n  }")[0]
    rules = [line.strip() for line in chain.splitlines() if line.strip()]
    # Fixed rules only (no endpoint in them), in this order: ports that are not
    # endpoints pass; endpoints send IPv4 and ARP only, as their own MAC and address.
    assert rules == [
        "type filter hook prerouting priority filter; policy accept;",
        'iifname != "ve*" accept',
        "ether type != { ip, arp } drop",
        "iifname . ether saddr != @port_mac drop",
        "ether type ip iifname . ether saddr . ip saddr != @port_ip drop",
        "ether type arp iifname . arp saddr ether . arp saddr ip != @port_ip drop",
    ]
    assert set(BRIDGE_SETS) <= set(ENDPOINT_SETS)  # owned by a container, swept by owner


def test_source_elements_pin_the_mac_derived_from_the_address() -> None:
    elements = source_elements(veth="ve0123456789abc", ip="10.1.2.3", owner="c1")
    assert elements == [
        Element("port_mac", ("ve0123456789abc", "02:42:0a:01:02:03"), comment="c1"),
        Element("port_ip", ("ve0123456789abc", "02:42:0a:01:02:03", "10.1.2.3"), comment="c1"),
    ]
    assert render_add("dockyard", elements).splitlines() == [
        'add element bridge dockyard port_mac { "ve0123456789abc" . 02:42:0a:01:02:03'
        ' comment "c1" }',
        'add element bridge dockyard port_ip { "ve0123456789abc" . 02:42:0a:01:02:03'
        ' . 10.1.2.3 comment "c1" }',
    ]
    assert render_delete("dockyard", elements[1:]) == (
        'delete element bridge dockyard port_ip { "ve0123456789abc" . 02:42:0a:01:02:03'
        " . 10.1.2.3 }\n"
    )


def test_parse_source_elements_as_nft_lists_them() -> None:
    listing = {
        "nftables": [
            {"table": {"family": "bridge", "name": "dockyard"}},
            {
                "set": {
                    "family": "bridge",
                    "name": "port_ip",
                    "table": "dockyard",
                    "type": ["ifname", "ether_addr", "ipv4_addr"],
                    "elem": [
                        {
                            "elem": {
                                "val": {
                                    "concat": ["ve0123456789abc", "02:42:0a:00:00:02", "10.0.0.2"]
                                },
                                "comment": "c1",
                            }
                        }
                    ],
                }
            },
        ]
    }
    assert parse_elements(listing) == [
        Element("port_ip", ("ve0123456789abc", "02:42:0a:00:00:02", "10.0.0.2"), comment="c1")
    ]


def test_the_router_forward_chain_checks_hairpins_before_groups() -> None:
    forward = router_ruleset().split("chain forward {")[1].split("}")[0].splitlines()
    order = [line.strip() for line in forward if line.strip()]
    assert order.index("iifname . oifname @hairpin drop") < order.index(
        "oifname @bridges jump security_groups"
    )
    assert order[-1] == "oifname @bridges jump security_groups"


def test_floating_ips_in_the_root_table() -> None:
    text = root_ruleset("dyt1", transit="100.64.0.0/16")
    assert "ip saddr @floating ip saddr . iifname != @floating_via drop" in text
    assert "ip daddr . oifname @floating_via accept" in text
    postrouting = text.split("chain postrouting {")[1]
    assert postrouting.index("ip saddr @floating accept") < postrouting.index("masquerade")


def test_interval_elements_name_their_tag_as_a_range() -> None:
    # nftables 1.0.6 cannot delete an all-singleton element of a concatenated interval set.
    elements = [
        Element("sg_cidr_ports", (7, "tcp", 22, "10.0.0.1"), comment="p-1"),
        Element("sg_group_ports", (7, "tcp", "80-443", 9)),
        Element("sg_group_proto", (7, "icmp", 9)),
    ]
    assert render_delete("dockyard", elements).splitlines() == [
        "delete element inet dockyard sg_cidr_ports { 7-7 . tcp . 22 . 10.0.0.1 }",
        "delete element inet dockyard sg_group_ports { 7-7 . tcp . 80-443 . 9 }",
        "delete element inet dockyard sg_group_proto { 7 . icmp . 9 }",
    ]
    assert render_add("dockyard", elements[:1]) == (
        'add element inet dockyard sg_cidr_ports { 7-7 . tcp . 22 . 10.0.0.1 comment "p-1" }\n'
    )


def test_parse_security_group_elements_as_nft_lists_them() -> None:
    listing = {
        "nftables": [
            {
                "set": {
                    "name": "sg_cidr_ports",
                    "elem": [
                        {
                            "elem": {
                                "val": {
                                    "concat": [
                                        5,
                                        "tcp",
                                        {"range": [80, 443]},
                                        {"prefix": {"addr": "0.0.0.0", "len": 0}},
                                    ]
                                },
                                "comment": "p-x",
                            }
                        },
                        {"concat": [5, "tcp", 22, "10.1.2.3"]},
                    ],
                }
            },
            {
                "map": {
                    "name": "sg_members",
                    "elem": [[{"elem": {"val": {"concat": ["10.0.0.2", 0]}, "comment": "c"}}, 9]],
                }
            },
        ]
    }
    assert parse_elements(listing) == [
        Element("sg_cidr_ports", (5, "tcp", "80-443", "0.0.0.0/0"), comment="p-x"),
        Element("sg_cidr_ports", (5, "tcp", 22, "10.1.2.3")),
        Element("sg_members", ("10.0.0.2", 0), (9,), "c"),
    ]


def test_rulesets_refuse_unsafe_input() -> None:
    with pytest.raises(InvalidArgument):
        root_ruleset("x; flush ruleset", transit="100.64.0.0/16")
    with pytest.raises(InvalidArgument):
        root_ruleset("dyt1", transit="100.64.0.1/16")
