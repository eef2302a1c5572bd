"""Security groups and floating IPs compiled into set elements (dockyard.network.ingress)."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import EndpointSpec, IngressRule, NetworkSpec, PortMapping
from dockyard.network.ingress import (
    ContainerIngress,
    EndpointIngress,
    Profile,
    PublicIngress,
    RouterIngress,
    check_ingress,
    compile_profile,
    container_ingress,
    floating_elements,
    group_key,
    merge_spec,
    profile_elements,
)
from dockyard.network.rules import ENDPOINT_SETS, PROFILE_SETS, Element

WEB, DB = "w" * 64, "d" * 64


def rule(protocol: str, low: int = 0, high: int = 0, **source: str) -> IngressRule:
    return IngressRule(protocol, low, high or low, **source)


# compilation ---------------------------------------------------------------------------


def test_overlapping_rules_become_disjoint_boxes() -> None:
    profile = compile_profile(
        (
            rule("tcp", 80, 443, source="0.0.0.0/0"),
            rule("tcp", 100, 200, source="10.0.0.0/8"),  # inside the first: gone
            rule("tcp", 22, source="10.1.2.3/32"),
            rule("tcp", 20, 25, source="192.168.0.0/16"),
            rule("udp", 53, source="10.0.0.0/8"),
        )
    )
    assert profile.cidr_ports == (
        ("tcp", 20, 21, "192.168.0.0/16"),
        ("tcp", 22, 22, "10.1.2.3"),
        ("tcp", 22, 22, "192.168.0.0/16"),
        ("tcp", 23, 25, "192.168.0.0/16"),
        ("tcp", 80, 443, "0.0.0.0/0"),
        ("udp", 53, 53, "10.0.0.0/8"),
    )


def test_nested_and_adjacent_prefixes_collapse() -> None:
    profile = compile_profile(
        (
            rule("all", source="10.0.0.0/25"),
            rule("all", source="10.0.0.128/25"),
            rule("all", source="10.0.0.7/32"),
            rule("icmp", source="192.0.2.0/24"),
            rule("icmp", source="192.0.2.9/32"),
        )
    )
    assert profile.cidr_all == ("10.0.0.0/24",)
    assert profile.cidr_protocols == (("icmp", "192.0.2.0/24"),)


def test_group_rules_merge_their_port_ranges() -> None:
    profile = compile_profile(
        (
            rule("tcp", 80, 90, source_group=WEB),
            rule("tcp", 85, 100, source_group=WEB),
            rule("tcp", 101, source_group=WEB),
            rule("tcp", 80, source_group=DB),
            rule("icmp", source_group=DB),
            rule("all", source_group=WEB),
        )
    )
    assert profile.group_ports == (("tcp", 80, 80, DB), ("tcp", 80, 101, WEB))
    assert profile.group_protocols == (("icmp", DB),)
    assert profile.group_all == (WEB,)
    assert profile.source_groups() == sorted([DB, WEB])


def test_the_protocol_is_read_in_any_case() -> None:
    assert compile_profile((rule("TCP", 80, source="0.0.0.0/0"),)).cidr_ports == (
        ("tcp", 80, 80, "0.0.0.0/0"),
    )


def _random_rules(rng: random.Random) -> tuple[IngressRule, ...]:
    prefixes = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32"]
    prefixes += ["192.168.0.0/16", "10.1.128.0/17"]
    rules = []
    for _ in range(rng.randrange(1, 12)):
        low = rng.randrange(1, 60)
        rules.append(
            rule(
                rng.choice(["tcp", "udp"]),
                low,
                low + rng.randrange(0, 20),
                source=rng.choice(prefixes),
            )
        )
    return tuple(rules)


@pytest.mark.parametrize("seed", range(40))
def test_boxes_cover_exactly_the_rules_and_never_overlap(seed: int) -> None:
    rng = random.Random(seed)
    rules = _random_rules(rng)
    profile = compile_profile(rules)
    boxes = [
        (p, low, high, ipaddress.ip_network(net if "/" in net else f"{net}/32"))
        for p, low, high, net in profile.cidr_ports
    ]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap = a[0] == b[0] and a[1] <= b[2] and b[1] <= a[2] and a[3].overlaps(b[3])
            assert not overlap, (a, b)
    probes = ["10.1.2.3", "10.1.2.4", "10.1.200.1", "10.2.0.1", "192.168.1.1", "8.8.8.8"]
    for protocol in ("tcp", "udp"):
        for port in range(1, 82):
            for text in probes:
                address = ipaddress.ip_address(text)
                wanted = any(
                    r.protocol == protocol
                    and r.port_min <= port <= r.port_max
                    and address in ipaddress.ip_network(r.source)
                    for r in rules
                )
                got = any(
                    p == protocol and low <= port <= high and address in net
                    for p, low, high, net in boxes
                )
                assert wanted == got, (protocol, port, text)


def test_compilation_is_shared_and_keys_follow_content() -> None:
    rules = (rule("tcp", 80, source="0.0.0.0/0"),)
    assert compile_profile(rules) is compile_profile(rules)
    same = compile_profile(
        (rule("tcp", 80, source="0.0.0.0/0"), rule("tcp", 80, source="10.0.0.0/8"))
    )
    other = compile_profile((rule("tcp", 81, source="0.0.0.0/0"),))
    assert compile_profile(rules).key == same.key != other.key
    assert compile_profile(rules).key.startswith("p:")
    assert compile_profile(()).empty
    assert not compile_profile(rules).empty


@pytest.mark.parametrize(
    "bad",
    [
        rule("tcp", 0, 80, source="0.0.0.0/0"),
        rule("udp", 90, 80, source="0.0.0.0/0"),
        rule("tcp", 1, 65536, source="0.0.0.0/0"),
        rule("gre", source="0.0.0.0/0"),
        rule("tcp", 80),
        rule("tcp", 80, source="0.0.0.0/0", source_group=WEB),
        rule("tcp", 80, source="10.0.0.1/8"),
        rule("tcp", 80, source="2001:db8::/32"),
        rule("tcp", 80, source="not an address"),
        rule("tcp", 80, source_group='g"; flush ruleset'),
    ],
)
def test_malformed_rules_are_refused(bad: IngressRule) -> None:
    with pytest.raises(InvalidArgument):
        compile_profile((bad,))


def test_profile_elements_use_the_tags() -> None:
    profile = compile_profile(
        (
            rule("tcp", 80, 443, source="0.0.0.0/0"),
            rule("icmp", source="10.0.0.1/32"),
            rule("all", source="10.9.0.0/16"),
            rule("udp", 53, source_group=WEB),
            rule("icmp", source_group=WEB),
            rule("all", source_group=DB),
        )
    )
    tags = {WEB: 300, DB: 301}
    comment = profile.key.replace(":", "-")
    assert profile_elements(profile, tag=7, tag_of=tags.__getitem__) == [
        Element("sg_cidr_ports", (7, "tcp", "80-443", "0.0.0.0/0"), comment=comment),
        Element("sg_cidr_proto", (7, "icmp", "10.0.0.1"), comment=comment),
        Element("sg_cidr_all", (7, "10.9.0.0/16"), comment=comment),
        Element("sg_group_ports", (7, "udp", 53, 300), comment=comment),
        Element("sg_group_proto", (7, "icmp", 300), comment=comment),
        Element("sg_group_all", (7, 301), comment=comment),
    ]


# from the spec -------------------------------------------------------------------------


def _endpoint(
    ip: str, groups: tuple[str, ...] = (), rules: tuple[IngressRule, ...] = ()
) -> EndpointSpec:
    return EndpointSpec(
        endpoint_id=ip.replace(".", "") * 3,
        network_id="n" * 64,
        bridge="br-n",
        subnet="10.0.0.0/24",
        gateway="10.0.0.1",
        ip=ip,
        groups=groups,
        ingress=rules,
    )


def test_public_ports_published_by_p_are_marked() -> None:
    spec = NetworkSpec(
        mode="tenant",
        router="t",
        endpoints=(_endpoint("10.0.0.2", (WEB,)),),
        ports=(PortMapping("tcp", 22, "", 10022), PortMapping("udp", 53, "127.0.0.1", 53)),
        public_ip="198.51.100.7",
        public_ports=(
            PortMapping("tcp", 22, "", 10022),
            PortMapping("tcp", 80, "", 80),
            PortMapping("udp", 53, "", 53),
            PortMapping("tcp", 81, "", 80),  # a second claim of 80/tcp: the first wins
        ),
    )
    found = container_ingress(spec, spec.endpoints, target="10.0.0.2")
    assert found.public == PublicIngress(
        address="198.51.100.7",
        target="10.0.0.2",
        groups=(WEB,),
        ports=(("tcp", 10022, 22, True), ("tcp", 80, 80, False), ("udp", 53, 53, False)),
    )


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec(public_ip="2001:db8::1"),
        NetworkSpec(public_ip="nope"),
        NetworkSpec(public_ip="198.51.100.7", public_ports=(PortMapping("sctp", 1, "", 1),)),
        NetworkSpec(public_ip="198.51.100.7", public_ports=(PortMapping("tcp", 1, "", 0),)),
        NetworkSpec(endpoints=(_endpoint("10.0.0.2", tuple(f"{n:064x}" for n in range(17))),)),
    ],
)
def test_malformed_specs_are_refused(spec: NetworkSpec) -> None:
    with pytest.raises(InvalidArgument):
        check_ingress(spec)


def test_merge_spec_takes_groups_rules_names_and_the_public_ip_only() -> None:
    one, two = _endpoint("10.0.0.2"), _endpoint("10.0.0.3")
    current = NetworkSpec(
        mode="tenant", router="t", endpoints=(one, two), ports=(PortMapping("tcp", 80),)
    )
    pushed_one = replace(
        one,
        groups=(WEB,),
        ingress=(rule("tcp", 80, source="0.0.0.0/0"),),
        names=("renamed", "alias"),  # a rename
    )
    stranger = _endpoint("10.0.0.9", (DB,))
    pushed = NetworkSpec(
        mode="tenant",
        router="other",
        endpoints=(pushed_one, stranger),
        public_ip="198.51.100.7",
        public_ports=(PortMapping("tcp", 80, "", 80),),
    )
    merged = merge_spec(current, pushed)
    assert merged.endpoints == (pushed_one, two)  # two kept as it was, the stranger ignored
    assert (merged.router, merged.ports) == ("t", current.ports)
    assert (merged.public_ip, merged.public_ports) == (pushed.public_ip, pushed.public_ports)
    assert merge_spec(merged, pushed) == merged


def test_floating_elements() -> None:
    assert floating_elements(address="198.51.100.7", uplink="dyu1", owner="c") == [
        Element("floating", ("198.51.100.7",), comment="c"),
        Element("floating_via", ("198.51.100.7", "dyu1"), comment="c"),
    ]


# one router's bookkeeping --------------------------------------------------------------

RULES = (rule("tcp", 80, 443, source="0.0.0.0/0"), rule("tcp", 22, source_group=WEB))


def _state(
    *ips: str, groups: tuple[str, ...] = (WEB,), rules: tuple[IngressRule, ...] = RULES
) -> ContainerIngress:
    profile = compile_profile(rules)
    return ContainerIngress(endpoints=tuple(EndpointIngress(ip, groups, profile) for ip in ips))


def _apply(
    router: RouterIngress, owner: str, old: ContainerIngress, new: ContainerIngress
) -> tuple[list[Element], list[Element]]:
    change = router.change(owner=owner, old=old, new=new)
    change.commit()
    return change.delete, change.add


def test_the_first_user_brings_the_profile_and_the_last_takes_it() -> None:
    router = RouterIngress()
    empty = ContainerIngress()
    deleted, added = _apply(router, "a", empty, _state("10.0.0.2"))
    assert deleted == []
    names = [e.set_name for e in added]
    assert names.count("sg_tags") == 2  # the profile and web
    assert {"sg_cidr_ports", "sg_group_ports", "sg_profile", "sg_members"} <= set(names)
    tags = router.tags
    profile = compile_profile(RULES)
    # A second container with the same rules adds its own two elements only.
    deleted, added = _apply(router, "b", empty, _state("10.0.0.3"))
    assert deleted == []
    assert added == [
        Element("sg_profile", ("10.0.0.3",), (tags[profile.key],), "b"),
        Element("sg_members", ("10.0.0.3", 0), (tags[group_key(WEB)],), "b"),
    ]
    assert router.referrers(profile.key) == {"10.0.0.2", "10.0.0.3"}
    assert router.referrers(group_key(WEB)) == {"a", "b", profile.key}
    deleted, added = _apply(router, "a", _state("10.0.0.2"), empty)
    assert added == []
    assert {e.set_name for e in deleted} == {"sg_profile", "sg_members"}
    deleted, added = _apply(router, "b", _state("10.0.0.3"), empty)
    assert added == []
    assert {e.set_name for e in deleted} == {
        "sg_profile",
        "sg_members",
        "sg_cidr_ports",
        "sg_group_ports",
        "sg_tags",
    }
    assert router.tags == {}
    assert all(e.set_name in (*ENDPOINT_SETS, *PROFILE_SETS, "sg_tags") for e in deleted)


def test_nothing_changes_until_the_change_is_committed() -> None:
    router = RouterIngress()
    change = router.change(owner="a", old=ContainerIngress(), new=_state("10.0.0.2"))
    assert change.add
    assert router.tags == {}
    again = router.change(owner="a", old=ContainerIngress(), new=_state("10.0.0.2"))
    assert again.add == change.add


def test_the_same_state_twice_changes_nothing() -> None:
    router = RouterIngress()
    _apply(router, "a", ContainerIngress(), _state("10.0.0.2"))
    assert _apply(router, "a", _state("10.0.0.2"), _state("10.0.0.2")) == ([], [])


def test_new_rules_swap_the_profile_in_one_change() -> None:
    router = RouterIngress()
    _apply(router, "a", ContainerIngress(), _state("10.0.0.2"))
    old_tag = router.tags[compile_profile(RULES).key]
    newer = (rule("udp", 53, source="0.0.0.0/0"),)
    deleted, added = _apply(router, "a", _state("10.0.0.2"), _state("10.0.0.2", rules=newer))
    assert Element("sg_profile", ("10.0.0.2",), (old_tag,), "a") in deleted
    new_tag = router.tags[compile_profile(newer).key]
    assert Element("sg_profile", ("10.0.0.2",), (new_tag,), "a") in added
    assert compile_profile(RULES).key not in router.tags
    # web is still a member group of a; nothing names it as a source any more.
    assert router.referrers(group_key(WEB)) == {"a"}


def test_a_container_without_rules_has_members_only() -> None:
    router = RouterIngress()
    _deleted, added = _apply(
        router, "a", ContainerIngress(), _state("10.0.0.2", groups=(WEB, DB), rules=())
    )
    assert sorted(e.set_name for e in added) == ["sg_members", "sg_members", "sg_tags", "sg_tags"]
    assert [e.key for e in added if e.set_name == "sg_members"] == [
        ("10.0.0.2", 0),
        ("10.0.0.2", 1),
    ]


def test_tags_never_collide_within_a_router() -> None:
    from dockyard.network import ingress

    wanted = ingress._preferred_tag(group_key(WEB))
    router = RouterIngress({group_key(DB): wanted})
    _apply(router, "a", ContainerIngress(), _state("10.0.0.2", rules=()))
    assert router.tags[group_key(WEB)] == wanted + 1
    assert RouterIngress.from_elements(
        [Element("sg_tags", (wanted,), comment=group_key(DB)), Element("bridges", ("br",))]
    ).tags == {group_key(DB): wanted}


def test_a_public_ip_adds_its_nat_and_memberships() -> None:
    router = RouterIngress()
    public = PublicIngress(
        address="198.51.100.7",
        target="10.0.0.2",
        groups=(WEB,),
        ports=(("tcp", 10022, 22, True), ("tcp", 80, 80, False)),
    )
    bound = replace(_state("10.0.0.2", rules=()), public=public)
    _apply(router, "a", ContainerIngress(), _state("10.0.0.2", rules=()))
    deleted, added = _apply(router, "a", _state("10.0.0.2", rules=()), bound)
    web = router.tags[group_key(WEB)]
    assert deleted == []
    assert added == [
        Element("fip_snat", ("10.0.0.2",), ("198.51.100.7",), "a"),
        Element("fip_host", ("198.51.100.7",), ("10.0.0.2",), "a"),
        Element("fip_publish", ("198.51.100.7", "tcp", 10022), ("10.0.0.2", 22), "a"),
        Element("fip_expose", ("198.51.100.7", "tcp", 80), ("10.0.0.2", 80), "a"),
        Element("sg_members", ("198.51.100.7", 0), (web,), "a"),
    ]
    deleted, added = _apply(router, "a", bound, _state("10.0.0.2", rules=()))
    assert added == []
    assert sorted(e.set_name for e in deleted) == [
        "fip_expose",
        "fip_host",
        "fip_publish",
        "fip_snat",
        "sg_members",
    ]


def test_sweep_finds_what_nothing_refers_to() -> None:
    profile = compile_profile(RULES)
    listed = [
        Element("sg_tags", (500,), comment=profile.key),
        Element("sg_tags", (501,), comment=group_key(WEB)),
        Element("sg_tags", (502,), comment=group_key(DB)),
        Element("sg_tags", (503,), comment="p:gone"),
        *profile_elements(profile, tag=500, tag_of=lambda _g: 501),
        Element("sg_cidr_all", (503, "0.0.0.0/0"), comment="p-gone"),
        Element("sg_profile", ("10.0.0.2",), (500,), "a"),
        Element("sg_members", ("10.0.0.2", 0), (502,), "a"),
    ]
    router = RouterIngress.from_elements(listed)
    stale = router.sweep(listed)
    assert stale == [
        Element("sg_cidr_all", (503, "0.0.0.0/0"), comment="p-gone"),
        Element("sg_tags", (503,), comment="p:gone"),
    ]
    assert "p:gone" not in router.tags
    # Without its user the profile goes, and web (named only by the profile) with it.
    rest = [e for e in listed if e not in stale and e.set_name != "sg_profile"]
    assert {e.set_name for e in router.sweep(rest)} == {
        "sg_cidr_ports",
        "sg_group_ports",
        "sg_tags",
    }
    assert set(router.tags) == {group_key(DB)}


def test_profiles_are_values() -> None:
    assert Profile() == compile_profile(())
    assert hash(Profile()) == hash(compile_profile(()))


def test_an_old_state_with_names_the_router_never_tagged_deletes_nothing_of_them() -> None:
    """A router made anew (its namespace deleted behind the agent's back) knows no tags of
    what the container had: going from that state adds the new one and deletes nothing."""
    router = RouterIngress()
    change = router.change(owner="a", old=_state("10.0.0.2"), new=_state("10.0.0.2", rules=()))
    assert change.delete == []
    assert [e.set_name for e in change.add] == ["sg_tags", "sg_members"]
