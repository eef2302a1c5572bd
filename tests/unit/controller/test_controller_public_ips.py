"""Floating IPs (controller.public_ips.PublicIpService) on a real SQLite store, with an
agent that records the network specs pushed to it: the operator's pools, requests under
the quota, binding, moving, unbinding and releasing, the agents told first, and the
ports a public IP reaches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.controller.events import EventLog
from dockyard.controller.hosts import HostRegistry
from dockyard.controller.networks import (
    EndpointRequest,
    NetworkRequest,
    NetworkService,
    public_port_mappings,
)
from dockyard.controller.plans import builtin_plans
from dockyard.controller.public_ips import PublicIpService
from dockyard.controller.quotas import QuotaService
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
    QuotaExceeded,
    Unavailable,
)
from dockyard.core.models import Container, ContainerConfig, HostConfig, PortBinding
from dockyard.core.protocol import NetworkSpec, PortMapping
from dockyard.images.content import ContentStore
from dockyard.store import SqlStore

POOL = "198.18.0.0/29"  # 198.18.0.1 - 198.18.0.6
T = TypeVar("T")


class RecordingAgent:
    """The one agent call the service makes: ``update_network``, recorded in order. A
    container id in ``failing`` makes the call raise that error."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, NetworkSpec]] = []
        self.failing: dict[str, DockyardError] = {}

    async def update_network(self, container_id: str, spec: NetworkSpec) -> None:
        error = self.failing.get(container_id)
        if error is not None:
            raise error
        self.pushed.append((container_id, spec))

    def ips(self) -> list[tuple[str, str]]:
        """(container name initial, public IP) of each push, in order."""
        return [(bytes.fromhex(cid[:2]).decode(), spec.public_ip) for cid, spec in self.pushed]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "db" / "dockyard.db", uid_range_start=100_000)
    yield opened
    opened.close()


@pytest.fixture
def a(store: SqlStore) -> str:
    """A tenant on the default plan (free: 2 public IPs)."""
    return store.ensure_tenant("acme").id


@pytest.fixture
def b(store: SqlStore) -> str:
    return store.ensure_tenant("bob").id


@pytest.fixture
def networks(store: SqlStore) -> NetworkService:
    return NetworkService(
        store=store,
        events=EventLog(store, keep=100, max_age=0),
        bridge_subnet="172.17.0.0/16",
        default_subnet="172.18.0.0/16",
    )


@pytest.fixture
def quotas(store: SqlStore, tmp_path: Path) -> QuotaService:
    return QuotaService(
        store=store,
        plans=builtin_plans(),
        content=ContentStore(tmp_path / "blobs"),
        hosts=HostRegistry(store),
    )


@pytest.fixture
def agent() -> RecordingAgent:
    return RecordingAgent()


@pytest.fixture
def service(
    store: SqlStore, quotas: QuotaService, networks: NetworkService, agent: RecordingAgent
) -> PublicIpService:
    locks: dict[str, asyncio.Lock] = {}
    made = PublicIpService(
        store=store,
        quotas=quotas,
        networks=networks,
        agent_for=lambda _host: agent,  # type: ignore[arg-type,return-value]
        container_lock=lambda cid: locks.setdefault(cid, asyncio.Lock()),
    )
    made.add_pool(POOL)
    return made


def add_container(
    store: SqlStore,
    networks: NetworkService,
    name: str,
    *,
    tenant: str,
    network: str = "default",
    exposed: tuple[str, ...] = ("80/tcp",),
    **host_config: object,
) -> Container:
    """A container record of ``tenant`` on ``network`` (none for ``none`` and
    ``container:`` modes); its id is its name's first letter in hex, 32 times."""
    container = Container(
        id=name[0].encode().hex() * 32,
        tenant=tenant,
        name=name,
        created=1,
        image="busybox",
        image_id="sha256:" + "d" * 64,
        config=ContainerConfig(image="busybox", exposed_ports=exposed),
        host_config=HostConfig(network_mode=network, **host_config),  # type: ignore[arg-type]
        host="h1",
    )
    if network != "none" and not network.startswith("container:"):
        joined = networks.get(tenant=tenant, ref=network)
        container.endpoints.append(
            networks.join(
                container_id=container.id, network=joined, request=EndpointRequest(network)
            )
        )
    store.add_container(container)
    return container


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# pools ----------------------------------------------------------------------------------


