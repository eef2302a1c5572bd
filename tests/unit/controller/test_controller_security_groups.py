"""Security groups (controller.security_groups) on a real SQLite store: the default group,
create and remove, rule validation, the groups a create chooses, attach and detach, and the
network specs pushed to a fake agent when a container's groups or their rules change."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.controller.events import EventLog
from dockyard.controller.networks import EndpointRequest, NetworkService
from dockyard.controller.security_groups import (
    GROUPS_LABEL,
    MAX_RULES,
    GroupRequest,
    RuleRequest,
    SecurityGroupService,
    group_records,
    groups_for_create,
)
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from dockyard.core.models import Container, ContainerConfig, HostConfig, Status
from dockyard.core.protocol import IngressRule
from dockyard.store import SqlStore
from dockyard.testing.security_groups import RecordingAgent, StoreMembers

A, B = "tenant-a", "tenant-b"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "dockyard.db", uid_range_start=100_000)
    yield opened
    opened.close()


@pytest.fixture
def networks(store: SqlStore) -> NetworkService:
    return NetworkService(
        store=store,
        events=EventLog(store, keep=100, max_age=0),
        bridge_subnet="172.17.0.0/16",
        default_subnet="172.18.0.0/16",
    )


@pytest.fixture
def agent() -> RecordingAgent:
    return RecordingAgent()


@pytest.fixture
def service(
    store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> SecurityGroupService:
    return SecurityGroupService(
        store=store, networks=networks, containers=StoreMembers(store), agent_for=lambda _: agent
    )


def add_container(
    store: SqlStore,
    networks: NetworkService,
    *,
    name: str,
    tenant: str = A,
    labels: dict[str, str] | None = None,
    status: Status = Status.RUNNING,
    mode: str = "default",
) -> Container:
    """A container as a create leaves it: its groups chosen from its labels, an address on
    its tenant's default network (unless ``mode`` is none)."""
    number = sum(1 for _ in store.list_containers(tenant="*")) + 1
    container = Container(
        id=(f"{number:x}" * 64)[:64],
        tenant=tenant,
        name=name,
        created=1,
        image="busybox",
        image_id="sha256:" + "d" * 64,
        config=ContainerConfig(image="busybox", labels=labels or {}),
        host_config=HostConfig(network_mode=mode),
        host="h1",
        security_groups=groups_for_create(store, tenant=tenant, labels=labels or {}),
    )
    container.state.status = status
    if mode == "default":
        network = networks.get(tenant=tenant, ref="default")
        container.endpoints.append(
            networks.join(container_id=container.id, network=network, request=EndpointRequest(""))
        )
    store.add_container(container)
    return container


# groups -------------------------------------------------------------------------------------


def test_every_tenant_has_its_own_default_group_that_cannot_be_removed(
    service: SecurityGroupService,
) -> None:
    mine = service.list_groups(tenant=A)
    assert [(g.name, g.builtin, g.rules) for g in mine] == [("default", True, ())]
    assert service.list_groups(tenant=A) == mine, "made once"
    theirs = service.get(tenant=B, ref="default")
    assert theirs.id != mine[0].id
    assert service.get(tenant=A, ref=mine[0].id[:12]) == mine[0]
    with pytest.raises(PermissionDenied, match="default security group"):
        service.remove(tenant=A, ref="default")
    with pytest.raises(AlreadyExists):
        service.create(tenant=A, request=GroupRequest(name="default"))


def test_create_names_and_tenants(service: SecurityGroupService) -> None:
    web = service.create(
        tenant=A, request=GroupRequest(name="web", description="front", labels={"k": "v"})
    )
    assert (web.name, web.description, web.labels, web.rules, web.builtin) == (
        "web",
        "front",
        {"k": "v"},
        (),
        False,
    )
    assert [g.name for g in service.list_groups(tenant=A)] == ["default", "web"]
    with pytest.raises(AlreadyExists, match="web already exists"):
        service.create(tenant=A, request=GroupRequest(name="web"))
    assert service.create(tenant=B, request=GroupRequest(name="web")).id != web.id
    with pytest.raises(NotFound):
        service.get(tenant=B, ref=web.id)
    for bad in ("", "a b", "-x", "x" * 129, "web,db"):
        with pytest.raises(InvalidArgument):
            service.create(tenant=A, request=GroupRequest(name=bad))
    with pytest.raises(InvalidArgument, match="description"):
        service.create(tenant=A, request=GroupRequest(name="long", description="x" * 256))
    assert service.remove(tenant=A, ref="web") == web
    with pytest.raises(NotFound):
        service.get(tenant=A, ref="web")


# rules --------------------------------------------------------------------------------------


