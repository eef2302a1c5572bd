"""The nftables table of one Dockyard instance, as pure text, and its set/map elements.

Everything per container or per bridge is an *element* of a named set or map; the rules
never change after :func:`ruleset` is loaded, so attaching a container costs the same
with 10 or 10,000 others (HOST-NOTES.md: about 0.1 ms per element in process).

The table ``inet <table>``::

    map  pub_ip       ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
    map  pub_any      inet_proto . inet_service : ipv4_addr . inet_service
    set  nat_subnets  ipv4_addr (intervals)     subnets masqueraded on the way out
    set  bridges      ifname                    every bridge of this instance
    set  internal     ifname                    bridges without any outside traffic
    set  same_bridge  ifname . ifname           (b . b) for every bridge b

    guard      (filter, raw)  drop what arrives on a bridge addressed to 127.0.0.0/8
    prerouting (nat, dstnat)  fib daddr type local -> publish
    output     (nat, dstnat)  fib daddr type local -> publish   (host's own traffic, 127/8)
    publish    dnat by pub_ip (published on one host address), then by pub_any (0.0.0.0)
    postrouting (nat, srcnat)
               masquerade nat_subnets leaving through a non-bridge interface
               masquerade DNATed from 127.0.0.0/8 into a bridge (needs route_localnet)
               masquerade DNATed from a container subnet into a bridge (hairpin)
    forward    (filter)  same bridge: accept; internal in or out: drop;
               established: accept; from/to our bridges: accept

``guard`` exists because route_localnet=1 on a bridge (needed so the host's own
connections to 127.0.0.1 can be DNATed into it) also makes the host accept packets
*from* the bridge addressed to 127.0.0.1: a container could reach host services bound
to loopback, the agent's included (CVE-2020-8558 in kube-proxy). It runs before
conntrack, so replies to DNATed loopback connections (addressed to the gateway after
masquerade) are untouched.

``same_bridge`` exists because with ``br_netfilter`` (bridge-nf-call-iptables=1, as on
the build hosts) frames bridged between two ports of one bridge traverse the inet
forward hook with iif == oif == the bridge; nft cannot compare two packet fields, so
the pair is looked up in a set.

Element comments carry the owner (a container id, or the bridge name), so a restarted
agent finds what a container left behind with :func:`parse_elements`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.network.ports import ANY_IP, Binding

__all__ = [
    "BRIDGE_SETS",
    "PUBLISH_MAPS",
    "SCHEMA",
    "Element",
    "Scalar",
    "bridge_elements",
    "parse_elements",
    "publish_elements",
    "render_add",
    "render_delete",
    "ruleset",
]

Scalar = str | int

# set name -> (key types, value types or () for a plain set)
SCHEMA: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pub_ip": (("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "pub_any": (("inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "nat_subnets": (("ipv4_addr",), ()),
    "bridges": (("ifname",), ()),
    "internal": (("ifname",), ()),
    "same_bridge": (("ifname", "ifname"), ()),
}
PUBLISH_MAPS = ("pub_ip", "pub_any")
BRIDGE_SETS = ("nat_subnets", "bridges", "internal", "same_bridge")

# What may appear unquoted or inside a quoted nft string we generate: addresses,
# prefixes, protocol names, interface names and container ids.
_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a set or map of :data:`SCHEMA`. ``value`` is empty for sets."""

    set_name: str
    key: tuple[Scalar, ...]
    value: tuple[Scalar, ...] = ()
    comment: str = ""


def ruleset(table: str) -> str:
    """The whole table as one nft transaction: create-or-replace, elements empty.

    ``add table`` + ``delete table`` makes the replacement work whether or not the
    table exists; the kernel applies the batch atomically.
    """
    _check_safe(table)
    return f"""add table inet {table}
delete table inet {table}
table inet {table} {{
  map pub_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  map pub_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  set nat_subnets {{ type ipv4_addr; flags interval; }}
  set bridges {{ type ifname; }}
  set internal {{ type ifname; }}
  set same_bridge {{ type ifname . ifname; }}
  chain publish {{
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @pub_ip
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} dnat ip to meta l4proto . th dport map @pub_any
  }}
  chain guard {{
    type filter hook prerouting priority raw; policy accept;
    iifname @bridges ip daddr 127.0.0.0/8 drop
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @nat_subnets oifname != @bridges masquerade
    ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade
    ct status dnat ip saddr @nat_subnets oifname @bridges masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname . oifname @same_bridge accept
    iifname @internal drop
    oifname @internal drop
    ct state established,related accept
    iifname @bridges accept
    oifname @bridges accept
  }}
}}
"""  # noqa: E501


