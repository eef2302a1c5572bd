"""A scripted agent for tests of the controller's container logic without a host.

:class:`ScriptedAgent` answers the container calls from the statuses a test gives it, and
holds any one call until the test lets it go (:meth:`ScriptedAgent.hold`), so that another
operation can run while the caller awaits the agent. :class:`OneAgentHosts` is a host
registry whose every host is served by that agent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dockyard.controller.agents import AgentClient
from dockyard.controller.hosts import HostRegistry
from dockyard.core.errors import NotFound, Unavailable
from dockyard.core.protocol import (
    ContainerListing,
    ContainerStatus,
    CreateRequest,
    EndpointSpec,
    NetworkSpec,
    VolumeRequest,
)
from dockyard.scheduler.placement import HostView
from dockyard.store.base import Store

__all__ = ["Hold", "OneAgentHosts", "ScriptedAgent"]


class Hold:
    """One call held by :meth:`ScriptedAgent.hold`: it waits, once arrived, until
    :meth:`release`; the answer is made after that, from the agent's state then."""

    def __init__(self) -> None:
        self._reached = asyncio.Event()
        self._released = asyncio.Event()

    async def wait_reached(self) -> None:
        """Return once the held call has arrived (and is waiting)."""
        await self._reached.wait()

    def release(self) -> None:
        self._released.set()

    async def _pass(self) -> None:
        self._reached.set()
        await self._released.wait()


class ScriptedAgent(AgentClient):
    """An agent whose containers are :attr:`containers` (id to the status it reports).

    It takes ``list_containers``, ``create``, ``start``, ``status``, ``delete``, ``connect``,
    ``disconnect`` and ``update_network``; a call for a container it does not have is
    NotFound, as on a real agent. Its volumes are :attr:`volumes` (``(tenant, name)``),
    made by ``create_volume`` and removed by ``remove_volume``. Every call yields to the
    event loop (a real one does) and is recorded in :attr:`calls` as (call, container id
    or volume name); it makes no other call.
    """

    def __init__(self) -> None:
        super().__init__("unix:///nonexistent/agent.sock")
        self.containers: dict[str, ContainerStatus] = {}
        self.calls: list[tuple[str, str]] = []
        self.network_specs: dict[str, NetworkSpec] = {}
        self.volumes: set[tuple[str, str]] = set()
        self._holds: dict[tuple[str, str], Hold] = {}

    def hold(self, call: str, container_id: str = "") -> Hold:
        """Hold the next ``call`` (a method name) for ``container_id`` (any container
        with "") until released."""
        made = Hold()
        self._holds[(call, container_id)] = made
        return made

    async def _enter(self, call: str, container_id: str) -> None:
        self.calls.append((call, container_id))
        held = self._holds.pop((call, container_id), None) or self._holds.pop((call, ""), None)
        if held is not None:
            await held._pass()
        else:
            await asyncio.sleep(0)

    def _status(self, container_id: str) -> ContainerStatus:
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFound(f"No such container: {container_id}") from None

    async def list_containers(self) -> ContainerListing:
        await self._enter("list_containers", "")
        return ContainerListing(
            boot_id="scripted", seq=0, containers=list(self.containers.values())
        )

    async def create(self, request: CreateRequest) -> ContainerStatus:
        await self._enter("create", request.id)
        made = ContainerStatus(id=request.id, status="created")
        self.containers[request.id] = made
        return made

    async def start(self, container_id: str) -> ContainerStatus:
        await self._enter("start", container_id)
        before = self._status(container_id)
        began = max(before.started_at, before.finished_at) + 1
        started = ContainerStatus(id=container_id, status="running", pid=7, started_at=began)
        self.containers[container_id] = started
        return started

    async def status(self, container_id: str) -> ContainerStatus:
        await self._enter("status", container_id)
        return self._status(container_id)

    async def delete(self, container_id: str, *, force: bool) -> None:
        await self._enter("delete", container_id)
        self._status(container_id)
        del self.containers[container_id]

    async def connect(self, container_id: str, endpoint: EndpointSpec) -> None:
        await self._enter("connect", container_id)
        self._status(container_id)

    async def disconnect(self, container_id: str, endpoint_id: str) -> None:
        await self._enter("disconnect", container_id)
        self._status(container_id)

    async def update_network(self, container_id: str, spec: NetworkSpec) -> None:
        await self._enter("update_network", container_id)
        self._status(container_id)
        self.network_specs[container_id] = spec

    async def create_volume(self, request: VolumeRequest) -> dict[str, Any]:
        await self._enter("create_volume", request.name)
        self.volumes.add((request.tenant, request.name))
        return {"mountpoint": f"/scripted/{request.tenant}/{request.name}/_data"}

    async def remove_volume(self, tenant: str, name: str) -> None:
        await self._enter("remove_volume", name)
        if (tenant, name) not in self.volumes:
            raise NotFound(f"no such volume: {name}")
        self.volumes.discard((tenant, name))


class OneAgentHosts(HostRegistry):
    """A host registry of one ready host, ``host_id`` with ``mem_total`` bytes, served by
    ``agent``; it asks the agent nothing (no ``register``)."""

    def __init__(
        self, store: Store, agent: AgentClient, *, host_id: str, mem_total: int = 64 << 30
    ) -> None:
        super().__init__(store)
        self._agent = agent
        self._host_id = host_id
        self._mem_total = mem_total

    def client(self, host_id: str) -> AgentClient:
        if host_id != self._host_id:
            raise Unavailable(f"host {host_id[:12]} is not connected")
        return self._agent

    def default_host(self) -> str:
        return self._host_id

    def view(
        self, reserved: dict[str, tuple[int, int]], *, overcommit: float = 1.0
    ) -> list[HostView]:
        memory, count = reserved.get(self._host_id, (0, 0))
        total = int(self._mem_total * overcommit)
        return [HostView(id=self._host_id, mem_total=total, mem_reserved=memory, containers=count)]
