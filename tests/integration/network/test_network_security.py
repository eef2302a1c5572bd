"""Security groups in the router's table: what gets into a container from the public side,
from another network of its tenant, from another tenant; rules changed while it runs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any

import pytest
from network_helpers import (
    Net,
    Netns,
    Outside,
    free_port,
    ip_of,
    query,
    router_address,
    router_elements,
)

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import EndpointSpec, IngressRule, NetworkSpec, PortMapping
from dockyard.network import HostNetwork

Run = Callable[[Coroutine[Any, Any, Any]], Any]
A, B, C, D = "a" * 64, "b" * 64, "c" * 64, "d" * 64
WEB, DB = "1" * 64, "2" * 64  # security group ids


def rule(protocol: str, ports: tuple[int, int] = (0, 0), **source: str) -> IngressRule:
    return IngressRule(protocol, ports[0], ports[1], **source)


def secured(
    endpoint: EndpointSpec, groups: Sequence[str] = (), rules: Sequence[IngressRule] = ()
) -> EndpointSpec:
    return replace(endpoint, groups=tuple(groups), ingress=tuple(rules))


def with_rules(spec: NetworkSpec, *rules: IngressRule, groups: Sequence[str] = ()) -> NetworkSpec:
    """``spec`` with every endpoint's groups and rules replaced."""
    return replace(spec, endpoints=tuple(secured(e, groups, rules) for e in spec.endpoints))