def add_rule(service: SecurityGroupService, request: RuleRequest, ref: str = "web") -> Any:
    return run(service.add_rule(tenant=A, ref=ref, request=request))


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (RuleRequest("sctp", 80, 80, source="0.0.0.0/0"), "invalid protocol 'sctp'"),
        (RuleRequest("tcp", 0, 80, source="0.0.0.0/0"), "ports are 1-65535"),
        (RuleRequest("tcp", 0, source="0.0.0.0/0"), "ports are 1-65535"),
        (RuleRequest("udp", None, 80, source="0.0.0.0/0"), "needs its first port"),
        (RuleRequest("tcp", 80, 65536, source="0.0.0.0/0"), "ports are 1-65535"),
        (RuleRequest("udp", 90, 80, source="0.0.0.0/0"), "first is higher"),
        (RuleRequest("icmp", 8, source="0.0.0.0/0"), "icmp takes no ports"),
        (RuleRequest("all", 0, 80, source="0.0.0.0/0"), "all takes no ports"),
        (RuleRequest("tcp", 80), "exactly one source"),
        (RuleRequest("tcp", 80, source="10.0.0.0/8", source_group="web"), "exactly one source"),
        (RuleRequest("tcp", 80, source="10.0.0.0/33"), "invalid source"),
        (RuleRequest("tcp", 80, source="nonsense"), "invalid source"),
        (RuleRequest("tcp", 80, source="10.1.2.3/8"), "it should be 10.0.0.0/8"),
        (RuleRequest("tcp", 80, source="fd00::/8"), "only IPv4"),
        (RuleRequest("tcp", 80, source_group="nosuch"), "source group nosuch: no such"),
    ],
)
def test_malformed_rules_are_refused(
    service: SecurityGroupService, request_: RuleRequest, needle: str
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    with pytest.raises(InvalidArgument, match=needle):
        add_rule(service, request_)
    assert service.get(tenant=A, ref="web").rules == ()


def test_rules_are_normalised_and_kept(service: SecurityGroupService) -> None:
    web = service.create(tenant=A, request=GroupRequest(name="web"))
    db = service.create(tenant=A, request=GroupRequest(name="db"))
    one = add_rule(service, RuleRequest("TCP", 80, source="1.2.3.4")).rule
    assert (one.protocol, one.port_min, one.port_max, one.source) == ("tcp", 80, 80, "1.2.3.4/32")
    every = add_rule(service, RuleRequest("udp", source="0.0.0.0/0")).rule
    assert (every.port_min, every.port_max) == (1, 65535)
    ping = add_rule(service, RuleRequest("icmp", 0, 0, source_group="db")).rule
    assert (ping.port_min, ping.port_max, ping.source, ping.source_group) == (0, 0, "", db.id)
    itself = add_rule(service, RuleRequest("all", source_group=web.id[:10])).rule
    assert itself.source_group == web.id
    assert [r.id for r in service.get(tenant=A, ref="web").rules] == [
        one.id,
        every.id,
        ping.id,
        itself.id,
    ]
    with pytest.raises(AlreadyExists, match=one.id[:12]):
        add_rule(service, RuleRequest("tcp", 80, 80, source="1.2.3.4/32"))
    # Another tenant's group is no source, and reads exactly as a missing one.
    service.create(tenant=B, request=GroupRequest(name="theirs"))
    with pytest.raises(InvalidArgument, match="source group theirs: no such security group"):
        add_rule(service, RuleRequest("tcp", 22, source_group="theirs"))
    removed = run(service.remove_rule(tenant=A, ref="web", rule=every.id[:8]))
    assert removed.rule == every
    assert every not in service.get(tenant=A, ref="web").rules
    with pytest.raises(NotFound, match="no rule"):
        run(service.remove_rule(tenant=A, ref="web", rule=every.id))
    with pytest.raises(NotFound):
        run(service.remove_rule(tenant=B, ref="web", rule=one.id))


def test_a_group_holds_a_bounded_number_of_rules(service: SecurityGroupService) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    for port in range(1, MAX_RULES + 1):
        add_rule(service, RuleRequest("tcp", port, source="10.0.0.0/8"))
    with pytest.raises(InvalidArgument, match=f"at most {MAX_RULES} rules"):
        add_rule(service, RuleRequest("udp", 53, source="10.0.0.0/8"))


# groups at create ---------------------------------------------------------------------------


def test_a_create_chooses_groups_by_label_else_default(
    service: SecurityGroupService, store: SqlStore
) -> None:
    web = service.create(tenant=A, request=GroupRequest(name="web"))
    db = service.create(tenant=A, request=GroupRequest(name="db"))
    default = service.get(tenant=A, ref="default")
    assert groups_for_create(store, tenant=A, labels={}) == [default.id]
    assert groups_for_create(store, tenant=A, labels={GROUPS_LABEL: " "}) == [default.id]
    chosen = groups_for_create(store, tenant=A, labels={GROUPS_LABEL: "web, db,web,"})
    assert chosen == [web.id, db.id]
    assert groups_for_create(store, tenant=A, labels={GROUPS_LABEL: "default,web"}) == [
        default.id,
        web.id,
    ]
    with pytest.raises(NotFound, match="security group cache not found"):
        groups_for_create(store, tenant=A, labels={GROUPS_LABEL: "web,cache"})
    # The label of another tenant's group name is as unknown as any other.
    with pytest.raises(NotFound, match="security group web not found"):
        groups_for_create(store, tenant=B, labels={GROUPS_LABEL: "web"})
    assert groups_for_create(store, tenant=B, labels={}) == [
        service.get(tenant=B, ref="default").id
    ]


# specs and pushes ---------------------------------------------------------------------------


def test_the_spec_carries_the_groups_and_the_union_of_their_rules(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    db = service.create(tenant=A, request=GroupRequest(name="db"))
    add_rule(service, RuleRequest("tcp", 80, 81, source="0.0.0.0/0"))
    add_rule(service, RuleRequest("tcp", 80, 81, source="0.0.0.0/0"), ref="db")
    add_rule(service, RuleRequest("udp", 53, source_group="web"), ref="db")
    c = add_container(store, networks, name="app", labels={GROUPS_LABEL: "web,db"})
    records = group_records(store, c)
    spec = networks.spec(c, groups=records)
    (endpoint,) = spec.endpoints
    web_id = service.get(tenant=A, ref="web").id
    assert endpoint.groups == (web_id, db.id)
    assert endpoint.ingress == (
        IngressRule("tcp", 80, 81, source="0.0.0.0/0"),
        IngressRule("udp", 53, 53, source_group=web_id),
    )
    assert networks.endpoint_spec(c, c.endpoints[0], 0, groups=records).ingress == endpoint.ingress
    assert networks.spec(c).endpoints[0].groups == (web_id, db.id)  # the store's by default


def test_rule_changes_reach_every_member_the_agent_holds(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    running = add_container(store, networks, name="running", labels={GROUPS_LABEL: "web"})
    stopped = add_container(
        store, networks, name="stopped", labels={GROUPS_LABEL: "web"}, status=Status.EXITED
    )
    loopback = add_container(store, networks, name="lo", labels={GROUPS_LABEL: "web"}, mode="none")
    outsider = add_container(store, networks, name="outsider")
    change = add_rule(service, RuleRequest("tcp", 443, source="0.0.0.0/0"))
    assert change.unapplied == ()
    assert sorted(c for c, _ in agent.pushed) == sorted([running.id, stopped.id])
    spec = agent.last(running.id)
    assert spec.mode == "tenant"
    assert spec.endpoints[0].ingress == (IngressRule("tcp", 443, 443, source="0.0.0.0/0"),)
    assert loopback.id not in dict(agent.pushed) and outsider.id not in dict(agent.pushed)
    agent.pushed.clear()
    run(service.remove_rule(tenant=A, ref="web", rule=change.rule.id))
    assert agent.last(stopped.id).endpoints[0].ingress == ()


def test_attach_and_detach(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> None:
    web = service.create(tenant=A, request=GroupRequest(name="web"))
    add_rule(service, RuleRequest("tcp", 80, source="0.0.0.0/0"))
    default = service.get(tenant=A, ref="default")
    c = add_container(store, networks, name="app")
    agent.pushed.clear()
    attached = run(service.attach(tenant=A, container="app", group="web"))
    assert attached.container is not None
    assert attached.container.security_groups == [default.id, web.id]
    assert store.get_container(tenant=A, ref=c.id).security_groups == [default.id, web.id]
    (endpoint,) = agent.last(c.id).endpoints
    assert endpoint.groups == (default.id, web.id)
    assert endpoint.ingress == (IngressRule("tcp", 80, 80, source="0.0.0.0/0"),)
    with pytest.raises(Conflict, match="already in security group web"):
        run(service.attach(tenant=A, container=c.id[:12], group=web.id))
    assert [g.name for g in service.of_container(tenant=A, ref="app")[1]] == ["default", "web"]
    run(service.detach(tenant=A, container="app", group="default"))
    detached = run(service.detach(tenant=A, container="app", group="web"))
    assert detached.container is not None and detached.container.security_groups == []
    assert agent.last(c.id).endpoints[0].groups == ()
    assert agent.last(c.id).endpoints[0].ingress == ()
    with pytest.raises(Conflict, match="not in security group web"):
        run(service.detach(tenant=A, container="app", group="web"))


def test_attach_across_tenants_and_while_creating(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    service.create(tenant=B, request=GroupRequest(name="theirs"))
    mine = add_container(store, networks, name="app")
    add_container(store, networks, name="other", tenant=B)
    with pytest.raises(NotFound):
        run(service.attach(tenant=A, container="other", group="web"))
    with pytest.raises(NotFound):
        run(service.attach(tenant=A, container="app", group="theirs"))
    with pytest.raises(NotFound):
        run(service.attach(tenant=B, container=mine.id, group="theirs"))
    with pytest.raises(NotFound):
        service.of_container(tenant=B, ref="app")
    mine.phase = "creating"
    store.put_container(mine)
    with pytest.raises(Conflict, match="being created"):
        run(service.attach(tenant=A, container="app", group="web"))


def test_a_group_in_use_is_not_removed(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    service.create(tenant=A, request=GroupRequest(name="db"))
    add_container(store, networks, name="app", labels={GROUPS_LABEL: "web"})
    with pytest.raises(Conflict, match="in use by containers app"):
        service.remove(tenant=A, ref="web")
    add_rule(service, RuleRequest("tcp", 5432, source_group="web"), ref="db")
    run(service.detach(tenant=A, container="app", group="web"))
    with pytest.raises(Conflict, match="source of rules of security groups db"):
        service.remove(tenant=A, ref="web")
    rule = service.get(tenant=A, ref="db").rules[0]
    run(service.remove_rule(tenant=A, ref="db", rule=rule.id))
    service.remove(tenant=A, ref="web")
    # A rule naming its own group does not hold it.
    add_rule(service, RuleRequest("all", source_group="db"), ref="db")
    service.remove(tenant=A, ref="db")
    assert [g.name for g in service.list_groups(tenant=A)] == ["default"]


def test_pushes_an_agent_missed_are_retried_until_they_land(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    c = add_container(store, networks, name="app", labels={GROUPS_LABEL: "web"})
    gone = add_container(store, networks, name="gone", labels={GROUPS_LABEL: "web"})
    agent.down = True
    change = add_rule(service, RuleRequest("tcp", 80, source="0.0.0.0/0"))
    assert sorted(change.unapplied) == sorted([c.id, gone.id])
    assert service.get(tenant=A, ref="web").rules == (change.rule,), "the change is kept"
    assert service.unapplied() == {c.id: A, gone.id: A}
    assert sorted(run(service.retry_unapplied())) == sorted([c.id, gone.id])
    store.delete_container(tenant=A, container_id=gone.id)
    agent.down = False
    assert run(service.retry_unapplied()) == ()
    assert service.unapplied() == {}
    assert [cid for cid, _ in agent.pushed] == [c.id]
    assert agent.last(c.id).endpoints[0].ingress[0].port_min == 80


def test_a_member_being_created_gets_the_change_once_it_exists(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    c = add_container(store, networks, name="app", labels={GROUPS_LABEL: "web"})
    c.phase = "creating"
    store.put_container(c)
    assert add_rule(service, RuleRequest("tcp", 80, source="0.0.0.0/0")).unapplied == (c.id,)
    assert agent.pushed == []
    c.phase = ""
    store.put_container(c)
    assert run(service.retry_unapplied()) == ()
    assert agent.last(c.id).endpoints[0].ingress != ()


def test_concurrent_changes_leave_the_agent_with_the_last_spec(
    service: SecurityGroupService, store: SqlStore, networks: NetworkService, agent: RecordingAgent
) -> None:
    service.create(tenant=A, request=GroupRequest(name="web"))
    c = add_container(store, networks, name="app", labels={GROUPS_LABEL: "web"})

    async def both() -> None:
        await asyncio.gather(
            *(
                service.add_rule(
                    tenant=A, ref="web", request=RuleRequest("tcp", port, source="0.0.0.0/0")
                )
                for port in (80, 443, 8080)
            )
        )

    run(both())
    ports = [r.port_min for r in agent.last(c.id).endpoints[0].ingress]
    assert ports == [80, 443, 8080]


def test_public_surface() -> None:
    from dockyard.controller import security_groups

    assert set(security_groups.__all__) == {
        "DEFAULT_GROUP",
        "GROUPS_LABEL",
        "MAX_GROUPS_PER_CONTAINER",
        "MAX_RULES",
        "PROTOCOLS",
        "Change",
        "GroupRequest",
        "Members",
        "RuleRequest",
        "SecurityGroupService",
        "ensure_default_group",
        "group_records",
        "groups_for_create",
    }
    assert all(hasattr(security_groups, name) for name in security_groups.__all__)
