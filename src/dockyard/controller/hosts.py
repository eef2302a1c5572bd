"""The agents the controller knows, their clients and what placement needs of them."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.controller.agents import AgentClient
from dockyard.core.clock import now_ns
from dockyard.core.errors import Unavailable
from dockyard.core.models import Host
from dockyard.core.protocol import AgentInfo
from dockyard.scheduler.placement import HostView
from dockyard.store.base import Store

__all__ = ["AgentHandle", "HostRegistry"]


@dataclass(slots=True)
class AgentHandle:
    host: Host
    client: AgentClient
    info: AgentInfo | None = None
    ready: bool = False


class HostRegistry:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._agents: dict[str, AgentHandle] = {}

    async def register(self, address: str, name: str = "") -> AgentHandle:
        """Contact the agent at ``address``, record it as a host, and keep its client."""
        client = AgentClient(address)
        info = await client.info()
        host = Host(id=info.id, name=name or info.hostname, address=address, created=now_ns())
        for known in self._store.list_hosts():
            if known.id == info.id:
                host.created = known.created
        self._store.put_host(host)
        handle = AgentHandle(host=host, client=client, info=info, ready=True)
        previous = self._agents.get(info.id)
        if previous is not None and previous.client is not client:
            await previous.client.close()
        self._agents[info.id] = handle
        return handle

    def handles(self) -> list[AgentHandle]:
        return list(self._agents.values())

    def client(self, host_id: str) -> AgentClient:
        handle = self._agents.get(host_id)
        if handle is None:
            raise Unavailable(f"host {host_id[:12]} is not connected")
        return handle.client

    def info(self, host_id: str) -> AgentInfo:
        handle = self._agents.get(host_id)
        if handle is None or handle.info is None:
            raise Unavailable(f"host {host_id[:12]} is not connected")
        return handle.info

    def default_host(self) -> str:
        ready = [h for h in self._agents.values() if h.ready]
        if not ready:
            raise Unavailable("no agent is available")
        return sorted(ready, key=lambda h: h.host.created)[0].host.id

    def view(
        self, reserved: dict[str, tuple[int, int]], *, overcommit: float = 1.0
    ) -> list[HostView]:
        """Placement's view; ``reserved`` maps host id to (memory, container count);
        ``overcommit`` scales each host's memory."""
        out = []
        for handle in self._agents.values():
            mem, count = reserved.get(handle.host.id, (0, 0))
            out.append(
                HostView(
                    id=handle.host.id,
                    mem_total=int((handle.info.mem_total if handle.info else 0) * overcommit),
                    mem_reserved=mem,
                    containers=count,
                    ready=handle.ready,
                )
            )
        return out

    async def close(self) -> None:
        for handle in self._agents.values():
            await handle.client.close()
