"""The controller's event log: recording, deferred writes, replay and live streams,
retention (controller.events), on a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from dockyard.controller import events as events_module
from dockyard.controller.events import EventLog, EventStream
from dockyard.core.events import Event
from dockyard.core.models import Container, ContainerConfig, HostConfig, Network
from dockyard.store import ALL_TENANTS, SqlStore

T = TypeVar("T")
A, B = "tenant-a", "tenant-b"
SECOND = 1_000_000_000
START = 1_700_000_000 * SECOND


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout=10)

    return asyncio.run(bounded())


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now

    def tick(self, ns: int = 1_000) -> int:
        self.now += ns
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "dockyard.db", uid_range_start=100_000)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_log(store: SqlStore, clock: Clock, *, keep: int = 1000, max_age: int = 0) -> EventLog:
    return EventLog(store, keep=keep, max_age=max_age, flush_delay=0.01, clock=clock)


def record(log: EventLog, clock: Clock, tenant: str = A, action: str = "start") -> Event:
    clock.tick()
    return log.record(
        tenant=tenant, type="container", action=action, actor_id="c" * 64, attributes={"k": "v"}
    )


async def take(stream: EventStream, count: int) -> list[int]:
    return [(await anext(stream)).seq for _ in range(count)]


def seqs(events: Sequence[Event]) -> list[int]:
    return [e.seq for e in events]


# recording and writing -----------------------------------------------------------------------


def test_events_are_numbered_and_never_go_back_in_time(store: SqlStore, clock: Clock) -> None:
    log = make_log(store, clock)
    first = record(log, clock)
    clock.now -= 10 * SECOND  # the wall clock steps back
    second = log.record(tenant=A, type="image", action="tag", actor_id="sha256:x")
    assert (first.seq, second.seq) == (1, 2)
    assert second.time == first.time
    assert second.attributes == {}
    assert first.attributes == {"k": "v"}


def test_writes_are_deferred_batched_and_flushed_on_close(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        recorded = [record(log, clock) for _ in range(3)]
        assert store.list_events(tenant=A) == [], "written later, not on the caller's path"
        log.flush()
        assert store.list_events(tenant=A) == recorded
        more = record(log, clock)
        await log.close()
        assert store.list_events(tenant=A) == [*recorded, more]

    run(scenario)


def test_the_flush_timer_writes_the_queue(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        event = record(log, clock)
        while not store.list_events(tenant=A):
            await asyncio.sleep(0.01)
        assert store.list_events(tenant=A) == [event]
        await log.close()

    run(scenario)


def test_without_an_event_loop_events_are_written_at_once(store: SqlStore, clock: Clock) -> None:
    log = make_log(store, clock)
    event = record(log, clock)
    assert store.list_events(tenant=A) == [event]


def test_a_new_log_continues_the_stored_one(store: SqlStore, clock: Clock) -> None:
    first = make_log(store, clock)
    before = [record(first, clock) for _ in range(3)]
    clock.now -= 60 * SECOND
    again = make_log(store, clock)
    after = record(again, clock)
    assert after.seq == 4
    assert after.time >= before[-1].time
    assert seqs(store.list_events(tenant=A)) == [1, 2, 3, 4]


class FlakyStore(SqlStore):
    """Refuses writes while ``broken``."""

    broken = False

    def append_events(self, batch: Sequence[Event]) -> None:
        if self.broken:
            raise OSError("disk full")
        super().append_events(batch)


def test_a_failed_write_keeps_the_events_for_the_next_try(tmp_path: Path, clock: Clock) -> None:
    flaky = FlakyStore.sqlite(tmp_path / "flaky.db", uid_range_start=100_000)

    async def scenario() -> None:
        log = make_log(flaky, clock)
        flaky.broken = True
        events = [record(log, clock) for _ in range(2)]
        log._flush_due()  # what the timer runs: logs, keeps the events, schedules a retry
        assert flaky.list_events(tenant=A) == []
        stream = log.follow(tenant=A)
        assert await take(stream, 2) == [1, 2], "unwritten events are still replayed"
        await stream.aclose()
        flaky.broken = False
        await log.close()
        assert flaky.list_events(tenant=A) == events

    try:
        run(scenario)
    finally:
        flaky.close()


# helpers for Docker's attributes ---------------------------------------------------------


def test_container_events_carry_labels_image_and_name(store: SqlStore, clock: Clock) -> None:
    log = make_log(store, clock)
    container = Container(
        id="f" * 64,
        tenant=A,
        name="web",
        created=1,
        image="busybox:1",
        image_id="sha256:" + "b" * 64,
        config=ContainerConfig(image="busybox:1", labels={"role": "db", "name": "label"}),
        host_config=HostConfig(),
        host="h",
    )
    event = log.container(container, "die", {"exitCode": "3"})
    assert (event.tenant, event.type, event.action, event.actor_id) == (
        A,
        "container",
        "die",
        container.id,
    )
    assert event.attributes == {
        "role": "db",
        "name": "web",
        "image": "busybox:1",
        "exitCode": "3",
    }


def test_image_volume_and_network_events(store: SqlStore, clock: Clock) -> None:
    log = make_log(store, clock)
    image = log.image(
        tenant=A, image_id="sha256:1", action="tag", name="me/app:2", labels={"x": "y"}
    )
    assert image.attributes == {"x": "y", "name": "me/app:2"}
    assert log.image(tenant=A, image_id="sha256:1", action="delete").attributes == {
        "name": "sha256:1"
    }
    volume = log.volume(tenant=A, name="data", action="mount", attributes={"container": "c1"})
    assert (volume.type, volume.actor_id) == ("volume", "data")
    assert volume.attributes == {"driver": "local", "container": "c1"}
    bridge = Network(
        id="n" * 64,
        tenant="",
        name="bridge",
        driver="bridge",
        subnet="10.0.0.0/24",
        gateway="10.0.0.1",
        bridge="br0",
        created=1,
    )
    connect = log.network(tenant=A, network=bridge, action="connect", container_id="c1")
    assert (connect.tenant, connect.type, connect.actor_id) == (A, "network", bridge.id)
    assert connect.attributes == {"container": "c1", "name": "bridge", "type": "bridge"}


# following ------------------------------------------------------------------------------------


def test_replay_then_live_with_no_gap_or_duplicate(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        for _ in range(3):
            record(log, clock)
        log.flush()
        for _ in range(2):
            record(log, clock)  # still queued, not yet in the store
        stream = log.follow(tenant=A, since=1)
        got = await take(stream, 2)
        record(log, clock)  # recorded while the replay is under way
        log.flush()
        got += await take(stream, 4)
        record(log, clock)
        got += await take(stream, 1)
        assert got == [1, 2, 3, 4, 5, 6, 7]
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        assert not waiting.done()
        record(log, clock)
        assert (await waiting).seq == 8
        await stream.aclose()
        await log.close()

    run(scenario)


def test_without_replay_only_new_events_come(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        record(log, clock)
        stream = log.follow(tenant=A, replay=False)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        record(log, clock)
        assert (await waiting).seq == 2
        await stream.aclose()
        assert log.subscribers(A) == 0
        await log.close()

    run(scenario)


def test_a_stream_is_subscribed_before_it_is_first_read(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        record(log, clock)
        stream = log.follow(tenant=A, replay=False)
        assert log.subscribers(A) == 1
        record(log, clock)  # before anyone reads: the API sends headers in between
        assert await take(stream, 1) == [2]
        await stream.aclose()
        unread = log.follow(tenant=A)
        await unread.aclose()
        assert log.subscribers(A) == 0
        await log.close()

    run(scenario)


def test_streams_see_only_their_tenant(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        record(log, clock, tenant=A)
        record(log, clock, tenant=B)
        mine = log.follow(tenant=A, since=1)
        theirs = log.follow(tenant=B, since=1)
        record(log, clock, tenant=B)
        record(log, clock, tenant=A)
        assert await take(mine, 2) == [1, 4]
        assert await take(theirs, 2) == [2, 3]
        assert (log.subscribers(A), log.subscribers(B)) == (1, 1)
        for stream in (mine, theirs):
            await stream.aclose()
        await log.close()

    run(scenario)


def test_since_and_until_bound_the_replay_and_an_old_until_ends_it(
    store: SqlStore, clock: Clock
) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        events = [record(log, clock) for _ in range(6)]
        since, until = events[1].time, events[3].time
        replayed = [e.seq async for e in log.follow(tenant=A, since=since, until=until)]
        assert replayed == [2, 3, 4]
        assert [e.seq async for e in log.follow(tenant=A, until=until)] == [1, 2, 3, 4]
        await log.close()

    run(scenario)


def test_a_future_until_ends_the_stream_when_it_comes(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        record(log, clock)
        stream = log.follow(tenant=A, since=1, until=clock.now + SECOND // 20)
        assert await take(stream, 1) == [1]
        record(log, clock)
        assert await take(stream, 1) == [2]
        clock.tick(SECOND)  # an event past until ends the stream
        record(log, clock)
        assert [e.seq async for e in stream] == []
        quiet = log.follow(tenant=A, since=1, until=clock.now + SECOND // 20)
        assert [e.seq async for e in quiet] == [1, 2, 3]  # and so does time passing
        await log.close()

    run(scenario)


def test_live_events_before_since_are_skipped(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        record(log, clock)
        stream = log.follow(tenant=A, since=clock.now + 10 * SECOND)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        record(log, clock)
        clock.tick(20 * SECOND)
        later = record(log, clock)
        assert (await waiting).seq == later.seq
        await stream.aclose()
        await log.close()

    run(scenario)


def test_a_subscriber_that_falls_behind_reads_the_store(
    store: SqlStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "_BUFFER", 8)
    monkeypatch.setattr(events_module, "_PAGE", 5)

    async def scenario() -> None:
        log = make_log(store, clock)
        stream = log.follow(tenant=A, replay=False)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        for index in range(40):
            record(log, clock)
            if index == 20:
                log.flush()
        got = [(await waiting).seq, *await take(stream, 39)]
        assert got == list(range(1, 41))
        record(log, clock)
        assert await take(stream, 1) == [41]
        await stream.aclose()
        await log.close()

    run(scenario)


def test_end_streams_ends_every_stream(store: SqlStore, clock: Clock) -> None:
    async def scenario() -> None:
        log = make_log(store, clock)
        stream = log.follow(tenant=A)
        waiting = asyncio.ensure_future(anext(stream, None))
        await asyncio.sleep(0)
        await log.close()
        assert await waiting is None
        assert [e async for e in log.follow(tenant=A)] == []

    run(scenario)


# retention ---------------------------------------------------------------------------------


def test_retention_by_count_is_applied_as_events_are_written(store: SqlStore, clock: Clock) -> None:
    log = make_log(store, clock, keep=5)
    for _ in range(12):
        record(log, clock)  # no loop: each is written, and pruned, at once
    assert seqs(store.list_events(tenant=A)) == [8, 9, 10, 11, 12]


def test_retention_by_age_and_prune_all(store: SqlStore, clock: Clock) -> None:
    tenant = store.ensure_tenant("acme").id
    log = make_log(store, clock, keep=0, max_age=60 * SECOND)
    old = [record(log, clock, tenant=tenant) for _ in range(3)]
    clock.tick(120 * SECOND)
    fresh = record(log, clock, tenant=tenant)
    assert log.prune_all() == 3
    assert store.list_events(tenant=tenant) == [fresh]
    assert all(e.seq < fresh.seq for e in old)
    assert store.last_event_seq() == fresh.seq
    assert seqs(store.list_events(tenant=ALL_TENANTS)) == [fresh.seq]


def test_counts_are_kept_per_tenant(store: SqlStore, clock: Clock) -> None:
    log = make_log(store, clock, keep=2)
    for tenant in itertools.islice(itertools.cycle((A, B)), 10):
        record(log, clock, tenant=tenant)
    assert seqs(store.list_events(tenant=A)) == [7, 9]
    assert seqs(store.list_events(tenant=B)) == [8, 10]


def test_public_surface() -> None:
    assert set(events_module.__all__) == {"EventLog", "EventStream"}
