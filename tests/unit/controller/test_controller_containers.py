"""ContainerService (controller.containers) on a real SQLite store with a scripted agent:
reconcile runs while operations on the same containers go on (every resync with an agent
runs it), and must neither lose what they changed nor bring back what they removed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.controller.config import ControllerConfig
from dockyard.controller.containers import ContainerService
from dockyard.controller.events import EventLog
from dockyard.controller.images import ImageService
from dockyard.controller.networks import EndpointRequest, NetworkRequest, NetworkService
from dockyard.controller.plans import builtin_plans
from dockyard.controller.quotas import QuotaService
from dockyard.controller.volumes import VolumeService
from dockyard.core.errors import NotFound
from dockyard.core.layout import Layout
from dockyard.core.models import (
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
    Image,
    Status,
)
from dockyard.core.protocol import ContainerStatus
from dockyard.core.tenancy import Tenant
from dockyard.images.content import ContentStore
from dockyard.store import SqlStore
from dockyard.store.base import ALL_TENANTS
from dockyard.testing.agents import Hold, OneAgentHosts, ScriptedAgent

HOST = "h1"
IMAGE = "busybox:latest"
T = TypeVar("T")


@dataclass
class Controller:
    """The pieces of a controller a ContainerService test looks at."""

    store: SqlStore
    agent: ScriptedAgent
    events: EventLog
    networks: NetworkService
    containers: ContainerService
    tenant: Tenant

    def record(self, container_id: str) -> Container:
        return self.store.get_container(tenant=self.tenant.id, ref=container_id)

    def add(self, name: str, *, status: Status, phase: str = "", network: str = "") -> Container:
        """A container record on :data:`HOST` that ran from 100 (and ended at 150 unless
        ``status`` is active), on ``network`` if one is named; its id is its name's first
        letter in hex, 32 times."""
        active = status in (Status.RUNNING, Status.PAUSED)
        container = Container(
            id=name[0].encode().hex() * 32,
            tenant=self.tenant.id,
            name=name,
            created=1,
            image=IMAGE,
            image_id="sha256:" + "d" * 64,
            config=ContainerConfig(image=IMAGE),
            host_config=HostConfig(),
            host=HOST,
            state=ContainerState(
                status=status, started_at=100, finished_at=0 if active else 150, pid=7
            ),
            has_been_started=True,
            phase=phase,
        )
        if network:
            joined = self.networks.get(tenant=self.tenant.id, ref=network)
            container.endpoints.append(
                self.networks.join(
                    container_id=container.id, network=joined, request=EndpointRequest(network)
                )
            )
        self.store.add_container(container)
        return container

    def events_of(self, container: Container) -> list[str]:
        self.events.flush()
        return [
            e.action
            for e in self.store.list_events(tenant=self.tenant.id)
            if e.type == "container" and e.actor_id == container.id
        ]


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    store = SqlStore.sqlite(tmp_path / "db" / "dockyard.db", uid_range_start=100_000)
    agent = ScriptedAgent()
    hosts = OneAgentHosts(store, agent, host_id=HOST)
    events = EventLog(store, keep=1000, max_age=0)
    content = ContentStore(tmp_path / "blobs")
    quotas = QuotaService(store=store, plans=builtin_plans(), content=content, hosts=hosts)
    networks = NetworkService(
        store=store, events=events, bridge_subnet="172.17.0.0/16", default_subnet="172.18.0.0/16"
    )
    containers = ContainerService(
        store=store,
        config=ControllerConfig(layout=Layout(state_dir=tmp_path / "state", run_dir=tmp_path)),
        hosts=hosts,
        images=ImageService(
            store=store, content=content, spool_dir=tmp_path, events=events, quotas=quotas
        ),
        networks=networks,
        volumes=VolumeService(
            store=store,
            agent_for=hosts.client,
            default_host=hosts.default_host,
            events=events,
            quotas=quotas,
        ),
        events=events,
        quotas=quotas,
    )
    tenant = store.ensure_tenant("acme")
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    store.put_image(
        Image(
            id=content.ingest([config]).digest,
            tenant=tenant.id,
            layers=(),
            size=0,
            created=1,
            repo_tags=(IMAGE,),
        )
    )
    yield Controller(store, agent, events, networks, containers, tenant)
    store.close()


def exited(container: Container, *, code: int) -> ContainerStatus:
    """The agent's report of the container's run from 100 ending at 200 with ``code``."""
    return ContainerStatus(
        id=container.id, status="exited", exit_code=code, started_at=100, finished_at=200
    )


def running(container: Container) -> ContainerStatus:
    return ContainerStatus(id=container.id, status="running", pid=7, started_at=100)


def ids(containers: list[Container]) -> list[str]:
    return [c.id for c in containers]


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(scenario, 10))


async def until_held(held: Hold, task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` reaches the ``held`` agent call (its error if it fails first)."""
    reached = asyncio.ensure_future(held.wait_reached())
    await asyncio.wait([reached, task], return_when=asyncio.FIRST_COMPLETED)
    if not reached.done():
        reached.cancel()
        task.result()
        raise AssertionError("the operation ended without making the held agent call")


