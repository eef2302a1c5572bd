"""What may come into a container from outside its network: security groups and floating
IPs, compiled into elements of the router's and the root's sets (pure; ADR 0016).

The rules of the tables that use these sets are in :mod:`dockyard.network.rules`; this
module decides the elements. Vocabulary:

- a **profile** is an endpoint's ingress rules (:class:`IngressRule`, the union of its
  groups' rules) compiled into disjoint boxes: the kernel refuses an element of a
  concatenated interval set that partly overlaps another (``File exists``), and two rules
  may well overlap (``tcp 80-443 from 0.0.0.0/0`` and ``tcp 100 from 10.0.0.0/8``).
  Every endpoint with the same rules has the same profile, whose elements are in the
  router once, whatever the number of endpoints using it.
- a **tag** is a 32-bit mark naming a security group or a profile inside one router. It
  is handed out by the router's :class:`RouterIngress` (lowest collision-free value from a
  hash of the name) and recorded in ``sg_tags`` with the name as comment, so a restarted
  agent finds the same tags. Tags are unique per router, never shared between tenants.
- a **slot** is the position of a group among an address's groups (0 to
  :data:`~dockyard.network.rules.MEMBER_SLOTS` - 1): ``sg_members`` maps
  (address, slot) to the group's tag.

Per endpoint (owner: the container's id): ``sg_profile`` address -> profile tag (none
when its rules let nothing in) and one ``sg_members`` element per group: at most 17
elements, whatever the number of endpoints and rules. Per distinct profile: one element
per box (bounded by the rules). Per floating IP F bound to a container: ``fip_snat``,
``fip_host``, one ``fip_publish`` or ``fip_expose`` per public port and one
``sg_members`` per group in the router (a member reaching in through its public address
counts as a member); ``floating`` and ``floating_via`` in the root table; and a route
F/32 to the router (:mod:`dockyard.network.host`).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import EndpointSpec, IngressRule, NetworkSpec, PortMapping
from dockyard.network.rules import MEMBER_SLOTS, PROFILE_SETS, Element

__all__ = [
    "ContainerIngress",
    "EndpointIngress",
    "IngressChange",
    "Profile",
    "PublicIngress",
    "RouterIngress",
    "check_ingress",
    "compile_profile",
    "container_ingress",
    "floating_elements",
    "group_key",
    "merge_spec",
    "profile_elements",
]

_PORT_PROTOCOLS = ("tcp", "udp")
_OTHER_PROTOCOLS = ("icmp",)
_FIRST_TAG = 0x100  # below: room for flags such as the published mark and slot numbers
_TAG_SPACE = 0x1_0000_0000 - _FIRST_TAG
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,125}$")  # "g:" + id stays a safe comment


@dataclass(frozen=True)
class Profile:
    """An endpoint's ingress rules as disjoint boxes, by kind of source and protocol.

    ``cidr_ports``: (protocol, first port, last port, source prefix) for tcp and udp;
    ``cidr_protocols``: (protocol, prefix) for protocols without ports (icmp);
    ``cidr_all``: prefixes allowed every protocol; ``group_*`` the same with a source
    group's id instead of a prefix. Within each field no two boxes overlap.
    """

    cidr_ports: tuple[tuple[str, int, int, str], ...] = ()
    cidr_protocols: tuple[tuple[str, str], ...] = ()
    cidr_all: tuple[str, ...] = ()
    group_ports: tuple[tuple[str, int, int, str], ...] = ()
    group_protocols: tuple[tuple[str, str], ...] = ()
    group_all: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether it lets nothing in."""
        return not (
            self.cidr_ports
            or self.cidr_protocols
            or self.cidr_all
            or self.group_ports
            or self.group_protocols
            or self.group_all
        )

    @functools.cached_property
    def key(self) -> str:
        """``p:<digest>``: its name in ``sg_tags`` (equal profiles, equal keys)."""
        text = json.dumps(astuple(self), separators=(",", ":"))
        return "p:" + hashlib.sha256(text.encode()).hexdigest()[:32]

    def source_groups(self) -> list[str]:
        """Ids of the groups its rules name as sources, sorted."""
        found = {b[3] for b in self.group_ports} | {b[1] for b in self.group_protocols}
        return sorted(found | set(self.group_all))


