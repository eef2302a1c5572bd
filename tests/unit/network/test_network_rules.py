"""The instance's nft table and its elements, as text and JSON (dockyard.network.rules)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.network.ports import Binding
from dockyard.network.rules import (
    SCHEMA,
    Element,
    bridge_elements,
    parse_elements,
    publish_elements,
    render_add,
    render_delete,
    ruleset,
)

# What `nft -j list table inet dyt1` printed on the build host (nftables 1.0.6), trimmed
# to the parts parse_elements reads.
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
                        {"concat": ["10.240.0.2", 80]},
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
                        {"concat": ["10.240.0.3", 53]},
                    ]
                ],
            }
        },
        {
            "set": {
                "family": "inet",
                "name": "nat_subnets",
                "table": "dyt1",
                "elem": [
                    {
                        "elem": {
                            "val": {"prefix": {"addr": "10.240.0.0", "len": 24}},
                            "comment": "b0",
                        }
                    },
                    {"range": ["10.241.0.1", "10.241.0.9"]},
                ],
            }
        },
        {"set": {"family": "inet", "name": "bridges", "table": "dyt1", "elem": ["b0"]}},
        {
            "set": {
                "family": "inet",
                "name": "same_bridge",
                "table": "dyt1",
                "elem": [{"concat": ["b0", "b0"]}],
            }
        },
        {"set": {"family": "inet", "name": "legacy", "table": "dyt1", "elem": ["x"]}},
        {"chain": {"family": "inet", "table": "dyt1", "name": "forward"}},
    ]
}


def test_parse_elements() -> None:
    assert parse_elements(LISTING) == [
        Element("pub_any", ("tcp", 8080), ("10.240.0.2", 80), "c1"),
        Element("pub_ip", ("127.0.0.1", "udp", 53), ("10.240.0.3", 53), "c2"),
        Element("nat_subnets", ("10.240.0.0/24",), (), "b0"),
        Element("nat_subnets", ("10.241.0.1-10.241.0.9",)),
        Element("bridges", ("b0",)),
        Element("same_bridge", ("b0", "b0")),
    ]


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
        'add element inet dyt1 pub_any { tcp . 8080 comment "c1" : 10.240.0.2 . 80 }',
        'add element inet dyt1 pub_ip { 127.0.0.1 . udp . 53 comment "c2" : 10.240.0.3 . 53 }',
        'add element inet dyt1 nat_subnets { 10.240.0.0/24 comment "b0", 10.241.0.1-10.241.0.9 }',
        'add element inet dyt1 bridges { "b0" }',
        'add element inet dyt1 same_bridge { "b0" . "b0" }',
    ]


def test_render_delete_uses_keys_only() -> None:
    elements = [Element("pub_any", ("tcp", 8080), ("10.240.0.2", 80), "c1")]
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


def test_publish_elements_pick_the_map_by_host_address() -> None:
    bindings = [Binding("tcp", 80, "0.0.0.0", 8080), Binding("udp", 53, "127.0.0.1", 5353)]
    assert publish_elements(bindings, container_ip="10.240.0.2", owner="c1") == [
        Element("pub_any", ("tcp", 8080), ("10.240.0.2", 80), "c1"),
        Element("pub_ip", ("127.0.0.1", "udp", 5353), ("10.240.0.2", 53), "c1"),
    ]


def test_bridge_elements() -> None:
    nat = bridge_elements(name="b0", subnet="10.240.0.0/24", internal=False)
    internal = bridge_elements(name="b1", subnet="10.240.1.0/24", internal=True)
    assert {e.set_name for e in nat} == {"bridges", "same_bridge", "nat_subnets"}
    assert {e.set_name for e in internal} == {"bridges", "same_bridge", "internal"}
    assert Element("same_bridge", ("b0", "b0"), comment="b0") in nat


def test_ruleset_declares_every_schema_set_and_no_per_container_rule() -> None:
    text = ruleset("dyt1")
    assert text.startswith("add table inet dyt1\ndelete table inet dyt1\ntable inet dyt1 {")
    for name in SCHEMA:
        assert f" {name} {{" in text
    assert "fib daddr type local" in text
    assert "10." not in text  # no addresses: those live in sets


def test_ruleset_refuses_unsafe_table_names() -> None:
    with pytest.raises(InvalidArgument):
        ruleset("x; flush ruleset")
