"""AuditLog: who did what, kept per tenant, written behind the request path.

Recording is synchronous and in memory, cheap enough for every mutating call:
:meth:`AuditLog.record` queues the record (its ``time``, from :meth:`AuditLog.now`, never
less than the previous one's). The queue is written in one transaction at most
``flush_delay`` seconds later (the calls of a ``docker run --rm`` share one or two
writes), at once when it grows large, before every read, and on :meth:`AuditLog.close`.
The store numbers the records.

The queue is bounded: while the store refuses writes, records stay queued and are retried
every second; past :data:`MAX_QUEUED` the oldest are dropped, with an error logged (the
calls themselves go on: an audit log that stopped the cloud when its disk filled up would
be a denial of service).

Crash semantics: a clean stop writes everything; a controller killed outright loses the
records of its last ``flush_delay`` (see ADR 0014).

Retention: each log (a tenant's, and the operator's) keeps its newest ``keep`` records and
none older than ``max_age``; a log is pruned after every ``keep // 10`` (at most 1000) new
records, at start and hourly, with two indexed deletes. Logs of deleted tenants are pruned
too (until they are empty).

Call everything from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Final

from dockyard.core.audit import AuditQuery, AuditRecord
from dockyard.core.clock import now_ns
from dockyard.store.base import Store

__all__ = ["MAX_QUEUED", "AuditLog"]

log = logging.getLogger("dockyard.controller")

MAX_QUEUED: Final = 100_000  # records kept in memory while the store refuses writes
_FLUSH_AT: Final = 256  # queued records that are written at once, without waiting
_RETRY: Final = 1.0  # seconds between attempts to write when the store failed
_PRUNE_INTERVAL: Final = 3600.0  # seconds between pruning every log (for max_age)


class AuditLog:
    """The controller's audit log. ``keep`` records per tenant at most (0: no bound by
    count), none older than ``max_age`` ns (0: no bound by age)."""

    def __init__(
        self,
        store: Store,
        *,
        keep: int,
        max_age: int,
        flush_delay: float = 0.05,
        max_queued: int = MAX_QUEUED,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self._store = store
        self._keep = keep
        self._max_age = max_age
        self._flush_delay = flush_delay
        self._max_queued = max_queued
        self._clock = clock
        self._last_time = 0
        self._queued: list[AuditRecord] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._failing = False
        self._unpruned: dict[str, int] = {}
        self._prune_every = min(1000, max(1, keep // 10)) if keep > 0 else 1000
        self._pruner: asyncio.Task[None] | None = None
        self.dropped = 0
        """Records dropped because the store refused writes for too long."""

    # recording -----------------------------------------------------------------------------

    def now(self) -> int:
        """The time to give a record made now: the clock's, but never less than the last
        recorded one's (a time range is then one stretch of the log)."""
        return max(self._clock(), self._last_time)

    def record(self, record: AuditRecord) -> AuditRecord:
        """Queue ``record`` for its tenant's log and return it. Its ``time`` should come
        from :meth:`now`; one earlier than the last recorded is raised to that."""
        if record.time < self._last_time:
            record = dataclasses.replace(record, time=self._last_time)
        self._last_time = record.time
        self._queued.append(record)
        if len(self._queued) > self._max_queued:
            # Only while the store fails (otherwise the queue is written at _FLUSH_AT).
            drop = len(self._queued) - self._max_queued
            del self._queued[:drop]
            self.dropped += drop
            log.error("audit log: dropped %d unwritten records (the store refuses writes)", drop)
        self._schedule_flush()
        return record

    @property
    def queued(self) -> int:
        """Records recorded but not written yet."""
        return len(self._queued)

    # writing ------------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if len(self._queued) >= _FLUSH_AT and not self._failing:
            self._flush_now()
            return
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no loop to defer to (a synchronous caller)
            return
        self._flush_handle = loop.call_later(self._flush_delay, self._flush_due)

    def _flush_now(self) -> None:
        try:
            self.flush()
        except Exception:
            self._failed()

    def _flush_due(self) -> None:
        self._flush_handle = None
        self._flush_now()

    def _failed(self) -> None:
        # The store is failing (disk full, database locked for long): keep the records in
        # memory (bounded) and try again; the rest of the controller fails loudly on its own.
        log.exception("audit log: writing %d records failed; retrying", len(self._queued))
        self._failing = True
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush_handle = loop.call_later(_RETRY, self._flush_due)

    def flush(self) -> None:
        """Write every queued record now, in one transaction (the store's errors raise,
        and the records stay queued)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._queued:
            return
        batch = self._queued
        self._store.append_audit(batch)
        self._failing = False
        self._queued = []
        for record in batch:
            self._unpruned[record.tenant] = self._unpruned.get(record.tenant, 0) + 1
        for tenant, count in list(self._unpruned.items()):
            if count >= self._prune_every:
                self.prune(tenant)

    # reading ------------------------------------------------------------------------------

    async def read(self, tenant: str, query: AuditQuery) -> list[AuditRecord]:
        """The tenant's records that ``query`` matches, newest first, including the ones
        recorded a moment ago (the queue is written first). The store is read in a worker
        thread: a filter that matches little reads a whole log (tens of ms for 100000
        records), which must not stall the controller's other calls."""
        self.flush()
        return await asyncio.to_thread(self._store.list_audit, tenant=tenant, query=query)

    def logs(self) -> list[str]:
        """The tenants (ids) that have records: deleted tenants' until their records age
        out, and the operator log's ``""``. Records still queued count too."""
        return sorted(set(self._store.audit_tenants()) | {r.tenant for r in self._queued})

    # retention ----------------------------------------------------------------------------

    def prune(self, tenant: str) -> int:
        """Apply the retention bounds to one log now."""
        self._unpruned.pop(tenant, None)
        before = self._clock() - self._max_age if self._max_age > 0 else 0
        keep = self._keep if self._keep > 0 else 1 << 62
        return self._store.prune_audit(tenant=tenant, keep=keep, before=before)

    def prune_all(self) -> int:
        """Prune every log that has records (deleted tenants' and the operator's too)."""
        return sum(self.prune(tenant) for tenant in self.logs())

    def start(self) -> None:
        """Prune every log now, then hourly (so ``max_age`` holds on a quiet log)."""
        self.prune_all()

        async def every_hour() -> None:
            while True:
                await asyncio.sleep(_PRUNE_INTERVAL)
                self.prune_all()

        self._pruner = asyncio.get_running_loop().create_task(every_hour())

    async def close(self) -> None:
        """Stop pruning and write what is queued."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        self.flush()
