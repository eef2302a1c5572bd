"""The nftables tables of one instance, as pure text, and their set/map elements (ADR 0016).

Three tables, all with fixed rules: everything per container, bridge or router is an
*element* of a named set or map, so attaching a container costs the same with 10 or
10,000 others (HOST-NOTES.md: about 0.1 ms per element in process).

**The root table** ``inet <instance>`` in the host's namespace holds only what the host
needs, whatever the number of containers and networks::

    map  pub_ip   ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
    map  pub_any  inet_proto . inet_service : ipv4_addr . inet_service
                  published ports -> (router transit address, host port)
    set  uplinks  ifname      the root side of every router's uplink
    set  floating      ipv4_addr            every bound floating IP
    set  floating_via  ipv4_addr . ifname   (floating IP, the uplink of its router)

    guard       (filter, raw)  drop what arrives on an uplink from or to 127.0.0.0/8;
                drop what comes from a floating IP but not out of its router's uplink
    prerouting  (nat, dstnat)  fib daddr type local -> publish
    output      (nat, dstnat)  fib daddr type local -> publish   (host's own traffic, 127/8)
    publish     dnat by pub_ip (published on one host address), then by pub_any (0.0.0.0)
    postrouting (nat, srcnat)
                nothing for a floating IP (it leaves as itself)
                masquerade the transit subnet leaving through a non-uplink interface
                masquerade DNATed from 127.0.0.0/8 into an uplink (needs route_localnet)
                masquerade DNATed from the transit subnet into an uplink (hairpin: a
                router receiving its own address as source would drop it as martian)
    forward     (filter)  into an uplink: established, DNATed (a published port) or to
                a floating IP of that uplink's router (the host routes each one as a /32
                to its router's transit address), else drop: routers never reach each
                other's transit addresses

``guard`` exists because route_localnet=1 on an uplink (needed so the host's own
connections to 127.0.0.1 can be DNATed into it) also makes the host accept packets *from*
it addressed to 127.0.0.1 (CVE-2020-8558 in kube-proxy). It runs before conntrack, so
replies to DNATed loopback connections (addressed to the uplink after masquerade) pass.

**The router table** ``inet dockyard`` inside each tenant's router namespace::

    map  publish      inet_proto . inet_service : ipv4_addr . inet_service
                      (protocol, host port) arriving on up0 -> (container ip, port)
    set  bridges      ifname          every bridge of the router
    set  internal     ifname          bridges without a way out (``--internal``)
    set  same_bridge  ifname . ifname (b . b) for every bridge whose ports talk freely
    set  hairpin      ifname . ifname (b . b) for every bridge of isolated ports

    floating IPs (:mod:`dockyard.network.ingress`), keyed by the floating IP F:
    map  fip_publish  ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
                      (F, protocol, public port) -> (container ip, port), a ``-p`` publish
    map  fip_expose   the same for exposed ports (security groups decide)
    map  fip_host     ipv4_addr : ipv4_addr   F -> container ip (protocols without ports)
    map  fip_snat     ipv4_addr : ipv4_addr   container ip -> F (its egress)

    security groups (:mod:`dockyard.network.ingress`): per endpoint address, owned by
    its container
    map  sg_profile   ipv4_addr : mark          address -> the tag of its profile
    map  sg_members   ipv4_addr . mark : mark   (address, slot) -> tag of a group it is in
    and per profile (the compiled rules, shared by every endpoint with the same rules):
    set  sg_cidr_ports   mark . inet_proto . inet_service . ipv4_addr  (interval)
    set  sg_cidr_proto   mark . inet_proto . ipv4_addr                 (interval)
    set  sg_cidr_all     mark . ipv4_addr                              (interval)
    set  sg_group_ports  mark . inet_proto . inet_service . mark       (interval)
    set  sg_group_proto  mark . inet_proto . mark
    set  sg_group_all    mark . mark
    set  sg_tags         mark      every tag handed out, its group or profile as comment

    prerouting  (nat, dstnat)  on up0: to a floating IP, dnat by fip_publish (marked),
                fip_expose, fip_host; to the router's own address, mark and dnat by
                publish; unmark what no publish took
    postrouting (nat, srcnat)  through up0: snat by fip_snat, else masquerade
    input       (filter, policy drop)  established; lo; from a bridge to its own gateway:
                DNS (udp/tcp 53) and ICMP echo
    forward     (filter, policy drop)  internal bridges never meet up0; established;
                same bridge; no hairpin on isolated ports; bridge -> up0; up0 -> bridge
                when marked (a ``-p`` publish); anything else into a bridge goes to
                ``security_groups``; then the policy: nothing else passes
    security_groups  the destination's profile tag into ``ct mark``; accepted when
                (tag, protocol, port, source) is in an ``sg_cidr_*`` set, or, for each
                slot of the source's memberships in turn (``meta mark``: the slot, then
                the group's tag), (tag, protocol, port, group) in an ``sg_group_*`` set

**The router's bridge table** ``bridge dockyard`` (ADR 0022), anti-spoofing: br_netfilter
is off in routers, so only a bridge-family hook sees the frames a bridge forwards
between its ports::

    set  port_mac  ifname . ether_addr               (endpoint veth, its MAC)
    set  port_ip   ifname . ether_addr . ipv4_addr   (endpoint veth, its MAC, its address)
                   both per endpoint (:func:`source_elements`), owned by its container

    prerouting  (filter, bridge prerouting)  on ports ``ve*`` only: anything but IPv4 and
                ARP drop; a source MAC not the port's drop; IPv4 whose (MAC, source
                address) is not the port's drop; ARP whose sender (MAC, address) is not
                the port's drop

Why slots: a rule naming a source group needs "the source is a member of G" and
"(destination, port, G) is allowed" joined on G. nft joins through a register: the
source's group tags are read one slot at a time into ``meta mark`` (an address is in at
most :data:`MEMBER_SLOTS` groups) and looked up together with the destination's tag. Why
profiles: adding an element to a concatenated interval set clones the set's lookup tables,
a cost that grows with the set (measured: 0.4 ms at 10 elements, 4.6 ms at 20,000), while
hash maps stay flat; so what grows with the endpoints (``sg_profile``, ``sg_members``) is
hashed, and the interval sets hold one copy of each distinct rule list.

``same_bridge`` exists because with ``br_netfilter`` (on by default in every namespace
once loaded, as on the build hosts) frames bridged between two ports of one bridge
traverse the inet forward hook with iif == oif == the bridge; nft cannot compare two
packet fields, so the pair is looked up in a set. Routers turn br_netfilter off (see
:mod:`dockyard.network.router`: bridged frames then stay on the bridge, which costs
less and passes what ``same_bridge`` accepted), but it comes back on in a router made
before the kernel module was loaded, until the agent reopens it; and a container may
route to its neighbour through the gateway, which the same pair accepts. A bridge of
isolated ports (the NAT-only ``bridge`` network) is left out, so a container cannot
reach its neighbour by routing through the gateway either.

Element comments carry the owner (a container id, a bridge or router name), so a
restarted agent finds what a container left behind with :func:`parse_elements`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.network.names import ROUTER_TABLE, UPLINK_INSIDE, mac_for
from dockyard.network.ports import ANY_IP, Binding

__all__ = [
    "BRIDGE_SETS",
    "ENDPOINT_SETS",
    "FIP_MAPS",
    "FLOATING_SETS",
    "HOST_PUBLISH_MAPS",
    "INTERVAL_SETS",
    "MEMBER_SLOTS",
    "PROFILE_SETS",
    "PUBLISHED_MARK",
    "ROOT_SETS",
    "ROUTER_SETS",
    "SCHEMA",
    "Element",
    "Scalar",
    "bridge_elements",
    "host_publish_elements",
    "parse_elements",
    "render_add",
    "render_delete",
    "root_ruleset",
    "router_publish_elements",
    "router_ruleset",
    "source_elements",
    "uplink_elements",
]

Scalar = str | int

# set name -> (key types, value types or () for a plain set); names are unique across
# the root and the router tables.
SCHEMA: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # root
    "pub_ip": (("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "pub_any": (("inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "uplinks": (("ifname",), ()),
    "floating": (("ipv4_addr",), ()),
    "floating_via": (("ipv4_addr", "ifname"), ()),
    # router
    "publish": (("inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "bridges": (("ifname",), ()),
    "internal": (("ifname",), ()),
    "same_bridge": (("ifname", "ifname"), ()),
    "hairpin": (("ifname", "ifname"), ()),
    "fip_publish": (("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "fip_expose": (("ipv4_addr", "inet_proto", "inet_service"), ("ipv4_addr", "inet_service")),
    "fip_host": (("ipv4_addr",), ("ipv4_addr",)),
    "fip_snat": (("ipv4_addr",), ("ipv4_addr",)),
    "sg_profile": (("ipv4_addr",), ("mark",)),
    "sg_members": (("ipv4_addr", "mark"), ("mark",)),
    "sg_tags": (("mark",), ()),
    "sg_cidr_ports": (("mark", "inet_proto", "inet_service", "ipv4_addr"), ()),
    "sg_cidr_proto": (("mark", "inet_proto", "ipv4_addr"), ()),
    "sg_cidr_all": (("mark", "ipv4_addr"), ()),
    "sg_group_ports": (("mark", "inet_proto", "inet_service", "mark"), ()),
    "sg_group_proto": (("mark", "inet_proto", "mark"), ()),
    "sg_group_all": (("mark", "mark"), ()),
    # router, bridge family (anti-spoofing)
    "port_mac": (("ifname", "ether_addr"), ()),
    "port_ip": (("ifname", "ether_addr", "ipv4_addr"), ()),
}
HOST_PUBLISH_MAPS = ("pub_ip", "pub_any")
FLOATING_SETS = ("floating", "floating_via")
ROOT_SETS = ("pub_ip", "pub_any", "uplinks", *FLOATING_SETS)
FIP_MAPS = ("fip_publish", "fip_expose", "fip_host", "fip_snat")
BRIDGE_SETS = ("port_mac", "port_ip")
"""Sets of the router's ``bridge`` table (the others of :data:`ROUTER_SETS` are in its
``inet`` table of the same name)."""
ENDPOINT_SETS = ("sg_profile", "sg_members", *FIP_MAPS, *BRIDGE_SETS)
"""Router sets whose elements belong to one container (its id as their comment)."""
PROFILE_SETS = (
    "sg_cidr_ports",
    "sg_cidr_proto",
    "sg_cidr_all",
    "sg_group_ports",
    "sg_group_proto",
    "sg_group_all",
)
"""Router sets holding compiled rule lists, shared by the endpoints that use them."""
ROUTER_SETS = (
    "publish",
    "bridges",
    "internal",
    "same_bridge",
    "hairpin",
    *ENDPOINT_SETS,
    "sg_tags",
    *PROFILE_SETS,
)
_ENDPOINT_PORTS = "ve*"
"""The bridge ports the anti-spoofing chain checks: every endpoint's veth
(:func:`~dockyard.network.names.endpoint_veth`), nothing else a bridge may get later (a
VXLAN device)."""
PUBLISHED_MARK = 0x1  # set by the router's prerouting on what a published port DNATed
MEMBER_SLOTS = 16
"""Groups one address can be a member of (the controller's limit per container): the
number of slot rules of the ``security_groups`` chain."""
INTERVAL_SETS = ("sg_cidr_ports", "sg_cidr_proto", "sg_cidr_all", "sg_group_ports")
"""Concatenated sets with ranges and prefixes (``flags interval``: pipapo in the kernel)."""

# What may appear unquoted or inside a quoted nft string we generate: addresses,
# prefixes, protocol names, interface names and ids.
_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a set or map of :data:`SCHEMA`. ``value`` is empty for sets."""

    set_name: str
    key: tuple[Scalar, ...]
    value: tuple[Scalar, ...] = ()
    comment: str = ""


def root_ruleset(table: str, *, transit: str) -> str:
    """The root table as one nft transaction: create-or-replace, elements empty.

    ``add table`` + ``delete table`` makes the replacement work whether or not the
    table exists; the kernel applies the batch atomically.
    """
    _check_safe(table)
    net = _network(transit)
    return f"""add table inet {table}
delete table inet {table}
table inet {table} {{
  map pub_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  map pub_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  set uplinks {{ type ifname; }}
  set floating {{ type ipv4_addr; }}
  set floating_via {{ type ipv4_addr . ifname; }}
  chain publish {{
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @pub_ip
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} dnat ip to meta l4proto . th dport map @pub_any
  }}
  chain guard {{
    type filter hook prerouting priority raw; policy accept;
    iifname @uplinks ip daddr 127.0.0.0/8 drop
    iifname @uplinks ip saddr 127.0.0.0/8 drop
    ip saddr @floating ip saddr . iifname != @floating_via drop
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
    ip saddr @floating accept
    ip saddr {net} oifname != @uplinks masquerade
    ct status dnat ip saddr 127.0.0.0/8 oifname @uplinks masquerade
    ct status dnat ip saddr {net} oifname @uplinks masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    oifname @uplinks jump to_routers
  }}
  chain to_routers {{
    ct state established,related accept
    ct status dnat accept
    ip daddr . oifname @floating_via accept
    drop
  }}
}}
"""  # noqa: E501


def router_ruleset() -> str:
    """The router's tables (``inet dockyard`` and the anti-spoofing ``bridge dockyard``)
    as one nft transaction, elements empty; run with an nft context whose socket lives in
    the router namespace."""
    table, up, mark = ROUTER_TABLE, UPLINK_INSIDE, f"0x{PUBLISHED_MARK:x}"
    interval = "flags interval; "
    sets = "".join(
        f"  {'map' if values else 'set'} {name} {{ type {' . '.join(keys)}"
        f"{' : ' + ' . '.join(values) if values else ''}; "
        f"{interval if name in INTERVAL_SETS else ''}}}\n"
        for name, (keys, values) in SCHEMA.items()
        if name in ROUTER_SETS and name not in BRIDGE_SETS
    )
    slots = "".join(
        f"    meta mark set {slot} ip saddr . meta mark != @sg_members return\n"
        "    meta mark set ip saddr . meta mark map @sg_members jump sg_source\n"
        for slot in range(MEMBER_SLOTS)
    )
    dnat_fip = f'iifname "{up}" meta nfproto ipv4 meta l4proto {{ tcp, udp }}'
    return f"""add table inet {table}
delete table inet {table}
table inet {table} {{
{sets}  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    {dnat_fip} meta mark set {mark} dnat ip to ip daddr . meta l4proto . th dport map @fip_publish
    iifname "{up}" meta mark set 0x0
    {dnat_fip} dnat ip to ip daddr . meta l4proto . th dport map @fip_expose
    iifname "{up}" meta nfproto ipv4 meta l4proto != {{ tcp, udp }} dnat ip to ip daddr map @fip_host
    iifname "{up}" fib daddr type local meta nfproto ipv4 meta l4proto {{ tcp, udp }} meta mark set {mark} dnat ip to meta l4proto . th dport map @publish
    iifname "{up}" meta mark set 0x0
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{up}" snat ip to ip saddr map @fip_snat
    oifname "{up}" masquerade
  }}
  chain input {{
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    iifname @bridges fib daddr . iif type local meta l4proto {{ tcp, udp }} th dport 53 accept
    iifname @bridges fib daddr . iif type local icmp type echo-request accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname @internal oifname "{up}" drop
    iifname "{up}" oifname @internal drop
    ct state established,related accept
    ct state invalid drop
    iifname . oifname @same_bridge accept
    iifname . oifname @hairpin drop
    iifname @bridges oifname "{up}" accept
    iifname "{up}" oifname @bridges meta mark {mark} accept
    oifname @bridges jump security_groups
  }}
  chain security_groups {{
    ip daddr != @sg_profile return
    ct mark set ip daddr map @sg_profile
    meta l4proto {{ tcp, udp }} ct mark . meta l4proto . th dport . ip saddr @sg_cidr_ports accept
    ct mark . meta l4proto . ip saddr @sg_cidr_proto accept
    ct mark . ip saddr @sg_cidr_all accept
{slots}  }}
  chain sg_source {{
    meta l4proto {{ tcp, udp }} ct mark . meta l4proto . th dport . meta mark @sg_group_ports accept
    ct mark . meta l4proto . meta mark @sg_group_proto accept
    ct mark . meta mark @sg_group_all accept
  }}
}}
{_bridge_ruleset(table)}"""  # noqa: E501


def _bridge_ruleset(table: str) -> str:
    """The router's anti-spoofing table ``bridge <table>`` (see the module docstring).

    br_netfilter is off in routers, so the inet hooks never see a bridged frame: the
    bridge family's prerouting hook is where every frame a port sends is seen, whether
    the bridge forwards it to another port or delivers it to the router (its gateway).
    """
    return f"""add table bridge {table}
delete table bridge {table}
table bridge {table} {{
  set port_mac {{ type ifname . ether_addr; }}
  set port_ip {{ type ifname . ether_addr . ipv4_addr; }}
  chain prerouting {{
    type filter hook prerouting priority filter; policy accept;
    iifname != "{_ENDPOINT_PORTS}" accept
    ether type != {{ ip, arp }} drop
    iifname . ether saddr != @port_mac drop
    ether type ip iifname . ether saddr . ip saddr != @port_ip drop
    ether type arp iifname . arp saddr ether . arp saddr ip != @port_ip drop
  }}
}}
"""


def source_elements(*, veth: str, ip: str, owner: str) -> list[Element]:
    """The anti-spoofing elements of one endpoint: what may enter its bridge from its
    router-side veth ``veth`` (its MAC, :func:`~dockyard.network.names.mac_for` its
    address ``ip``, and that address as IPv4 and ARP sender)."""
    mac = mac_for(ip)
    return [
        Element("port_mac", (veth, mac), comment=owner),
        Element("port_ip", (veth, mac, ip), comment=owner),
    ]


def host_publish_elements(
    bindings: Iterable[Binding], *, router_ip: str, owner: str
) -> list[Element]:
    """Root DNAT map elements: each host port to ``(router_ip, host port)``."""
    elements = []
    for b in bindings:
        target = (router_ip, b.host_port)
        if b.host_ip == ANY_IP:
            elements.append(Element("pub_any", (b.protocol, b.host_port), target, owner))
        else:
            key = (b.host_ip, b.protocol, b.host_port)
            elements.append(Element("pub_ip", key, target, owner))
    return elements


def router_publish_elements(
    bindings: Iterable[Binding], *, container_ip: str, owner: str
) -> list[Element]:
    """Router DNAT map elements: ``(protocol, host port)`` to the container's port.

    One key per (protocol, host port): a port published on two host addresses by one
    container gives one element.
    """
    seen: dict[tuple[Scalar, ...], Element] = {}
    for b in bindings:
        key: tuple[Scalar, ...] = (b.protocol, b.host_port)
        seen.setdefault(key, Element("publish", key, (container_ip, b.container_port), owner))
    return list(seen.values())


def bridge_elements(*, name: str, internal: bool, isolated: bool) -> list[Element]:
    """Set elements registering bridge ``name`` in its router's table."""
    elements = [Element("bridges", (name,), comment=name)]
    if isolated:
        # Its ports are isolated on the bridge; routed back into it through the gateway
        # they would reach the security groups chain, whose rules are about other
        # networks: the NAT-only network stays isolated whatever the rules say.
        elements.append(Element("hairpin", (name, name), comment=name))
    else:
        elements.append(Element("same_bridge", (name, name), comment=name))
    if internal:
        elements.append(Element("internal", (name,), comment=name))
    return elements


def uplink_elements(*, uplink: str, router: str) -> list[Element]:
    """The root table's record of router ``router``'s uplink (its root side)."""
    return [Element("uplinks", (uplink,), comment=router)]


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


def _network(text: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidArgument(f"only IPv4 subnets are supported, not {text!r}")
    return str(net)


def _render(verb: str, table: str, elements: Iterable[Element], *, with_values: bool) -> str:
    _check_safe(table)
    by_set: dict[str, list[str]] = {}
    for elem in elements:
        key_types, value_types = _schema(elem)
        key = elem.key
        if elem.set_name in INTERVAL_SETS and isinstance(key[0], int):
            # nftables 1.0.6 cannot delete an element of a concatenated interval set whose
            # fields are all single values as written ("No such file or directory", though
            # adding it that way works); one field written as a range of one is found.
            key = (f"{key[0]}-{key[0]}", *key[1:])
        text = _render_tuple(key, key_types)
        if with_values:
            if elem.comment:
                _check_safe(elem.comment)
                text += f' comment "{elem.comment}"'
            if value_types:
                text += " : " + _render_tuple(elem.value, value_types)
        by_set.setdefault(elem.set_name, []).append(text)
    return "".join(
        f"{verb} element {_family(name)} {table} {name} {{ {', '.join(items)} }}\n"
        for name, items in by_set.items()
    )


def _family(set_name: str) -> str:
    return "bridge" if set_name in BRIDGE_SETS else "inet"


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