@dataclass(frozen=True, slots=True)
class EndpointIngress:
    """One endpoint's share: its address, its groups (in slot order), its profile."""

    ip: str
    groups: tuple[str, ...] = ()
    profile: Profile = field(default_factory=Profile)


@dataclass(frozen=True, slots=True)
class PublicIngress:
    """A floating IP bound to a container: ``address`` reaches ``target`` (the first
    endpoint's address) on ``ports`` ((protocol, public port, container port, published
    by ``-p``)); ``target``'s egress leaves from it; it is a member of ``groups``."""

    address: str
    target: str
    groups: tuple[str, ...] = ()
    ports: tuple[tuple[str, int, int, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerIngress:
    """Everything a container has in its router's ingress sets."""

    endpoints: tuple[EndpointIngress, ...] = ()
    public: PublicIngress | None = None


def group_key(group_id: str) -> str:
    """``g:<id>``: a group's name in ``sg_tags``."""
    return f"g:{group_id}"


# compilation ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def compile_profile(rules: tuple[IngressRule, ...]) -> Profile:
    """Compile ``rules`` (any order, overlaps allowed) into a :class:`Profile`.

    Cached: the endpoints of one group share one compilation. Raises ``InvalidArgument``
    for a protocol other than tcp, udp, icmp and all (any case), ports outside 1-65535 or
    reversed for tcp and udp, a rule without exactly one of ``source`` (an IPv4 address
    or prefix without host bits) and ``source_group``, or a malformed group id.
    """
    cidr_ports: dict[str, list[tuple[int, int, ipaddress.IPv4Network]]] = {}
    group_ports: dict[tuple[str, str], list[tuple[int, int]]] = {}
    cidr_protocols: dict[str, list[ipaddress.IPv4Network]] = {}
    group_protocols: set[tuple[str, str]] = set()
    cidr_all: list[ipaddress.IPv4Network] = []
    group_all: set[str] = set()
    for rule in rules:
        protocol = rule.protocol.lower()
        net, group = _source(rule)
        if protocol in _PORT_PROTOCOLS:
            low, high = _ports(rule)
            if group:
                group_ports.setdefault((protocol, group), []).append((low, high))
            else:
                assert net is not None
                cidr_ports.setdefault(protocol, []).append((low, high, net))
        elif protocol in _OTHER_PROTOCOLS:
            if group:
                group_protocols.add((protocol, group))
            else:
                assert net is not None
                cidr_protocols.setdefault(protocol, []).append(net)
        elif protocol == "all":
            if group:
                group_all.add(group)
            else:
                assert net is not None
                cidr_all.append(net)
        else:
            raise InvalidArgument(f"unknown protocol {rule.protocol!r} in an ingress rule")
    return Profile(
        cidr_ports=tuple(
            (protocol, low, high, _prefix(net))
            for protocol in sorted(cidr_ports)
            for low, high, net in _boxes(cidr_ports[protocol])
        ),
        cidr_protocols=tuple(
            (protocol, _prefix(net))
            for protocol in sorted(cidr_protocols)
            for net in ipaddress.collapse_addresses(cidr_protocols[protocol])
        ),
        cidr_all=tuple(_prefix(net) for net in ipaddress.collapse_addresses(cidr_all)),
        group_ports=tuple(
            (protocol, low, high, group)
            for (protocol, group) in sorted(group_ports)
            for low, high in _merge(group_ports[(protocol, group)])
        ),
        group_protocols=tuple(sorted(group_protocols)),
        group_all=tuple(sorted(group_all)),
    )


def _source(rule: IngressRule) -> tuple[ipaddress.IPv4Network | None, str]:
    if bool(rule.source) == bool(rule.source_group):
        raise InvalidArgument("an ingress rule needs exactly one of source and source_group")
    if rule.source_group:
        return None, _check_group(rule.source_group)
    try:
        net = ipaddress.ip_network(rule.source, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid source {rule.source!r}: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidArgument(f"only IPv4 sources are supported, not {rule.source!r}")
    return net, ""


def _ports(rule: IngressRule) -> tuple[int, int]:
    low, high = rule.port_min, rule.port_max
    if not 1 <= low <= high <= 65535:
        raise InvalidArgument(
            f"invalid port range {low}-{high} for {rule.protocol}: within 1-65535, low first"
        )
    return low, high


def _check_group(group_id: str) -> str:
    if not _GROUP.match(group_id):
        raise InvalidArgument(f"invalid security group id {group_id!r}")
    return group_id


def _prefix(net: ipaddress.IPv4Network) -> str:
    # As nft lists it: a /32 is the bare address.
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping and adjacent ranges joined."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _boxes(
    rules: Sequence[tuple[int, int, ipaddress.IPv4Network]],
) -> list[tuple[int, int, ipaddress.IPv4Network]]:
    """Disjoint (port range, prefix) boxes covering the union of ``rules``.

    The ports are cut at every rule's ends; each piece gets the prefixes of the rules
    covering it, collapsed (prefixes either nest or are disjoint, so what remains is
    disjoint); neighbouring pieces with the same prefixes are joined again.
    """
    cuts = sorted({low for low, _, _ in rules} | {high + 1 for _, high, _ in rules})
    pieces: list[tuple[int, int, tuple[ipaddress.IPv4Network, ...]]] = []
    for start, end in itertools.pairwise(cuts):
        nets = tuple(
            ipaddress.collapse_addresses(
                net for low, high, net in rules if low <= start and end - 1 <= high
            )
        )
        if not nets:
            continue
        if pieces and pieces[-1][2] == nets and pieces[-1][1] == start - 1:
            pieces[-1] = (pieces[-1][0], end - 1, nets)
        else:
            pieces.append((start, end - 1, nets))
    return [(low, high, net) for low, high, nets in pieces for net in nets]


def _port_range(low: int, high: int) -> int | str:
    # As nft lists it: a range of one port is the port.
    return low if low == high else f"{low}-{high}"


def profile_elements(profile: Profile, *, tag: int, tag_of: Callable[[str], int]) -> list[Element]:
    """The elements of ``profile`` under ``tag``; ``tag_of(group id)`` gives the tag of
    a source group."""
    comment = profile.key.replace(":", "-")
    elements = [
        Element("sg_cidr_ports", (tag, protocol, _port_range(low, high), net), comment=comment)
        for protocol, low, high, net in profile.cidr_ports
    ]
    elements += [
        Element("sg_cidr_proto", (tag, protocol, net), comment=comment)
        for protocol, net in profile.cidr_protocols
    ]
    elements += [Element("sg_cidr_all", (tag, net), comment=comment) for net in profile.cidr_all]
    elements += [
        Element(
            "sg_group_ports",
            (tag, protocol, _port_range(low, high), tag_of(group)),
            comment=comment,
        )
        for protocol, low, high, group in profile.group_ports
    ]
    elements += [
        Element("sg_group_proto", (tag, protocol, tag_of(group)), comment=comment)
        for protocol, group in profile.group_protocols
    ]
    elements += [
        Element("sg_group_all", (tag, tag_of(group)), comment=comment)
        for group in profile.group_all
    ]
    return elements


# from the spec -------------------------------------------------------------------------


def container_ingress(
    spec: NetworkSpec, endpoints: Iterable[EndpointSpec], *, target: str
) -> ContainerIngress:
    """What a container on tenant networks has in its router: its ``endpoints`` (those it
    has, with their groups and rules) and ``spec``'s public IP, which reaches ``target``
    (the address its published ports go to). Raises ``InvalidArgument`` for malformed
    rules, group ids, addresses or ports, and for more groups than slots."""
    found = tuple(
        EndpointIngress(
            ip=e.ip,
            groups=_groups(e.groups),
            profile=compile_profile(tuple(e.ingress)),
        )
        for e in endpoints
    )
    public = None
    if spec.public_ip:
        address = _address(spec.public_ip)
        groups = _groups(tuple(dict.fromkeys(g for e in found for g in e.groups)))
        public = PublicIngress(
            address=address,
            target=target,
            groups=groups,
            ports=_public_ports(spec.public_ports, spec.ports, address),
        )
    return ContainerIngress(endpoints=found, public=public)


def check_ingress(spec: NetworkSpec) -> None:
    """``InvalidArgument`` unless the security groups, rules and public IP of ``spec`` (a
    spec of mode ``tenant``) could be applied."""
    target = spec.endpoints[0].ip if spec.endpoints else ""
    container_ingress(spec, spec.endpoints, target=target)


def merge_spec(current: NetworkSpec, pushed: NetworkSpec) -> NetworkSpec:
    """``current`` with what ``PUT /v1/containers/{id}/network`` changes taken from
    ``pushed``: each endpoint's groups, rules and DNS names (endpoints matched by id; one
    ``pushed`` lacks keeps its own, one only ``pushed`` has is ignored), the public IP and
    its ports.
    """
    by_id = {e.endpoint_id: e for e in pushed.endpoints}
    endpoints = tuple(
        replace(
            e,
            groups=by_id[e.endpoint_id].groups,
            ingress=by_id[e.endpoint_id].ingress,
            names=by_id[e.endpoint_id].names,
        )
        if e.endpoint_id in by_id
        else e
        for e in current.endpoints
    )
    return replace(
        current,
        endpoints=endpoints,
        public_ip=pushed.public_ip,
        public_ports=pushed.public_ports,
    )


def _groups(groups: Sequence[str]) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(_check_group(g) for g in groups))
    if len(unique) > MEMBER_SLOTS:
        raise InvalidArgument(
            f"an endpoint may be in at most {MEMBER_SLOTS} security groups, not {len(unique)}"
        )
    return unique


def _address(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid public IP {text!r}") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise InvalidArgument(f"only IPv4 public IPs are supported, not {text!r}")
    return str(address)


def _public_ports(
    mappings: Sequence[PortMapping], published: Sequence[PortMapping], address: str
) -> tuple[tuple[str, int, int, bool], ...]:
    """(protocol, public port, container port, published) per public port; the first
    claim of a public port wins. A port is published when a ``-p`` of the container (on
    every host address or on the public IP itself) names its container port: a publish
    is an allow of its own (as on the host's addresses), the others are for the security
    groups to allow."""
    explicit = {
        (p.protocol, p.container_port)
        for p in published
        if p.host_ip in ("", "0.0.0.0", address)  # noqa: S104  (a wildcard)
    }
    ports: dict[tuple[str, int], tuple[str, int, int, bool]] = {}
    for m in mappings:
        if m.protocol not in _PORT_PROTOCOLS:
            raise InvalidArgument(f"invalid protocol {m.protocol!r} of a public port")
        if not (1 <= m.host_port <= 65535 and 1 <= m.container_port <= 65535):
            raise InvalidArgument(f"invalid public port {m.host_port}->{m.container_port}")
        entry = (
            m.protocol,
            m.host_port,
            m.container_port,
            (m.protocol, m.container_port) in explicit,
        )
        ports.setdefault((m.protocol, m.host_port), entry)
    return tuple(ports.values())


def floating_elements(*, address: str, uplink: str, owner: str) -> list[Element]:
    """The root table's record of floating IP ``address`` routed into ``uplink``."""
    return [
        Element("floating", (address,), comment=owner),
        Element("floating_via", (address, uplink), comment=owner),
    ]


# one router's bookkeeping --------------------------------------------------------------


@dataclass(slots=True)
class IngressChange:
    """Elements to delete, then to add, in one transaction; :meth:`commit` once the
    kernel took them (the router's bookkeeping changes only then)."""

    delete: list[Element]
    add: list[Element]
    _commit: Callable[[], None]

    def commit(self) -> None:
        self._commit()


class RouterIngress:
    """The tags one router handed out and what refers to each.

    A profile's tag is referred to by the endpoint addresses using it; a group's tag by
    the containers in the group and by the profiles in use that name it as a source.
    Pure bookkeeping: :meth:`change` says what elements take a container from one
    :class:`ContainerIngress` to another: its own elements, a profile's elements when its
    first user comes or its last one goes, the ``sg_tags`` element of a tag when its
    first referrer comes or its last one goes. The caller applies them in one
    transaction and commits. Not thread-safe.
    """

    def __init__(self, tags: Mapping[str, int] | None = None) -> None:
        self._tags: dict[str, int] = dict(tags or {})
        self._names: dict[int, str] = {tag: key for key, tag in self._tags.items()}
        self._refs: dict[str, set[str]] = {}
        self._profiles: dict[str, Profile] = {}

    @classmethod
    def from_elements(cls, elements: Iterable[Element]) -> RouterIngress:
        """The bookkeeping of a router whose ``sg_tags`` hold ``elements`` (others are
        ignored): its tags are kept; what refers to them is learnt again as containers
        are restored (and :meth:`sweep` finds what nothing does)."""
        tags = {
            e.comment: int(e.key[0])
            for e in elements
            if e.set_name == "sg_tags" and e.comment and isinstance(e.key[0], int)
        }
        return cls(tags)

    @property
    def tags(self) -> dict[str, int]:
        """Name (``g:<id>``, ``p:<digest>``) -> tag, a copy."""
        return dict(self._tags)

    def referrers(self, key: str) -> set[str]:
        """What refers to a tag's name: endpoint addresses (a profile); container ids
        and profile keys (a group). A copy."""
        return set(self._refs.get(key, ()))

    def change(self, *, owner: str, old: ContainerIngress, new: ContainerIngress) -> IngressChange:
        """The elements that take container ``owner`` from ``old`` (what it has now,
        as the kernel was told) to ``new``."""
        # Referrers to add (True) or drop (False) per name: applied at commit, counted
        # here without copying the (possibly large) sets of referrers.
        touched: dict[str, dict[str, bool]] = {}

        def refer(key: str, referrer: str, present: bool) -> None:
            touched.setdefault(key, {})[referrer] = present

        for endpoint in old.endpoints:
            if not endpoint.profile.empty:
                refer(endpoint.profile.key, endpoint.ip, False)
        for endpoint in new.endpoints:
            if not endpoint.profile.empty:
                refer(endpoint.profile.key, endpoint.ip, True)
        for group in _groups_of(old):
            refer(group_key(group), owner, False)
        for group in _groups_of(new):
            refer(group_key(group), owner, True)
        profiles = {
            e.profile.key: e.profile
            for e in (*old.endpoints, *new.endpoints)
            if not e.profile.empty
        }
        started = [key for key in profiles if self._count(key, touched) and not self._refs.get(key)]
        stopped = [key for key in profiles if not self._count(key, touched) and self._refs.get(key)]
        for key in started:
            for group in profiles[key].source_groups():
                refer(group_key(group), key, True)
        for key in stopped:
            for group in profiles[key].source_groups():
                refer(group_key(group), key, False)
        counts = {key: self._count(key, touched) for key in touched}
        fresh = self._allocate(sorted(k for k, n in counts.items() if n and k not in self._tags))
        dropped = [key for key, n in counts.items() if not n and self._refs.get(key)]
        tags = {**self._tags, **fresh}

        def group_tag(group: str) -> int:
            return tags[group_key(group)]

        # A name this router never tagged (its namespace was made anew under the old
        # state) has nothing in the kernel: its elements are left out of the deletes.
        before = self._owned(owner, old, self._tags.get)
        after = self._owned(owner, new, tags.__getitem__)
        shared_add = [Element("sg_tags", (tag,), comment=key) for key, tag in fresh.items()]
        for key in started:
            shared_add += profile_elements(profiles[key], tag=tags[key], tag_of=group_tag)
        shared_delete: list[Element] = []
        for key in stopped:
            shared_delete += profile_elements(profiles[key], tag=tags[key], tag_of=group_tag)
        shared_delete += [Element("sg_tags", (tags[key],), comment=key) for key in dropped]
        kept, had = set(after), set(before)
        delete = [e for e in before if e not in kept] + shared_delete
        add = shared_add + [e for e in after if e not in had]

        def commit() -> None:
            for key, changes in touched.items():
                refs = self._refs.setdefault(key, set())
                for referrer, present in changes.items():
                    if present:
                        refs.add(referrer)
                    else:
                        refs.discard(referrer)
                if not refs:
                    del self._refs[key]
            for key, tag in fresh.items():
                self._tags[key] = tag
                self._names[tag] = key
            for key in dropped:
                self._names.pop(self._tags.pop(key), None)
            for key in started:
                self._profiles[key] = profiles[key]
            for key in stopped:
                self._profiles.pop(key, None)

        return IngressChange(delete=delete, add=add, _commit=commit)

    def sweep(self, elements: Sequence[Element]) -> list[Element]:
        """Of a router's ``elements`` (all of them, as listed), the shared ones nothing
        refers to: profiles that no ``sg_profile`` element names and no user known here
        uses, then tags that neither such a profile, an ``sg_members`` element, a
        remaining profile's source group nor a referrer known here names. Forgets them;
        the caller deletes what it returns."""
        known = {self._tags[key] for key, refs in self._refs.items() if refs and key in self._tags}
        profiles = {int(e.value[0]) for e in elements if e.set_name == "sg_profile"} | known
        stale = [
            e for e in elements if e.set_name in PROFILE_SETS and int(e.key[0]) not in profiles
        ]
        named = profiles | {int(e.value[0]) for e in elements if e.set_name == "sg_members"}
        named |= {
            int(e.key[-1])
            for e in elements
            if e.set_name.startswith("sg_group_") and int(e.key[0]) in profiles
        }
        tags = [e for e in elements if e.set_name == "sg_tags" and int(e.key[0]) not in named]
        for e in tags:
            name = self._names.pop(int(e.key[0]), None)
            if name is not None:
                self._tags.pop(name, None)
        return stale + tags

    def _count(self, key: str, touched: Mapping[str, Mapping[str, bool]]) -> int:
        """How many referrers ``key`` has once ``touched`` applies."""
        refs = self._refs.get(key, set())
        count = len(refs)
        for referrer, present in touched.get(key, {}).items():
            count += (present and referrer not in refs) - (not present and referrer in refs)
        return count

    def _allocate(self, keys: Sequence[str]) -> dict[str, int]:
        """New tags for ``keys``: each the first free value from its hash on."""
        taken = set(self._names)
        fresh = {}
        for key in keys:
            tag = _preferred_tag(key)
            while tag in taken:
                tag = _FIRST_TAG + (tag - _FIRST_TAG + 1) % _TAG_SPACE
            taken.add(tag)
            fresh[key] = tag
        return fresh

    def _owned(
        self, owner: str, state: ContainerIngress, tag_of: Callable[[str], int | None]
    ) -> list[Element]:
        """The elements of ``state`` that belong to container ``owner`` (those whose tag
        ``tag_of`` does not know left out)."""
        elements: list[Element] = []
        for endpoint in state.endpoints:
            tag = None if endpoint.profile.empty else tag_of(endpoint.profile.key)
            if tag is not None:
                elements.append(Element("sg_profile", (endpoint.ip,), (tag,), owner))
            elements += _members(endpoint.ip, endpoint.groups, tag_of, owner)
        public = state.public
        if public is not None:
            address, target = public.address, public.target
            elements.append(Element("fip_snat", (target,), (address,), owner))
            elements.append(Element("fip_host", (address,), (target,), owner))
            for protocol, port, container_port, published in public.ports:
                name = "fip_publish" if published else "fip_expose"
                key = (address, protocol, port)
                elements.append(Element(name, key, (target, container_port), owner))
            elements += _members(address, public.groups, tag_of, owner)
        return elements


def _members(
    address: str, groups: Sequence[str], tag_of: Callable[[str], int | None], owner: str
) -> list[Element]:
    found = [(slot, tag_of(group_key(group))) for slot, group in enumerate(groups)]
    return [
        Element("sg_members", (address, slot), (tag,), owner)
        for slot, tag in found
        if tag is not None
    ]


def _groups_of(state: ContainerIngress) -> set[str]:
    """The groups a container's addresses are members of."""
    groups = {g for e in state.endpoints for g in e.groups}
    if state.public is not None:
        groups |= set(state.public.groups)
    return groups


def _preferred_tag(key: str) -> int:
    digest = hashlib.sha256(key.encode()).digest()
    return _FIRST_TAG + int.from_bytes(digest[:4], "big") % _TAG_SPACE