def test_pools_are_validated_listed_and_removed_only_when_unused(
    service: PublicIpService, a: str, caplog: pytest.LogCaptureFixture
) -> None:
    service.add_pool("198.19.255.255")  # one address: a /32
    for bad, needle in [
        ("198.18.1.1/24", "host bits"),
        ("2001:db8::/64", "IPv4"),
        ("nonsense", "invalid public IP pool"),
        ("127.0.0.1/32", "reserved"),
        ("100.64.0.0/24", "reserved"),
        ("224.0.0.0/24", "reserved"),
    ]:
        with pytest.raises(InvalidArgument, match=needle):
            service.add_pool(bad)
    with pytest.raises(AlreadyExists):
        service.add_pool(POOL)
    with pytest.raises(Conflict, match="overlaps"):
        service.add_pool("198.18.0.4/30")
    held = run(service.request(tenant=a))
    usage = {u.pool.cidr: (u.size, u.held) for u in service.pools()}
    assert usage == {POOL: (6, 1), "198.19.255.255/32": (1, 0)}
    with pytest.raises(Conflict, match="held by tenants"):
        service.remove_pool(POOL)
    with pytest.raises(NotFound):
        service.remove_pool("198.18.9.0/24")
    service.remove_pool("198.19.255.255/32")
    run(service.release(tenant=a, address=held.address))
    service.remove_pool(POOL)
    assert service.pools() == []

    with caplog.at_level(logging.ERROR, logger="dockyard.controller"):
        service.ensure_pools([POOL, POOL, "198.18.0.0/30"])
    assert [u.pool.cidr for u in service.pools()] == [POOL]
    assert "--public-pool 198.18.0.0/30 left out" in caplog.text


# requests and the quota -------------------------------------------------------------------


def test_requests_count_against_the_quota_and_name_it(
    service: PublicIpService, quotas: QuotaService, a: str
) -> None:
    first = run(service.request(tenant=a))
    second = run(service.request(tenant=a))
    assert (first.address, second.address) == ("198.18.0.1", "198.18.0.2")
    assert (first.tenant, first.container) == (a, "")
    with pytest.raises(
        QuotaExceeded, match=r"quota exceeded: public_ips: 2 used of 2, 1 more asked \(plan free\)"
    ):
        run(service.request(tenant=a))
    report = run(quotas.report(a))
    assert (report.used.public_ips, report.limits.public_ips) == (2, 2)
    run(service.release(tenant=a, address=first.address))
    assert run(quotas.report(a)).used.public_ips == 1
    assert run(service.request(tenant=a)).address == first.address


def test_concurrent_requests_pass_the_quota_once(
    service: PublicIpService, quotas: QuotaService, a: str
) -> None:
    quotas.update(a, limits={"public_ips": 3})

    async def many() -> list[object]:
        return await asyncio.gather(
            *(service.request(tenant=a) for _ in range(6)), return_exceptions=True
        )

    results = run(many())
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 3
    assert service.count(a) == 3


def test_used_up_pools_are_unavailable(
    service: PublicIpService, quotas: QuotaService, a: str, b: str
) -> None:
    quotas.update(a, limits={"public_ips": -1})
    for _ in range(6):
        run(service.request(tenant=a))
    with pytest.raises(Unavailable, match="every pool is used up"):
        run(service.request(tenant=b))


# binding -------------------------------------------------------------------------------