# reconcile against concurrent operations ---------------------------------------------------


def test_reconcile_applies_an_exit_onto_a_connect_made_while_it_waited(ctl: Controller) -> None:
    """The connect holds the container's lock, awaiting its agent, when reconcile comes to
    the container: the exit it applies afterwards goes onto the record with the endpoint."""
    web = ctl.add("web", status=Status.RUNNING)
    ctl.networks.create(tenant=ctl.tenant.id, request=NetworkRequest(name="back"))
    ctl.agent.containers[web.id] = exited(web, code=3)

    async def scenario() -> None:
        held = ctl.agent.hold("connect", web.id)
        connecting = asyncio.create_task(
            ctl.containers.connect(
                tenant=ctl.tenant.id,
                ref="web",
                network_ref="back",
                request=EndpointRequest("back"),
            )
        )
        await until_held(held, connecting)
        listing = await ctl.agent.list_containers()
        reconciling = asyncio.create_task(ctl.containers.reconcile(HOST, listing.containers))
        await asyncio.sleep(0.01)  # reconcile has read the records and waits for the lock
        assert not reconciling.done()
        held.release()
        await connecting
        await reconciling

    run(scenario())
    record = ctl.record(web.id)
    back = ctl.networks.get(tenant=ctl.tenant.id, ref="back")
    assert [e.network_id for e in record.endpoints] == [back.id]
    assert (record.state.status, record.state.exit_code) == (Status.EXITED, 3)


def test_reconcile_marks_a_missing_container_dead_keeping_a_rename_made_meanwhile(
    ctl: Controller,
) -> None:
    """While reconcile awaits the agent for one container (undoing a create a crash cut
    short), another one it has already read is renamed: the rename stays."""
    cut = ctl.add("cut", status=Status.CREATED, phase="creating")
    web = ctl.add("web", status=Status.RUNNING)
    ctl.agent.containers[cut.id] = ContainerStatus(id=cut.id, status="created")
    assert ids(ctl.store.list_containers(tenant=ALL_TENANTS, host=HOST)) == [cut.id, web.id]

    async def scenario() -> None:
        held = ctl.agent.hold("delete", cut.id)
        listing = await ctl.agent.list_containers()
        reconciling = asyncio.create_task(ctl.containers.reconcile(HOST, listing.containers))
        await until_held(held, reconciling)
        await ctl.containers.rename(tenant=ctl.tenant.id, ref=web.id, name="front")
        held.release()
        await reconciling

    run(scenario())
    record = ctl.record(web.id)
    assert record.name == "front"
    assert ctl.record("front").id == web.id
    assert record.state.status == Status.DEAD
    assert record.state.error == "the container is missing on its host"
    with pytest.raises(NotFound):
        ctl.record(cut.id)
    assert cut.id not in ctl.agent.containers
    assert ctl.events_of(web) == ["rename", "die"]


def test_reconcile_undoes_a_create_a_crash_cut_short_with_its_anonymous_volume(
    ctl: Controller,
) -> None:
    """The controller died mid-create after the anonymous volume and the agent's container
    existed: the restarted one removes the container, the record, its address and the
    volume, keeps the named volume it mounted, and keeps no lock for it."""
    ctl.networks.create(tenant=ctl.tenant.id, request=NetworkRequest(name="front"))
    cut = ctl.add("cut", status=Status.CREATED, phase="creating", network="front")
    front = ctl.networks.get(tenant=ctl.tenant.id, ref="front")
    assert cut.id in ctl.store.network_users(network_id=front.id)

    async def scenario() -> None:
        for name in ("a" * 64, "kept"):
            await ctl.containers._volumes.create(tenant=ctl.tenant, name=name, host=HOST)
        record = ctl.record(cut.id)
        record.anonymous_volumes = ("a" * 64,)
        ctl.store.put_container(record)
        ctl.agent.containers[cut.id] = ContainerStatus(id=cut.id, status="created")
        listing = await ctl.agent.list_containers()
        await ctl.containers.reconcile(HOST, listing.containers)

    run(scenario())
    with pytest.raises(NotFound):
        ctl.record(cut.id)
    assert ctl.agent.containers == {}
    assert ctl.agent.volumes == {(ctl.tenant.id, "kept")}
    assert [v.name for v in ctl.store.list_volumes(tenant=ctl.tenant.id)] == ["kept"]
    assert ctl.store.network_users(network_id=front.id) == {}
    assert cut.id not in ctl.containers._locks
    assert ctl.events_of(cut) == []


