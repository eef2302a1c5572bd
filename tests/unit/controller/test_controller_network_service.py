"""Tenants' networks (controller.networks.NetworkService) on a real SQLite store:
predefined networks, create validation, subnets per tenant, removal, prune, how a
container's NetworkMode and EndpointsConfig become endpoints, and the agent's spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.controller.events import EventLog
from dockyard.controller.networks import EndpointRequest, NetworkRequest, NetworkService
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from dockyard.core.models import Container, ContainerConfig, HostConfig, PortBinding
from dockyard.store import SqlStore

A, B = "tenant-a", "tenant-b"
NET = "10.0.0.0/24"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "dockyard.db", uid_range_start=100_000)
    yield opened
    opened.close()


@pytest.fixture
def service(store: SqlStore) -> NetworkService:
    events = EventLog(store, keep=100, max_age=0)
    return NetworkService(
        store=store, events=events, bridge_subnet="172.17.0.0/16", default_subnet="172.18.0.0/16"
    )


def container(service: NetworkService, tenant: str = A, **host_config: object) -> Container:
    return Container(
        id="c" * 64,
        tenant=tenant,
        name="web",
        created=1,
        image="busybox",
        image_id="sha256:" + "d" * 64,
        config=ContainerConfig(image="busybox", exposed_ports=("80/tcp",)),
        host_config=HostConfig(**host_config),  # type: ignore[arg-type]
        host="h1",
    )


def test_every_tenant_gets_default_and_bridge_once(service: NetworkService) -> None:
    for tenant in (A, B):
        names = {n.name: n for n in service.list_networks(tenant=tenant)}
        assert set(names) == {"default", "bridge"}
        assert names["default"].subnet == "172.18.0.0/16"
        assert names["default"].gateway == "172.18.0.1"
        assert names["bridge"].isolated and not names["default"].isolated
        assert all(n.builtin for n in names.values())
    assert len(service.list_networks(tenant=A)) == 2
    a_default = service.get(tenant=A, ref="default")
    b_default = service.get(tenant=B, ref="default")
    assert a_default.id != b_default.id
    assert a_default.bridge == f"br-{a_default.id[:12]}"


def test_create_with_a_subnet_and_its_validation(service: NetworkService) -> None:
    net = service.create(
        tenant=A,
        request=NetworkRequest(
            name="back",
            subnet="10.5.0.0/24",
            gateway="10.5.0.254",
            ip_range="10.5.0.128/25",
            labels={"x": "1"},
            internal=True,
        ),
    )
    assert (net.subnet, net.gateway, net.ip_range, net.internal) == (
        "10.5.0.0/24",
        "10.5.0.254",
        "10.5.0.128/25",
        True,
    )
    assert service.get(tenant=A, ref="back").id == net.id
    with pytest.raises(NotFound):
        service.get(tenant=B, ref="back")
    # Another tenant may use the same name and subnet; the same tenant may not.
    theirs = service.create(tenant=B, request=NetworkRequest(name="back", subnet="10.5.0.0/24"))
    assert theirs.id != net.id
    with pytest.raises(AlreadyExists, match="already exists"):
        service.create(tenant=A, request=NetworkRequest(name="back", subnet="10.6.0.0/24"))
    with pytest.raises(PermissionDenied, match="overlaps"):
        service.create(tenant=A, request=NetworkRequest(name="other", subnet="10.5.0.0/16"))


@pytest.mark.parametrize(
    ("request_", "error", "needle"),
    [
        (NetworkRequest(name=""), InvalidArgument, "missing"),
        (NetworkRequest(name="a b"), InvalidArgument, "invalid network name"),
        (NetworkRequest(name="host"), PermissionDenied, "predefined"),
        (NetworkRequest(name="none"), PermissionDenied, "predefined"),
        (NetworkRequest(name="bridge"), AlreadyExists, "already exists"),
        (NetworkRequest(name="n", driver="macvlan"), NotFound, 'plugin "macvlan"'),
        (NetworkRequest(name="n", subnet="10.0.0.5/24"), InvalidArgument, "10.0.0.0/24"),
        (NetworkRequest(name="n", subnet="fd00::/64"), InvalidArgument, "IPv4"),
        (NetworkRequest(name="n", subnet="10.0.0.0/31"), InvalidArgument, "too small"),
        (NetworkRequest(name="n", subnet="nonsense"), InvalidArgument, "invalid subnet"),
        (NetworkRequest(name="n", subnet="127.0.0.0/24"), InvalidArgument, "reserved"),
        (NetworkRequest(name="n", subnet="100.64.3.0/24"), InvalidArgument, "reserved"),
        (NetworkRequest(name="n", subnet=NET, gateway="10.1.0.1"), InvalidArgument, "gateway"),
        (NetworkRequest(name="n", subnet=NET, gateway="10.0.0.0"), InvalidArgument, "gateway"),
        (NetworkRequest(name="n", subnet=NET, ip_range="10.0.1.0/25"), InvalidArgument, "ip-range"),
        (NetworkRequest(name="n", gateway="10.0.0.1"), InvalidArgument, "needs a subnet"),
    ],
)  # fmt: skip
def test_create_refusals(
    service: NetworkService, request_: NetworkRequest, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        service.create(tenant=A, request=request_)
    assert {n.name for n in service.list_networks(tenant=A)} == {"default", "bridge"}


def test_subnets_without_a_request_come_from_the_pools_free_in_the_tenant(
    service: NetworkService,
) -> None:
    first = service.create(tenant=A, request=NetworkRequest(name="one"))
    assert first.subnet == "172.19.0.0/16"
    service.create(tenant=A, request=NetworkRequest(name="mine", subnet="172.20.5.0/24"))
    second = service.create(tenant=A, request=NetworkRequest(name="two"))
    assert second.subnet == "172.21.0.0/16"
    assert service.create(tenant=B, request=NetworkRequest(name="one")).subnet == "172.19.0.0/16"


def test_remove_and_prune(service: NetworkService, store: SqlStore) -> None:
    used = service.create(tenant=A, request=NetworkRequest(name="used"))
    idle = service.create(tenant=A, request=NetworkRequest(name="idle"))
    kept = service.create(tenant=A, request=NetworkRequest(name="kept"))
    service.join(container_id="c1", network=used, request=EndpointRequest("used"))
    with pytest.raises(Conflict, match="active endpoints"):
        service.remove(tenant=A, ref="used")
    for builtin in ("default", "bridge", "none", "host"):
        with pytest.raises(PermissionDenied, match="pre-defined"):
            service.remove(tenant=A, ref=builtin)
    with pytest.raises(NotFound):
        service.remove(tenant=B, ref="idle")
    removed = service.prune(tenant=A, keep=[kept.id])
    assert [n.name for n in removed] == ["idle"]
    with pytest.raises(NotFound):
        service.get(tenant=A, ref=idle.id)
    service.leave(container_id="c1", network_id=used.id)
    assert service.remove(tenant=A, ref="used").id == used.id
    assert {n.name for n in store.list_networks(tenant=A)} == {"default", "bridge", "kept"}


def test_lookups_by_name_follow_removal_and_recreation(
    service: NetworkService, store: SqlStore
) -> None:
    """The service keeps the networks it has read by name: one removed (or pruned) and
    made again under its name is found anew, and a name is only the tenant's."""
    first = service.create(tenant=A, request=NetworkRequest(name="back"))
    assert service.get(tenant=A, ref="back").id == first.id
    with pytest.raises(NotFound):
        service.get(tenant=B, ref="back")
    service.remove(tenant=A, ref="back")
    with pytest.raises(NotFound):
        service.get(tenant=A, ref="back")
    second = service.create(tenant=A, request=NetworkRequest(name="back"))
    assert service.get(tenant=A, ref="back").id == second.id
    assert service.prune(tenant=A) == [second]
    with pytest.raises(NotFound):
        service.get(tenant=A, ref="back")
    theirs = service.create(tenant=B, request=NetworkRequest(name="back"))
    assert service.get(tenant=B, ref="back").id == theirs.id
    # A name with the shape of an id is not taken for that id's network.
    named_like_id = service.create(tenant=A, request=NetworkRequest(name=theirs.id))
    assert service.get(tenant=A, ref=theirs.id).id == named_like_id.id
    assert service.get(tenant=B, ref=theirs.id).id == theirs.id
    assert store.get_network(tenant=A, ref="default") == service.get(tenant=A, ref="default")