def test_nothing_gets_in_from_another_network_by_default(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """In a group without rules: the own network gets in, another network does not."""
    one, two = make_net(), make_net()
    a, b, c = make_netns("a"), make_netns("b"), make_netns("c")
    spec_a = with_rules(one.spec(), groups=[WEB])
    run(host.attach(container_id=A, pid=a.pid, spec=spec_a))
    run(host.attach(container_id=B, pid=b.pid, spec=with_rules(one.spec(), groups=[WEB])))
    run(host.attach(container_id=C, pid=c.pid, spec=with_rules(two.spec(), groups=[WEB])))
    a.serve("tcp", 7000)
    assert b.query("tcp", ip_of(spec_a), 7000).startswith("a ")
    assert c.query("tcp", ip_of(spec_a), 7000, timeout=1).startswith("ERR")
    assert not c.ping(ip_of(spec_a))


def test_a_rule_lets_a_prefix_in_on_a_port_range_and_its_change_applies_at_once(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    front, back = make_net(), make_net()
    web, other = make_netns("web"), make_netns("other")
    spec = back.spec()
    run(host.attach(container_id=A, pid=web.pid, spec=spec))
    run(host.attach(container_id=B, pid=other.pid, spec=front.spec()))
    for port in (7000, 7001, 7002, 7003):
        web.serve("tcp", port)
    web.serve("udp", 7000)
    target = ip_of(spec)
    assert other.query("tcp", target, 7000, timeout=1).startswith("ERR")
    # Overlapping rules (compiled into disjoint boxes), a prefix that is not the
    # client's, and udp on another range.
    rules = (
        rule("tcp", (7000, 7002), source=str(front.subnet)),
        rule("tcp", (7001, 7001), source="10.0.0.0/8"),
        rule("tcp", (7003, 7003), source="192.0.2.0/24"),
        rule("udp", (6000, 6999), source="0.0.0.0/0"),
    )
    run(host.update(container_id=A, spec=with_rules(spec, *rules, groups=[WEB])))
    client = str(front.subnet.network_address + 2)  # other's address
    for port in (7000, 7001, 7002):
        # Routed inside the router: the client's own address arrives.
        assert other.query("tcp", target, port) == f"web {client}"
    assert other.query("tcp", target, 7003, timeout=1).startswith("ERR")
    assert other.query("udp", target, 7000, timeout=1).startswith("ERR")
    # Rules taken away: new connections are refused again.
    run(host.update(container_id=A, spec=with_rules(spec, groups=[WEB])))
    assert other.query("tcp", target, 7000, timeout=1).startswith("ERR")
    # And an icmp rule lets pings in, nothing else.
    run(host.update(container_id=A, spec=with_rules(spec, rule("icmp", source="0.0.0.0/0"))))
    assert other.ping(target)
    assert other.query("tcp", target, 7000, timeout=1).startswith("ERR")


def test_a_source_group_lets_its_members_in_across_networks(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    one, two = make_net(), make_net()
    db, web, stranger = make_netns("db"), make_netns("web"), make_netns("stranger")
    spec_db = with_rules(one.spec(), rule("tcp", (5432, 5432), source_group=WEB), groups=[DB])
    spec_web = with_rules(two.spec(), rule("all", source_group=WEB), groups=[WEB])
    spec_stranger = with_rules(two.spec(), groups=[DB])
    run(host.attach(container_id=A, pid=db.pid, spec=spec_db))
    run(host.attach(container_id=B, pid=web.pid, spec=spec_web))
    run(host.attach(container_id=C, pid=stranger.pid, spec=spec_stranger))
    db.serve("tcp", 5432)
    db.serve("tcp", 5433)
    assert web.query("tcp", ip_of(spec_db), 5432) == f"db {ip_of(spec_web)}"
    assert web.query("tcp", ip_of(spec_db), 5433, timeout=1).startswith("ERR")
    assert stranger.query("tcp", ip_of(spec_db), 5432, timeout=1).startswith("ERR")
    # The stranger joins web (second slot): it gets in.
    run(host.update(container_id=C, spec=with_rules(spec_stranger, groups=[DB, WEB])))
    assert stranger.query("tcp", ip_of(spec_db), 5432) == f"db {ip_of(spec_stranger)}"
    # Members reach each other's every port across networks (web's rule names web)...
    web.serve("tcp", 8000)
    stranger_on_one = make_netns("s1")
    run(
        host.attach(
            container_id=D, pid=stranger_on_one.pid, spec=with_rules(one.spec(), groups=[WEB])
        )
    )
    assert stranger_on_one.query("tcp", ip_of(spec_web), 8000).startswith("web ")
    assert stranger_on_one.ping(ip_of(spec_web))
    # ...until the member leaves the group.
    run(host.detach(container_id=D))
    run(host.update(container_id=C, spec=with_rules(spec_stranger, groups=[DB])))
    assert stranger.query("tcp", ip_of(spec_db), 5432, timeout=1).startswith("ERR")


def test_published_ports_are_an_allow_of_their_own(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    outside: Outside,
    run: Run,
) -> None:
    ns = make_netns("web")
    port = free_port()
    spec = with_rules(make_net().spec(PortMapping("tcp", 80, host_port=port)), groups=[WEB])
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    ns.serve("tcp", 80)
    assert outside.ns.query("tcp", outside.host_ip, port) == f"web {outside.ip}"
    assert query("tcp", "127.0.0.1", port).startswith("web ")


def test_the_nat_only_network_stays_isolated_whatever_the_rules(
    host: HostNetwork,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    nat = make_net(isolated=True)
    a, b = make_netns("a"), make_netns("b")
    anyone = rule("all", source="0.0.0.0/0")
    spec_a = with_rules(nat.spec(), anyone, groups=[WEB])
    spec_b = with_rules(nat.spec(), anyone, groups=[WEB])
    run(host.attach(container_id=A, pid=a.pid, spec=spec_a))
    run(host.attach(container_id=B, pid=b.pid, spec=spec_b))
    b.serve("tcp", 7000)
    a.run("ip", "route", "add", f"{ip_of(spec_b)}/32", "via", nat.gateway)
    b.run("ip", "route", "add", f"{ip_of(spec_a)}/32", "via", nat.gateway)
    assert a.query("tcp", ip_of(spec_b), 7000, timeout=1).startswith("ERR")


def test_another_tenant_gets_in_only_by_the_rules_of_the_target(
    host: HostNetwork,
    make_tenant: Callable[[], str],
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    pool: Any,
    run: Run,
) -> None:
    """Tenant two's container reaches tenant one's only through its public IP, and only
    as tenant one's rules allow: naming the same group id in another tenant makes no
    one a member."""
    t1, t2 = make_tenant(), make_tenant()
    target, intruder = make_netns("target"), make_netns("intruder")
    address = str(pool.network_address + 1)
    spec = replace(
        with_rules(make_net(owner=t1).spec(), rule("tcp", (80, 80), source_group=WEB)),
        public_ip=address,
        public_ports=(PortMapping("tcp", 80, "", 80),),
    )
    run(host.attach(container_id=A, pid=target.pid, spec=spec))
    other = with_rules(make_net(owner=t2).spec(), groups=[WEB])
    run(host.attach(container_id=B, pid=intruder.pid, spec=other))
    target.serve("tcp", 80)
    assert intruder.query("tcp", address, 80, timeout=1).startswith("ERR")
    assert intruder.query("tcp", ip_of(spec), 80, timeout=1).startswith("ERR")
    assert intruder.query("tcp", router_address(host, t1), 80, timeout=1).startswith("ERR")
    # Tenant one lets anyone in on 80: tenant two comes from its router's address.
    opened = with_rules(spec, rule("tcp", (80, 80), source="0.0.0.0/0"))
    run(host.update(container_id=A, spec=opened))
    assert intruder.query("tcp", address, 80) == f"target {router_address(host, t2)}"


def test_malformed_rules_are_refused_before_anything_is_made(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    ns = make_netns()
    spec = make_net().spec()
    for bad in (
        rule("tcp", (0, 80), source="0.0.0.0/0"),
        rule("tcp", (90, 80), source="0.0.0.0/0"),
        rule("gre", source="0.0.0.0/0"),
        rule("tcp", (80, 80)),
        rule("tcp", (80, 80), source="10.0.0.1/8"),
        rule("tcp", (80, 80), source="0.0.0.0/0", source_group=WEB),
    ):
        with pytest.raises(InvalidArgument):
            run(host.attach(container_id=A, pid=ns.pid, spec=with_rules(spec, bad)))
    too_many = [f"{n:064x}" for n in range(17)]
    with pytest.raises(InvalidArgument):
        run(host.attach(container_id=A, pid=ns.pid, spec=with_rules(spec, groups=too_many)))
    assert A not in host.attached()
    assert ns.links() == {"lo"}
    run(host.attach(container_id=A, pid=ns.pid, spec=spec))
    with pytest.raises(InvalidArgument):
        run(
            host.update(
                container_id=A, spec=with_rules(spec, rule("udp", (1, 70000), source="0.0.0.0/0"))
            )
        )


def test_profiles_are_shared_and_go_with_their_last_user(
    host: HostNetwork,
    tenant: str,
    make_net: Callable[..., Net],
    make_netns: Callable[..., Netns],
    run: Run,
) -> None:
    """Endpoints with the same rules share one copy of them; each adds its own address
    (sg_profile) and memberships (sg_members) only."""
    net = make_net()
    rules = (rule("tcp", (80, 443), source="0.0.0.0/0"), rule("tcp", (22, 22), source_group=WEB))

    def counts() -> dict[str, int]:
        found: dict[str, int] = {}
        for e in router_elements(host, tenant):
            if e.set_name.startswith(("sg_", "fip_")):
                found[e.set_name] = found.get(e.set_name, 0) + 1
        return found

    owners = [A, B, C]
    for owner in owners:
        ns = make_netns()
        run(
            host.attach(
                container_id=owner,
                pid=ns.pid,
                spec=with_rules(net.spec(), *rules, groups=[WEB, DB]),
            )
        )
    assert counts() == {
        "sg_profile": 3,
        "sg_members": 6,
        "sg_cidr_ports": 1,
        "sg_group_ports": 1,
        "sg_tags": 3,  # the profile, web, db
    }
    for owner in owners:
        run(host.detach(container_id=owner))
    assert counts() == {}