def test_reconcile_passes_over_a_container_removed_meanwhile(ctl: Controller) -> None:
    """A container removed while reconcile awaits the agent for another is neither written
    back nor reported twice, and reconcile goes on to the agent's orphans."""
    cut = ctl.add("cut", status=Status.CREATED, phase="creating")
    old = ctl.add("old", status=Status.EXITED)
    ctl.agent.containers[cut.id] = ContainerStatus(id=cut.id, status="created")
    orphan = "f" * 64
    ctl.agent.containers[orphan] = ContainerStatus(id=orphan, status="running")
    assert ids(ctl.store.list_containers(tenant=ALL_TENANTS, host=HOST)) == [cut.id, old.id]

    async def scenario() -> None:
        held = ctl.agent.hold("delete", cut.id)
        listing = await ctl.agent.list_containers()
        reconciling = asyncio.create_task(ctl.containers.reconcile(HOST, listing.containers))
        await until_held(held, reconciling)
        await ctl.containers.remove(tenant=ctl.tenant.id, ref="old", force=False, volumes=True)
        held.release()
        await reconciling

    run(scenario())
    with pytest.raises(NotFound):
        ctl.record(old.id)
    assert ctl.events_of(old) == ["destroy"]
    assert ctl.agent.containers == {}  # the orphan went too


def test_reconcile_finishes_a_removal_from_the_current_record(ctl: Controller) -> None:
    """A removal a crash cut short is finished under the lock; one removed meanwhile by
    the controller itself (its lock held) is not removed twice."""
    gone = ctl.add("gone", status=Status.EXITED, phase="removing")
    ctl.agent.containers[gone.id] = exited(gone, code=0)
    run(ctl.containers.reconcile(HOST, list(ctl.agent.containers.values())))
    with pytest.raises(NotFound):
        ctl.record(gone.id)
    assert ctl.events_of(gone) == ["destroy"]
    assert ctl.agent.containers == {}


# operations that wait for the lock --------------------------------------------------------


def test_rename_pushes_the_spec_of_the_record_as_it_is_once_locked(ctl: Controller) -> None:
    """A rename that waited for a connect pushes the new name with the new endpoint: the
    agent keeps that spec for later starts."""
    web = ctl.add("web", status=Status.RUNNING, network="default")
    ctl.networks.create(tenant=ctl.tenant.id, request=NetworkRequest(name="back"))
    ctl.agent.containers[web.id] = running(web)

    async def scenario() -> None:
        held = ctl.agent.hold("connect", web.id)
        connecting = asyncio.create_task(
            ctl.containers.connect(
                tenant=ctl.tenant.id,
                ref="web",
                network_ref="back",
                request=EndpointRequest("back"),
            )
        )
        await until_held(held, connecting)
        renaming = asyncio.create_task(
            ctl.containers.rename(tenant=ctl.tenant.id, ref="web", name="front")
        )
        await asyncio.sleep(0.01)  # the rename has read the record and waits for the lock
        assert not renaming.done()
        held.release()
        await connecting
        await renaming

    run(scenario())
    record = ctl.record(web.id)
    assert record.name == "front"
    pushed = ctl.agent.network_specs[web.id]
    assert [e.network_id for e in pushed.endpoints] == [e.network_id for e in record.endpoints]
    assert len(record.endpoints) == 2
    assert all("front" in e.names for e in pushed.endpoints)


# reconcile against a listing older than the records ---------------------------------------


def test_reconcile_asks_again_for_a_container_the_listing_predates(ctl: Controller) -> None:
    """A container the agent made after its listing was taken is not taken for missing."""
    listing: list[ContainerStatus] = []
    web = ctl.add("web", status=Status.RUNNING)
    ctl.agent.containers[web.id] = running(web)
    run(ctl.containers.reconcile(HOST, listing))
    assert ctl.record(web.id).state.status == Status.RUNNING
    assert ("status", web.id) in ctl.agent.calls


