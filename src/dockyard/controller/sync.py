"""Following each agent: a full listing to start, then its event stream.

Events make the controller quick; listings make it right. On (re)connection, or when the
agent's log cannot resume (it restarted, or we fell too far behind), the controller lists
every container on the host and reconciles; then it follows events from that point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dockyard.controller.agents import Resync
from dockyard.controller.containers import ContainerService
from dockyard.controller.execs import ExecService
from dockyard.controller.hosts import AgentHandle
from dockyard.core.errors import DockyardError

__all__ = ["AgentFollower"]

log = logging.getLogger("dockyard.controller")
_RETRY = 0.5


class AgentFollower:
    def __init__(
        self, handle: AgentHandle, containers: ContainerService, execs: ExecService
    ) -> None:
        self._handle = handle
        self._containers = containers
        self._execs = execs
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _resync(self) -> tuple[str, int]:
        client = self._handle.client
        self._handle.info = await client.info()
        listing = await client.list_containers()
        await self._containers.reconcile(self._handle.host.id, listing.containers)
        self.synced.set()
        return listing.boot_id, listing.seq

    async def _run(self) -> None:
        boot_id, after = "", 0
        while True:
            try:
                if not boot_id:
                    boot_id, after = await self._resync()
                    self._handle.ready = True
                async for event in self._handle.client.events(boot_id=boot_id, after=after):
                    after = event.seq
                    await self._containers.observe(self._handle.host.id, event.container)
                    if event.exec is not None:
                        self._execs.observe_exit(self._handle.host.id, event.exec)
            except Resync:
                boot_id = ""
            except asyncio.CancelledError:
                raise
            except DockyardError as exc:
                if self._handle.ready:
                    log.warning("lost agent %s: %s", self._handle.host.id[:12], exc)
                self._handle.ready = False
                boot_id = ""
                await asyncio.sleep(_RETRY)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