def publish_elements(
    bindings: Iterable[Binding], *, container_ip: str, owner: str
) -> list[Element]:
    """DNAT map elements for ``bindings`` to ``container_ip``, commented with ``owner``."""
    elements = []
    for b in bindings:
        target = (container_ip, b.container_port)
        if b.host_ip == ANY_IP:
            elements.append(Element("pub_any", (b.protocol, b.host_port), target, owner))
        else:
            key = (b.host_ip, b.protocol, b.host_port)
            elements.append(Element("pub_ip", key, target, owner))
    return elements


def bridge_elements(*, name: str, subnet: str, internal: bool) -> list[Element]:
    """Set elements registering bridge ``name``; NAT for ``subnet`` unless ``internal``."""
    elements = [
        Element("bridges", (name,), comment=name),
        Element("same_bridge", (name, name), comment=name),
    ]
    if internal:
        elements.append(Element("internal", (name,), comment=name))
    else:
        elements.append(Element("nat_subnets", (subnet,), comment=name))
    return elements


def render_add(table: str, elements: Iterable[Element]) -> str:
    """``add element`` commands (one line per set) for ``elements``; "" if there are none.

    Adding an element that exists with the same value is not an error; adding a map key
    that exists with a *different* value is (nft reports "File exists").
    """
    return _render("add", table, elements, with_values=True)


def render_delete(table: str, elements: Iterable[Element]) -> str:
    """``delete element`` commands for ``elements`` (keys only); "" if there are none.

    Deleting a missing element fails the whole transaction with "No such file or
    directory" (nft 1.0.6 has no ``destroy``); callers wanting idempotence retry per element.
    """
    return _render("delete", table, elements, with_values=False)


def parse_elements(listing: Mapping[str, Any]) -> list[Element]:
    """The elements of our sets and maps in a ``list table`` JSON answer.

    Sets and maps not in :data:`SCHEMA` (an older layout) are ignored; element shapes
    this module never writes raise ``InvalidArgument``.
    """
    found: list[Element] = []
    for item in listing.get("nftables", []):
        obj = item.get("set") or item.get("map")
        if not isinstance(obj, dict) or obj.get("name") not in SCHEMA:
            continue
        name = str(obj["name"])
        is_map = "map" in item
        for raw in obj.get("elem", []):
            raw_key, raw_value = (raw[0], raw[1]) if is_map else (raw, None)
            key, comment = _unwrap_elem(raw_key)
            value = _scalars(raw_value) if raw_value is not None else ()
            found.append(Element(name, key, value, comment))
    return found


def _render(verb: str, table: str, elements: Iterable[Element], *, with_values: bool) -> str:
    _check_safe(table)
    by_set: dict[str, list[str]] = {}
    for elem in elements:
        key_types, value_types = _schema(elem)
        text = _render_tuple(elem.key, key_types)
        if with_values:
            if elem.comment:
                _check_safe(elem.comment)
                text += f' comment "{elem.comment}"'
            if value_types:
                text += " : " + _render_tuple(elem.value, value_types)
        by_set.setdefault(elem.set_name, []).append(text)
    return "".join(
        f"{verb} element inet {table} {name} {{ {', '.join(items)} }}\n"
        for name, items in by_set.items()
    )


def _schema(elem: Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        key_types, value_types = SCHEMA[elem.set_name]
    except KeyError:
        raise InvalidArgument(f"unknown nftables set {elem.set_name!r}") from None
    if len(elem.key) != len(key_types) or len(elem.value) != len(value_types):
        raise InvalidArgument(f"element {elem} does not match the type of set {elem.set_name!r}")
    return key_types, value_types


def _render_tuple(values: tuple[Scalar, ...], types: tuple[str, ...]) -> str:
    parts = []
    for value, type_ in zip(values, types, strict=True):
        text = str(value)
        _check_safe(text)
        parts.append(f'"{text}"' if type_ == "ifname" else text)
    return " . ".join(parts)


def _check_safe(text: str) -> None:
    if not _SAFE.match(text):
        raise InvalidArgument(f"refusing to put {text!r} into an nftables command")


def _unwrap_elem(raw: Any) -> tuple[tuple[Scalar, ...], str]:
    # {"elem": {"val": ..., "comment": ...}} when the element has a comment or flags.
    if isinstance(raw, dict) and "elem" in raw:
        inner = raw["elem"]
        return _scalars(inner["val"]), str(inner.get("comment", ""))
    return _scalars(raw), ""


def _scalars(raw: Any) -> tuple[Scalar, ...]:
    if isinstance(raw, dict) and "concat" in raw:
        return tuple(_scalar(part) for part in raw["concat"])
    return (_scalar(raw),)


def _scalar(raw: Any) -> Scalar:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, dict) and "prefix" in raw:
        return f"{raw['prefix']['addr']}/{raw['prefix']['len']}"
    if isinstance(raw, dict) and "range" in raw:
        low, high = raw["range"]
        return f"{low}-{high}"
    raise InvalidArgument(f"unexpected nftables element value {raw!r}")