def test_bind_pushes_the_whole_spec_with_the_ip_and_its_ports(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    web = add_container(
        store,
        networks,
        "web",
        tenant=a,
        exposed=("22/tcp", "80/tcp", "53/udp"),
        port_bindings={"22/tcp": (PortBinding(host_port="10022"),)},
    )
    ip = run(service.request(tenant=a))
    bound = run(service.bind(tenant=a, address=ip.address, container_ref="web"))
    assert bound.container == web.id
    [(container_id, spec)] = agent.pushed
    assert container_id == web.id
    assert spec == networks.spec(web, public_ip=ip.address)
    assert (spec.mode, spec.public_ip, spec.endpoints[0].ip) == ("tenant", ip.address, "172.18.0.2")
    assert spec.public_ports == (
        PortMapping("tcp", 22, "", 10022),
        PortMapping("tcp", 80, "", 80),
        PortMapping("udp", 53, "", 53),
    )
    # What any later whole push (security groups) builds carries the address too.
    assert networks.spec(web).public_ip == ip.address
    assert service.get(tenant=a, address=ip.address).container == web.id


def test_another_tenants_address_or_container_is_not_found(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
    b: str,
) -> None:
    add_container(store, networks, "web", tenant=a)
    add_container(store, networks, "bob", tenant=b)
    mine = run(service.request(tenant=a))
    theirs = run(service.request(tenant=b))
    for attempt in (
        service.bind(tenant=a, address=theirs.address, container_ref="web"),
        service.bind(tenant=a, address=mine.address, container_ref="bob"),
        service.bind(tenant=a, address=mine.address, container_ref="62" * 32),
        service.unbind(tenant=a, address=theirs.address),
        service.release(tenant=a, address=theirs.address),
    ):
        with pytest.raises(NotFound):
            run(attempt)
    with pytest.raises(NotFound):
        service.get(tenant=a, address=theirs.address)
    with pytest.raises(InvalidArgument):
        service.get(tenant=a, address="not-an-ip")
    assert [ip.address for ip in service.list_ips(tenant=a)] == [mine.address]
    assert service.get(tenant=b, address=theirs.address).container == ""
    assert agent.pushed == []


def test_one_ip_per_container_and_binding_moves_it(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    web = add_container(store, networks, "web", tenant=a)
    new = add_container(store, networks, "new", tenant=a)
    one = run(service.request(tenant=a))
    two = run(service.request(tenant=a))
    run(service.bind(tenant=a, address=one.address, container_ref="web"))
    with pytest.raises(Conflict, match=r"already has public IP 198\.18\.0\.1"):
        run(service.bind(tenant=a, address=two.address, container_ref="web"))
    agent.pushed.clear()
    moved = run(service.bind(tenant=a, address=one.address, container_ref=new.id[:12]))
    assert moved.container == new.id
    # Off the old container first: never on two at once.
    assert agent.ips() == [("w", ""), ("n", one.address)]
    assert store.public_ip_of(tenant=a, container_id=web.id) == ""
    agent.pushed.clear()
    run(service.bind(tenant=a, address=one.address, container_ref="new"))  # again: re-pushed
    assert agent.ips() == [("n", one.address)]


@pytest.mark.parametrize("network", ["none", "container:" + "77" * 32])
def test_containers_without_a_network_of_their_own_cannot_bind(
    service: PublicIpService, store: SqlStore, networks: NetworkService, a: str, network: str
) -> None:
    add_container(store, networks, "web", tenant=a)
    add_container(store, networks, "side", tenant=a, network=network)
    ip = run(service.request(tenant=a))
    with pytest.raises(Conflict, match="no network of its own"):
        run(service.bind(tenant=a, address=ip.address, container_ref="side"))
    assert service.get(tenant=a, address=ip.address).container == ""


def test_internal_first_networks_and_containers_mid_create_cannot_bind(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    networks.create(tenant=a, request=NetworkRequest(name="inside", internal=True))
    add_container(store, networks, "inner", tenant=a, network="inside")
    making = add_container(store, networks, "making", tenant=a)
    making.phase = "creating"
    store.put_container(making)
    ip = run(service.request(tenant=a))
    with pytest.raises(Conflict, match="internal network inside"):
        run(service.bind(tenant=a, address=ip.address, container_ref="inner"))
    with pytest.raises(Conflict, match="being created"):
        run(service.bind(tenant=a, address=ip.address, container_ref="making"))
    assert agent.pushed == []


# unbinding, releasing, failures ---------------------------------------------------------


def test_unbind_and_release_take_the_address_off_the_agent_first(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    web = add_container(store, networks, "web", tenant=a)
    one = run(service.request(tenant=a))
    two = run(service.request(tenant=a))
    run(service.bind(tenant=a, address=one.address, container_ref="web"))
    agent.pushed.clear()
    unbound = run(service.unbind(tenant=a, address=one.address))
    assert unbound.container == ""
    assert agent.ips() == [("w", "")]
    assert agent.pushed[0][1].public_ports == ()
    run(service.unbind(tenant=a, address=one.address))  # already unbound: nothing to push
    assert len(agent.pushed) == 1

    run(service.bind(tenant=a, address=two.address, container_ref="web"))
    agent.pushed.clear()
    released = run(service.release(tenant=a, address=two.address))
    assert released.container == web.id  # the record as it was
    assert agent.ips() == [("w", "")]
    assert [ip.address for ip in service.list_ips(tenant=a)] == [one.address]
    with pytest.raises(NotFound):
        run(service.release(tenant=a, address=two.address))


def test_a_failed_push_changes_nothing_recorded(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    web = add_container(store, networks, "web", tenant=a)
    new = add_container(store, networks, "new", tenant=a)
    ip = run(service.request(tenant=a))
    run(service.bind(tenant=a, address=ip.address, container_ref="web"))
    agent.pushed.clear()
    agent.failing[new.id] = Unavailable("agent h1 is unreachable")
    with pytest.raises(Unavailable):
        run(service.bind(tenant=a, address=ip.address, container_ref="new"))
    assert service.get(tenant=a, address=ip.address).container == web.id
    assert agent.ips() == [("w", ""), ("w", ip.address)]  # the old one got it back

    agent.failing = {web.id: Unavailable("agent h1 is unreachable")}
    with pytest.raises(Unavailable):
        run(service.unbind(tenant=a, address=ip.address))
    with pytest.raises(Unavailable):
        run(service.release(tenant=a, address=ip.address))
    assert service.get(tenant=a, address=ip.address).container == web.id

    agent.failing = {web.id: NotFound(f"No such container: {web.id}")}  # gone from its agent
    assert run(service.unbind(tenant=a, address=ip.address)).container == ""


def test_a_removed_containers_ip_stays_held_and_rebinds_to_its_replacement(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    web = add_container(store, networks, "web", tenant=a)
    ip = run(service.request(tenant=a))
    run(service.bind(tenant=a, address=ip.address, container_ref="web"))
    store.delete_container(tenant=a, container_id=web.id)
    assert service.get(tenant=a, address=ip.address).container == ""
    assert service.count(a) == 1
    replacement = add_container(store, networks, "xweb", tenant=a)
    agent.pushed.clear()
    run(service.bind(tenant=a, address=ip.address, container_ref="xweb"))
    assert agent.ips() == [("x", ip.address)]
    assert service.get(tenant=a, address=ip.address).container == replacement.id


def test_a_container_being_removed_is_not_pushed_to(
    service: PublicIpService,
    store: SqlStore,
    networks: NetworkService,
    agent: RecordingAgent,
    a: str,
) -> None:
    web = add_container(store, networks, "web", tenant=a)
    ip = run(service.request(tenant=a))
    run(service.bind(tenant=a, address=ip.address, container_ref="web"))
    web.phase = "removing"
    store.put_container(web)
    agent.pushed.clear()
    assert run(service.release(tenant=a, address=ip.address)).container == web.id
    assert agent.pushed == []
    assert service.count(a) == 0


# which ports reach a public IP --------------------------------------------------------------


@pytest.mark.parametrize(
    ("bindings", "exposed", "expected"),
    [
        ({}, (), []),
        ({}, ("80/tcp", "53/udp"), [("tcp", 80, 80), ("udp", 53, 53)]),
        # -p 10022:22 remaps: 22 is reached as 10022 only.
        ({"22/tcp": ("10022",)}, ("22/tcp",), [("tcp", 22, 10022)]),
        # -p without a host port (and -P) keep the number on the public IP.
        ({"80/tcp": ("",)}, ("80/tcp",), [("tcp", 80, 80)]),
        ({"8080/tcp": ("",)}, (), [("tcp", 8080, 8080)]),
        # Two host ports for one container port: both.
        ({"80/tcp": ("8080", "8081")}, ("80/tcp",), [("tcp", 80, 8080), ("tcp", 80, 8081)]),
        # A remapping wins a public port an exposed port would keep.
        ({"22/tcp": ("80",)}, ("22/tcp", "80/tcp"), [("tcp", 22, 80)]),
        ({"22/tcp": ("22",)}, ("22/tcp",), [("tcp", 22, 22)]),
    ],
)
def test_public_ports(
    bindings: dict[str, tuple[str, ...]],
    exposed: tuple[str, ...],
    expected: list[tuple[str, int, int]],
) -> None:
    port_bindings = {k: tuple(PortBinding(host_port=h) for h in v) for k, v in bindings.items()}
    got = public_port_mappings(port_bindings, exposed=exposed, public_ip="198.18.0.1")
    assert [(m.protocol, m.container_port, m.host_port) for m in got] == expected
    assert all(m.host_ip == "" for m in got)


def test_public_ports_leave_out_bindings_to_another_host_address() -> None:
    bindings = {
        "80/tcp": (PortBinding(host_ip="127.0.0.1", host_port="8080"),),
        "81/tcp": (PortBinding(host_ip="0.0.0.0", host_port="8081"),),
        "82/tcp": (PortBinding(host_ip="198.18.0.1", host_port="8082"),),
    }
    got = public_port_mappings(bindings, exposed=("80/tcp",), public_ip="198.18.0.1")
    assert [(m.container_port, m.host_port) for m in got] == [(81, 8081), (82, 8082), (80, 80)]
    with pytest.raises(InvalidArgument, match="invalid host port"):
        public_port_mappings(
            {"80/tcp": (PortBinding(host_port="99999"),)}, exposed=(), public_ip="198.18.0.1"
        )


def test_a_spec_without_a_public_ip_has_no_public_ports(
    store: SqlStore, networks: NetworkService, a: str
) -> None:
    web = add_container(store, networks, "web", tenant=a, exposed=("80/tcp",))
    spec = networks.spec(web)
    assert (spec.public_ip, spec.public_ports) == ("", ())
    assert networks.spec(web, public_ip="198.18.0.3").public_ports == (
        PortMapping("tcp", 80, "", 80),
    )