def test_resolve_modes(service: NetworkService) -> None:
    back = service.create(tenant=A, request=NetworkRequest(name="back"))
    joined = service.resolve(tenant=A, mode="default", requests=[EndpointRequest("default")])
    assert [(n.name, r.network) for n, r in joined] == [("default", "default")]
    assert [n.name for n, _ in service.resolve(tenant=A, mode="", requests=[])] == ["default"]
    joined = service.resolve(
        tenant=A,
        mode="back",
        requests=[EndpointRequest("bridge"), EndpointRequest("back", aliases=("db",))],
    )
    assert [(n.id, r.aliases) for n, r in joined] == [
        (back.id, ("db",)),
        (service.get(tenant=A, ref="bridge").id, ()),
    ]
    assert service.resolve(tenant=A, mode="none", requests=[]) == []
    assert service.resolve(tenant=A, mode="container:abc", requests=[]) == []
    with pytest.raises(InvalidArgument):
        service.resolve(tenant=A, mode="none", requests=[EndpointRequest("back")])
    with pytest.raises(PermissionDenied, match="host"):
        service.resolve(tenant=A, mode="host", requests=[])
    with pytest.raises(NotFound):
        service.resolve(tenant=B, mode="back", requests=[])
    with pytest.raises(InvalidArgument, match="twice"):
        service.resolve(
            tenant=A, mode="default", requests=[EndpointRequest("back"), EndpointRequest(back.id)]
        )


