"""The agent's event log: what it observed, numbered, for the controller to follow.

Events are numbered from 1 within one ``boot_id`` (one agent process life) and kept in a
bounded in-memory ring. A subscriber that asks to resume from a sequence number the ring
no longer holds, or from another boot, is told to resynchronise with a full listing: the
log speeds the controller up, the listing keeps it correct.

A subscription never ends by itself, so the agent ends them all when it shuts down
(:meth:`EventLog.end_streams`): its HTTP server waits for in-flight requests, the
controller's event stream among them, before it lets the process exit.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from dockyard.core.clock import now_ns
from dockyard.core.ids import new_id
from dockyard.core.protocol import AgentEvent, ContainerStatus, ExecStatus

__all__ = ["EventLog", "ResyncNeeded"]

_RING = 4096


class ResyncNeeded(Exception):
    """The subscriber missed events; it must list all containers and resume from ``seq``."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class EventLog:
    def __init__(self) -> None:
        self.boot_id = new_id()[:16]
        self._seq = 0
        self._ring: collections.deque[AgentEvent] = collections.deque(maxlen=_RING)
        self._subscribers: set[asyncio.Queue[AgentEvent | None]] = set()
        self._ended = False

    @property
    def seq(self) -> int:
        return self._seq

    def emit(
        self, kind: str, status: ContainerStatus, *, exec_status: ExecStatus | None = None
    ) -> AgentEvent:
        self._seq += 1
        event = AgentEvent(
            seq=self._seq,
            boot_id=self.boot_id,
            kind=kind,
            container=status,
            time=now_ns(),
            exec=exec_status,
        )
        self._ring.append(event)
        if not self._ended:
            for queue in self._subscribers:
                queue.put_nowait(event)
        return event

    def end_streams(self) -> None:
        """End every subscription (the agent is shutting down); new ones end at once.
        Events emitted afterwards are still numbered and kept, but no longer delivered."""
        self._ended = True
        for queue in self._subscribers:
            queue.put_nowait(None)

    async def follow(self, *, boot_id: str, after: int) -> AsyncIterator[AgentEvent]:
        """Events with ``seq > after`` from this boot, then live ones, until
        :meth:`end_streams`.

        Raises ResyncNeeded first if ``boot_id`` is another boot or the ring lost events.
        """
        if self._ended:
            return
        queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            lost = after < self._seq and (not self._ring or self._ring[0].seq > after + 1)
            if boot_id != self.boot_id or after > self._seq or lost:
                raise ResyncNeeded(self._seq)
            backlog = [e for e in self._ring if e.seq > after]
            last = after
            for event in backlog:
                last = event.seq
                yield event
            while (live := await queue.get()) is not None:
                if live.seq > last:
                    last = live.seq
                    yield live
        finally:
            self._subscribers.discard(queue)
