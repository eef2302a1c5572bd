"""The controller's audit log (controller.audit) on a real SQLite store: deferred batched
writes, stamping, reads that see what was just recorded, retention, a store that refuses
writes (bounded memory), and the writes at close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from dockyard.controller import audit as audit_module
from dockyard.controller.audit import AuditLog
from dockyard.core.audit import OPERATOR_LOG, AuditQuery, AuditRecord
from dockyard.store import SqlStore

T = TypeVar("T")
A, B = "tenant-a", "tenant-b"
SECOND = 1_000_000_000
START = 1_700_000_000 * SECOND


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout=10)

    return asyncio.run(bounded())


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


class Writes(SqlStore):
    """Counts audit transactions, and refuses them while ``refuse`` is set."""

    batches: list[int]
    refuse: bool

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if self.refuse:
            raise OSError("disk full")
        self.batches.append(len(records))
        super().append_audit(records)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Writes]:
    opened = Writes.sqlite(tmp_path / "dockyard.db", uid_range_start=100_000)
    assert isinstance(opened, Writes)
    opened.batches = []
    opened.refuse = False
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def call(n: int, tenant: str = A, *, user: str = "ann") -> AuditRecord:
    return AuditRecord(
        tenant=tenant,
        time=START,
        user_id="u" * 64,
        user=user,
        token="0" * 16,
        source="uid:0",
        action="container_stop",
        method="POST",
        path=f"/containers/c{n}/stop",
        target=f"c{n}",
        status=204,
        request_id=f"r{n}",
    )


def stored(store: SqlStore, tenant: str = A) -> list[str]:
    """The tenant's stored request ids, oldest first (read without flushing)."""
    records = store.list_audit(tenant=tenant, query=AuditQuery(limit=10_000))
    return [r.request_id for r in reversed(records)]


def test_records_are_written_later_in_one_batch(store: Writes, clock: Clock) -> None:
    async def scenario() -> None:
        log = AuditLog(store, keep=100, max_age=0, flush_delay=0.05, clock=clock)
        for n in range(5):
            log.record(call(n))
        assert stored(store) == [] and log.queued == 5
        await asyncio.sleep(0.2)
        assert stored(store) == [f"r{n}" for n in range(5)]
        assert store.batches == [5]
        await log.close()

    run(scenario)


def test_a_long_queue_is_written_at_once(
    store: Writes, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "_FLUSH_AT", 10)

    async def scenario() -> None:
        log = AuditLog(store, keep=1000, max_age=0, flush_delay=60, clock=clock)
        for n in range(25):
            log.record(call(n))
        assert store.batches == [10, 10] and log.queued == 5
        await log.close()
        assert store.batches == [10, 10, 5]

    run(scenario)


def test_time_never_goes_back(store: Writes, clock: Clock) -> None:
    log = AuditLog(store, keep=100, max_age=0, clock=clock)
    first = log.record(replace(call(1), time=log.now()))
    clock.now -= 10 * SECOND  # the wall clock steps back
    assert log.now() == START
    second = log.record(replace(call(2), time=log.now()))
    late = log.record(replace(call(3), time=START - SECOND))  # made before, recorded after
    clock.now += 20 * SECOND
    third = log.record(replace(call(4), time=log.now()))
    assert (first.time, second.time, late.time) == (START, START, START)
    assert third.time == START + 10 * SECOND
    records = asyncio.run(log.read(A, AuditQuery()))
    assert [r.time for r in records] == [third.time, late.time, second.time, first.time]
    assert [r.seq for r in records] == sorted((r.seq for r in records), reverse=True)


def test_a_read_sees_what_was_just_recorded(store: Writes, clock: Clock) -> None:
    async def scenario() -> None:
        log = AuditLog(store, keep=100, max_age=0, flush_delay=60, clock=clock)
        log.record(call(1))
        log.record(call(2, B))
        assert [r.request_id for r in await log.read(A, AuditQuery())] == ["r1"]
        assert [r.request_id for r in await log.read(B, AuditQuery())] == ["r2"]
        assert log.queued == 0
        await log.close()

    run(scenario)


def test_retention_by_count_applies_as_records_are_written(store: Writes, clock: Clock) -> None:
    log = AuditLog(store, keep=20, max_age=0, clock=clock)  # pruned every 2 writes
    for n in range(50):
        log.record(call(n))
        log.record(call(n, B))
        log.flush()
    assert stored(store) == [f"r{n}" for n in range(30, 50)]
    assert stored(store, B) == [f"r{n}" for n in range(30, 50)]


def test_retention_by_age_covers_every_log(store: Writes, clock: Clock) -> None:
    log = AuditLog(store, keep=0, max_age=3600 * SECOND, clock=clock)
    log.record(call(1))
    log.record(call(2, "deleted-tenant"))
    log.record(call(3, OPERATOR_LOG, user=""))
    log.flush()
    clock.now += 1800 * SECOND
    log.record(replace(call(4), time=log.now()))
    log.flush()
    clock.now += 2000 * SECOND  # the first three are now older than an hour
    assert log.logs() == sorted([A, "deleted-tenant", OPERATOR_LOG])
    assert log.prune_all() == 3
    assert stored(store) == ["r4"]
    assert log.logs() == [A]


def test_a_failing_store_keeps_records_bounded_then_writes_them(
    store: Writes, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "_RETRY", 0.05)

    async def scenario() -> None:
        log = AuditLog(store, keep=1000, max_age=0, flush_delay=0.01, max_queued=50, clock=clock)
        store.refuse = True
        for n in range(80):
            log.record(call(n))
        await asyncio.sleep(0.1)
        assert stored(store) == []
        assert log.queued == 50 and log.dropped == 30
        store.refuse = False
        await asyncio.sleep(0.2)  # the retry writes them
        assert stored(store) == [f"r{n}" for n in range(30, 80)]
        assert log.queued == 0
        await log.close()

    run(scenario)


def test_close_writes_what_is_queued(store: Writes, clock: Clock) -> None:
    async def scenario() -> None:
        log = AuditLog(store, keep=100, max_age=0, flush_delay=60, clock=clock)
        log.start()
        log.record(call(1))
        await log.close()
        assert stored(store) == ["r1"]

    run(scenario)