def test_reconcile_leaves_a_create_under_way_to_finish(ctl: Controller) -> None:
    """A reconcile while a create awaits its agent does not undo it as if a crash had cut
    it short: it waits for the create, then finds the container on the agent."""

    async def scenario() -> Container:
        held = ctl.agent.hold("create")
        creating = asyncio.create_task(
            ctl.containers.create(
                tenant=ctl.tenant,
                name="web",
                config=ContainerConfig(image=IMAGE, cmd=("sleep", "1")),
                host_config=HostConfig(),
            )
        )
        await until_held(held, creating)
        listing = await ctl.agent.list_containers()
        assert [c.phase for c in ctl.store.list_containers(tenant=ALL_TENANTS)] == ["creating"]
        reconciling = asyncio.create_task(ctl.containers.reconcile(HOST, listing.containers))
        await asyncio.sleep(0.01)
        held.release()
        created = await creating
        await reconciling
        return created.container

    web = run(scenario())
    record = ctl.record("web")
    assert (record.id, record.phase, record.state.status) == (web.id, "", Status.CREATED)
    assert web.id in ctl.agent.containers
    assert ctl.events_of(web) == ["create"]


# start -------------------------------------------------------------------------------------


def test_start_records_the_run_and_clears_a_manual_stop(ctl: Controller) -> None:
    """A start after ``docker stop`` clears the stop mark in the store (a restart policy
    applies again); one of a container never stopped records the run all the same."""
    stopped = ctl.add("stopped", status=Status.EXITED)
    stopped.manually_stopped = True
    ctl.store.put_container(stopped)
    fresh = ctl.add("fresh", status=Status.CREATED)
    for container in (stopped, fresh):
        ctl.agent.containers[container.id] = exited(container, code=0)
        started = run(ctl.containers.start(tenant=ctl.tenant.id, ref=container.name))
        record = ctl.record(container.id)
        assert record == started
        assert (record.state.status, record.manually_stopped) == (Status.RUNNING, False)
        assert record.state.started_at == 201
        assert ctl.events_of(container) == ["start"]


# the primary endpoint ------------------------------------------------------------------------


def test_disconnecting_the_first_network_makes_the_next_routed_one_first(ctl: Controller) -> None:
    """As the agent orders them (network.host.remaining_endpoints): the first endpoint on
    a network that is not internal moves to the front, so inspect's top-level address and
    gateway are the ones of the network giving the default route."""
    web = ctl.add("web", status=Status.RUNNING, network="default")
    ctl.agent.containers[web.id] = running(web)
    inner = ctl.networks.create(
        tenant=ctl.tenant.id, request=NetworkRequest(name="inner", internal=True)
    )
    back = ctl.networks.create(tenant=ctl.tenant.id, request=NetworkRequest(name="back"))
    for name in ("inner", "back"):
        run(
            ctl.containers.connect(
                tenant=ctl.tenant.id, ref="web", network_ref=name, request=EndpointRequest(name)
            )
        )
    run(ctl.containers.disconnect(tenant=ctl.tenant.id, ref="web", network_ref="default"))
    assert [e.network_id for e in ctl.record(web.id).endpoints] == [back.id, inner.id]
    # The primary leaving with only internal networks left: they keep their order.
    run(ctl.containers.disconnect(tenant=ctl.tenant.id, ref="web", network_ref="back"))
    assert [e.network_id for e in ctl.record(web.id).endpoints] == [inner.id]
    # A network that is not internal connected then: the gateway network again, first.
    run(
        ctl.containers.connect(
            tenant=ctl.tenant.id, ref="web", network_ref="back", request=EndpointRequest("back")
        )
    )
    assert [e.network_id for e in ctl.record(web.id).endpoints] == [back.id, inner.id]


# --rm --------------------------------------------------------------------------------------


def test_a_reported_exit_of_a_rm_container_removes_it_before_observe_returns(
    ctl: Controller,
) -> None:
    """The agent's exit event of a --rm container takes its record, address and lock at
    once, under the lock observe holds (no task left to do it), after die: a
    ``wait(removed)`` registered before is woken with the exit code."""
    container = ctl.add("rm", status=Status.RUNNING, network="default")
    container.host_config.auto_remove = True
    ctl.store.put_container(container)

    async def scenario() -> tuple[int, str]:
        waiter = ctl.containers.wait_registered(
            tenant=ctl.tenant.id, ref=container.id, condition="removed"
        )
        await waiter.__anext__()
        await ctl.containers.observe(HOST, exited(container, code=3))
        with pytest.raises(NotFound):
            ctl.record(container.id)
        with pytest.raises(NotFound):
            ctl.containers.get(tenant=ctl.tenant.id, ref=container.id)
        return await asyncio.wait_for(waiter.__anext__(), 1)

    assert run(scenario()) == (3, "")
    assert ctl.events_of(container) == ["die", "destroy"]
    network = ctl.networks.get(tenant=ctl.tenant.id, ref="default")
    address = container.endpoints[0].ip
    assert ctl.store.allocate_address(network=network, owner="next", address=address) == address