def test_join_with_and_without_an_address(service: NetworkService) -> None:
    net = service.create(tenant=A, request=NetworkRequest(name="n", subnet="10.9.0.0/24"))
    first = service.join(container_id="c1", network=net, request=EndpointRequest("n"))
    assert first.ip == "10.9.0.2"
    fixed = service.join(
        container_id="c2",
        network=net,
        request=EndpointRequest("n", aliases=("a", "a"), ip="10.9.0.50"),
    )
    assert (fixed.ip, fixed.requested_ip, fixed.aliases) == ("10.9.0.50", "10.9.0.50", ("a",))
    with pytest.raises(Conflict, match="in use"):
        service.join(container_id="c3", network=net, request=EndpointRequest("n", ip="10.9.0.50"))
    with pytest.raises(InvalidArgument, match="not a host address"):
        service.join(container_id="c3", network=net, request=EndpointRequest("n", ip="10.8.0.5"))
    assert service.users(net) == {"c1": "10.9.0.2", "c2": "10.9.0.50"}


def test_the_agents_spec(service: NetworkService) -> None:
    c = container(
        service,
        network_mode="default",
        port_bindings={"80/tcp": (PortBinding(host_port="8080"),)},
    )
    default = service.get(tenant=A, ref="default")
    bridge = service.get(tenant=A, ref="bridge")
    c.endpoints.append(
        service.join(
            container_id=c.id, network=default, request=EndpointRequest("default", ("www",))
        )
    )
    c.endpoints.append(
        service.join(container_id=c.id, network=bridge, request=EndpointRequest("bridge"))
    )
    spec = service.spec(c)
    assert (spec.mode, spec.router) == ("tenant", A)
    first, second = spec.endpoints
    assert (first.interface, first.bridge, first.gateway, first.ip) == (
        "eth0",
        default.bridge,
        "172.18.0.1",
        "172.18.0.2",
    )
    assert first.names == ("web", "www", c.id[:12])
    assert (second.interface, second.isolated, second.names) == ("eth1", True, ())
    assert [(p.container_port, p.host_port) for p in spec.ports] == [(80, 8080)]
    assert service.spec(container(service, network_mode="none")).mode == "none"
    peer = service.spec(container(service, network_mode="container:" + "p" * 64), peer="p" * 64)
    assert (peer.mode, peer.peer, peer.endpoints) == ("container", "p" * 64, ())
