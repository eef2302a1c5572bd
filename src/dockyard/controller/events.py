"""EventLog: every state change, stored and streamed to the tenant it belongs to.

Recording is a synchronous, in-memory step, cheap enough for the container hot path:
:meth:`EventLog.record` numbers the event (``seq``), stamps it (``time``, never less than
the previous event's), hands it to the live subscribers of its tenant and queues it for
the store. The queue is written in one transaction at most ``flush_delay`` seconds later
(a ``docker run --rm`` emits its half-dozen events in one or two writes), at once when it
grows large, and on :meth:`EventLog.close`.

Crash semantics: a clean stop writes everything. A controller killed outright loses the
events of its last ``flush_delay`` (live subscribers may have seen them); the state
changes themselves are in the store, and exits are found again from the agents when the
controller restarts, so those produce their ``die`` then. See ADR 0007.

:meth:`EventLog.follow` replays from the store and the unwritten queue, then streams live
events. The subscriber is registered before the replay reads anything, each read of the
store and the queue happens without an await in between, and ``seq`` drops what was
already delivered: no event is lost or repeated at the boundary. Live events go through a
bounded per-subscriber buffer; a subscriber that falls further behind than that reads the
store again from where it was, so a slow client costs memory only up to the bound.

Retention: each tenant keeps its newest ``keep`` events and none older than ``max_age``;
a tenant's log is pruned after every ``keep // 10`` (at most 1000) new events, at start
and hourly, each time with two indexed deletes.

Call everything from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Final

from dockyard.core.clock import now_ns
from dockyard.core.events import Event
from dockyard.core.models import Container, Network
from dockyard.store.base import ALL_TENANTS, Store

__all__ = ["EventLog", "EventStream"]

log = logging.getLogger("dockyard.controller")

_BUFFER: Final = 1024  # live events a subscriber may have unread before it re-reads the store
_PAGE: Final = 512  # events per store read while replaying
_FLUSH_AT: Final = 256  # queued events that are written at once, without waiting
_MAX_QUEUED: Final = 100_000  # events kept in memory while the store refuses writes
_RETRY: Final = 1.0  # seconds between attempts to write when the store failed
_PRUNE_INTERVAL: Final = 3600.0  # seconds between pruning every tenant (for max_age)


class _Subscriber:
    __slots__ = ("buffer", "overflowed", "wakeup")

    def __init__(self) -> None:
        self.buffer: collections.deque[Event] = collections.deque()
        self.overflowed = False
        self.wakeup = asyncio.Event()

    def push(self, event: Event) -> None:
        if not self.overflowed:
            if len(self.buffer) >= _BUFFER:
                self.overflowed = True  # dropped: the subscriber reads the store instead
                self.buffer.clear()
            else:
                self.buffer.append(event)
        self.wakeup.set()

    def reset(self) -> None:
        self.overflowed = False
        self.buffer.clear()


class EventStream:
    """A subscription to a tenant's events (:meth:`EventLog.follow`): an async iterator
    that must be closed with :meth:`aclose`, whether it was iterated or not."""

    def __init__(self, events: AsyncGenerator[Event, None], unsubscribe: Callable[[], None]):
        self._events = events
        self._unsubscribe = unsubscribe

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()
        self._unsubscribe()


class EventLog:
    """The controller's event log. ``keep`` events per tenant at most (0: no bound by
    count), none older than ``max_age`` ns (0: no bound by age)."""

    def __init__(
        self,
        store: Store,
        *,
        keep: int,
        max_age: int,
        flush_delay: float = 0.05,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self._store = store
        self._keep = keep
        self._max_age = max_age
        self._flush_delay = flush_delay
        self._clock = clock
        self._seq = store.last_event_seq()
        last = store.list_events(tenant=ALL_TENANTS, after=self._seq - 1) if self._seq else []
        self._last_time = last[0].time if last else 0
        self._queued: list[Event] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._unpruned: dict[str, int] = {}
        self._prune_every = min(1000, max(1, keep // 10)) if keep > 0 else 1000
        self._pruner: asyncio.Task[None] | None = None
        self._ended = False

    # recording -----------------------------------------------------------------------------

    def record(
        self,
        *,
        tenant: str,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
    ) -> Event:
        """Record one event of ``tenant`` and deliver it to the tenant's live streams.

        ``type`` and ``action`` are Docker's (``container``/``die``); ``actor_id`` is the
        object's id (a volume's name); ``attributes`` are Docker's ``Actor.Attributes``.
        """
        self._seq += 1
        self._last_time = max(self._clock(), self._last_time)
        event = Event(
            seq=self._seq,
            tenant=tenant,
            time=self._last_time,
            type=type,
            action=action,
            actor_id=actor_id,
            attributes=dict(attributes or {}),
        )
        self._queued.append(event)
        for subscriber in self._subscribers.get(tenant, ()):
            subscriber.push(event)
        self._schedule_flush()
        return event

    def container(
        self, container: Container, action: str, attributes: Mapping[str, str] | None = None
    ) -> Event:
        """A container event with Docker's attributes: the container's labels, then
        ``attributes``, then ``image`` (as the user named it) and ``name``."""
        merged = {**container.config.labels, **(attributes or {})}
        if container.image:
            merged["image"] = container.image
        merged["name"] = container.name
        return self.record(
            tenant=container.tenant,
            type="container",
            action=action,
            actor_id=container.id,
            attributes=merged,
        )

    def image(
        self,
        *,
        tenant: str,
        image_id: str,
        action: str,
        name: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Event:
        """An image event: the image's labels and ``name`` (a tag, or the id)."""
        attributes = dict(labels or {})
        attributes["name"] = name or image_id
        return self.record(
            tenant=tenant, type="image", action=action, actor_id=image_id, attributes=attributes
        )

    def volume(
        self, *, tenant: str, name: str, action: str, attributes: Mapping[str, str] | None = None
    ) -> Event:
        """A volume event; the actor is the volume's name, ``driver`` is always set."""
        return self.record(
            tenant=tenant,
            type="volume",
            action=action,
            actor_id=name,
            attributes={"driver": "local", **(attributes or {})},
        )

    def network(self, *, tenant: str, network: Network, action: str, container_id: str) -> Event:
        """A network event about one of the tenant's containers (connect, disconnect)."""
        return self.record(
            tenant=tenant,
            type="network",
            action=action,
            actor_id=network.id,
            attributes={"container": container_id, "name": network.name, "type": network.driver},
        )

    # writing ------------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if len(self._queued) >= _FLUSH_AT:
            self.flush()
            return
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no loop to defer to (a synchronous caller)
            return
        self._flush_handle = loop.call_later(self._flush_delay, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_handle = None
        try:
            self.flush()
        except Exception:
            # The store is failing (disk full, database locked for long): keep the events
            # in memory and try again; the rest of the controller fails loudly on its own.
            log.exception("writing %d events failed; retrying", len(self._queued))
            if len(self._queued) > _MAX_QUEUED:
                log.error(  # noqa: TRY400  (the traceback was just logged)
                    "dropping %d unwritten events", len(self._queued) - _MAX_QUEUED
                )
                del self._queued[: len(self._queued) - _MAX_QUEUED]
            self._flush_handle = asyncio.get_running_loop().call_later(_RETRY, self._flush_due)

    def flush(self) -> None:
        """Write every queued event now, in one transaction."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._queued:
            return
        batch = self._queued
        self._store.append_events(batch)
        self._queued = []
        for event in batch:
            self._unpruned[event.tenant] = self._unpruned.get(event.tenant, 0) + 1
        for tenant, count in list(self._unpruned.items()):
            if count >= self._prune_every:
                self.prune(tenant)

    # retention ----------------------------------------------------------------------------

    def prune(self, tenant: str) -> int:
        """Apply the retention bounds to one tenant's stored events now."""
        self._unpruned.pop(tenant, None)
        before = self._clock() - self._max_age if self._max_age > 0 else 0
        keep = self._keep if self._keep > 0 else 1 << 62
        return self._store.prune_events(tenant=tenant, keep=keep, before=before)

    def prune_all(self) -> int:
        return sum(self.prune(t.id) for t in self._store.list_tenants())

    def start(self) -> None:
        """Prune every tenant now, then hourly (so ``max_age`` holds on a quiet log)."""
        self.prune_all()

        async def every_hour() -> None:
            while True:
                await asyncio.sleep(_PRUNE_INTERVAL)
                self.prune_all()

        self._pruner = asyncio.get_running_loop().create_task(every_hour())

    # reading ------------------------------------------------------------------------------

    def _read(self, tenant: str, *, since: int, until: int, after: int) -> list[Event]:
        """The next page of the tenant's events in range after ``after``: stored ones, then
        queued ones (all newer than any stored), read without an await in between."""
        page = self._store.list_events(
            tenant=tenant, since=since, until=until, after=after, limit=_PAGE
        )
        if len(page) < _PAGE:
            newest = page[-1].seq if page else after
            for event in self._queued:
                if (
                    event.seq > newest
                    and event.tenant == tenant
                    and event.time >= since
                    and (not until or event.time <= until)
                ):
                    page.append(event)
                    if len(page) >= _PAGE:
                        break
        return page

    def follow(
        self, *, tenant: str, since: int = 0, until: int = 0, replay: bool = True
    ) -> EventStream:
        """Subscribe now to the tenant's events with ``since <= time`` and, when ``until``
        is not 0, ``time <= until``; iterate the stream for them, in ``seq`` order.

        With ``replay``, the events already recorded come first; without, only those
        recorded from this call on. The stream ends once ``until`` has passed (on the
        controller's clock) or when the log shuts down; otherwise it waits for more.
        Close it when done (iterated or not).
        """
        subscriber = _Subscriber()
        self._subscribers.setdefault(tenant, set()).add(subscriber)
        stream = self._stream(
            subscriber,
            tenant=tenant,
            since=since,
            until=until,
            after=0 if replay else self._seq,
            replay=replay,
        )
        return EventStream(stream, lambda: self._unsubscribe(tenant, subscriber))

    def _unsubscribe(self, tenant: str, subscriber: _Subscriber) -> None:
        subscribers = self._subscribers.get(tenant)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[tenant]

    async def _stream(
        self,
        subscriber: _Subscriber,
        *,
        tenant: str,
        since: int,
        until: int,
        after: int,
        replay: bool,
    ) -> AsyncGenerator[Event, None]:
        last = after
        catch_up = replay
        try:
            while not self._ended:
                if catch_up or subscriber.overflowed:
                    subscriber.reset()
                    while page := self._read(tenant, since=since, until=until, after=last):
                        for event in page:
                            last = event.seq
                            yield event
                    # Here (no await since the last, empty read) every event recorded so far
                    # with seq > last is out of range: past ``until``, or before ``since``.
                    if until and self._last_time > until:
                        return
                    last = max(last, self._seq)
                    subscriber.reset()
                    catch_up = False
                while subscriber.buffer and not subscriber.overflowed:
                    event = subscriber.buffer.popleft()
                    if event.seq <= last or event.time < since:
                        continue
                    if until and event.time > until:
                        return
                    last = event.seq
                    yield event
                if subscriber.overflowed:
                    continue
                subscriber.wakeup.clear()
                if subscriber.buffer or self._ended:
                    continue
                timeout = None
                if until:
                    timeout = (until - self._clock()) / 1e9
                    if timeout <= 0:
                        return
                try:
                    await asyncio.wait_for(subscriber.wakeup.wait(), timeout)
                except TimeoutError:
                    return
        finally:
            self._unsubscribe(tenant, subscriber)

    def subscribers(self, tenant: str) -> int:
        """How many streams follow the tenant's events (``/info``'s NEventsListener)."""
        return len(self._subscribers.get(tenant, ()))

    def end_streams(self) -> None:
        """End every stream (the server is shutting down); new ones end at once."""
        self._ended = True
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.wakeup.set()

    async def close(self) -> None:
        """End the streams, stop pruning and write what is queued."""
        self.end_streams()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        self.flush()
