"""Fakes for testing what security groups do without agents or a container service:
:class:`RecordingAgent` records the network specs pushed to it, :class:`StoreMembers` is the
container side of ``SecurityGroupService`` (``Members``) straight on a store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dockyard.controller.agents import AgentClient
from dockyard.core.errors import Unavailable
from dockyard.core.models import Container
from dockyard.core.protocol import NetworkSpec
from dockyard.store.base import Store

__all__ = ["RecordingAgent", "StoreMembers"]


class RecordingAgent(AgentClient):
    """An agent that takes ``update_network`` calls into :attr:`pushed` and refuses them
    (Unavailable, as an unreachable agent) while :attr:`down`. It makes no other call."""

    def __init__(self) -> None:
        super().__init__("unix:///nonexistent/agent.sock")
        self.pushed: list[tuple[str, NetworkSpec]] = []
        self.down = False

    async def update_network(self, container_id: str, spec: NetworkSpec) -> None:
        await asyncio.sleep(0)  # a real call yields: let concurrent pushes interleave
        if self.down:
            raise Unavailable(f"agent {self.address} is unreachable")
        self.pushed.append((container_id, spec))

    def last(self, container_id: str) -> NetworkSpec:
        """The last spec pushed for the container (IndexError if none was)."""
        return [s for c, s in self.pushed if c == container_id][-1]


class StoreMembers:
    """``SecurityGroupService``'s container side on the store itself (no locks, no cache:
    for tests that make their container records directly)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, *, tenant: str, ref: str) -> Container:
        return self._store.get_container(tenant=tenant, ref=ref)

    async def set_security_groups(
        self, *, tenant: str, container_id: str, change: Callable[[Container], list[str]]
    ) -> Container:
        container = self._store.get_container(tenant=tenant, ref=container_id)
        container.security_groups = change(container)
        self._store.put_container(container)
        return container
