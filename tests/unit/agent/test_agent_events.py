"""The agent's numbered event log and how subscribers follow it (agent.events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

from dockyard.agent.events import EventLog, ResyncNeeded
from dockyard.core.protocol import AgentEvent, ContainerStatus

T = TypeVar("T")


def status(cid: str = "c1", state: str = "running") -> ContainerStatus:
    return ContainerStatus(id=cid, status=state)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout=5)

    return asyncio.run(bounded())


async def take(stream: AsyncIterator[AgentEvent], count: int) -> list[int]:
    return [(await anext(stream)).seq for _ in range(count)]


def test_events_are_numbered_from_one_within_a_boot() -> None:
    log = EventLog()
    assert log.seq == 0
    first = log.emit("start", status())
    second = log.emit("exit", status(state="exited"))
    assert (first.seq, second.seq, log.seq) == (1, 2, 2)
    assert first.boot_id == second.boot_id == log.boot_id
    assert first.kind == "start"
    assert second.container.status == "exited"
    assert second.time >= first.time > 0


def test_each_log_is_a_new_boot() -> None:
    assert EventLog().boot_id != EventLog().boot_id


def test_follow_from_the_start_gets_the_backlog_then_live_events() -> None:
    async def scenario() -> list[int]:
        log = EventLog()
        for _ in range(3):
            log.emit("start", status())
        stream = log.follow(boot_id=log.boot_id, after=0)
        got = await take(stream, 3)
        log.emit("exit", status())
        log.emit("start", status())
        got += await take(stream, 2)
        await stream.aclose()
        return got

    assert run(scenario) == [1, 2, 3, 4, 5]


def test_follow_resumes_after_a_position() -> None:
    async def scenario() -> list[int]:
        log = EventLog()
        for _ in range(5):
            log.emit("start", status())
        stream = log.follow(boot_id=log.boot_id, after=3)
        got = await take(stream, 2)
        await stream.aclose()
        return got

    assert run(scenario) == [4, 5]


def test_follow_at_the_current_position_waits_for_new_events() -> None:
    async def scenario() -> list[int]:
        log = EventLog()
        log.emit("start", status())
        stream = log.follow(boot_id=log.boot_id, after=1)
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.01)
        assert not pending.done()
        log.emit("exit", status())
        event = await pending
        await stream.aclose()
        return [event.seq]

    assert run(scenario) == [2]


def test_events_emitted_while_the_backlog_is_read_come_once_in_order() -> None:
    async def scenario() -> list[int]:
        log = EventLog()
        log.emit("start", status())
        log.emit("start", status())
        stream = log.follow(boot_id=log.boot_id, after=0)
        got = await take(stream, 1)
        log.emit("exit", status())  # lands in the subscriber's queue and maybe the backlog
        got += await take(stream, 2)
        log.emit("exit", status())
        got += await take(stream, 1)
        await stream.aclose()
        return got

    assert run(scenario) == [1, 2, 3, 4]


def test_several_subscribers_each_get_every_event() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        log = EventLog()
        one = log.follow(boot_id=log.boot_id, after=0)
        two = log.follow(boot_id=log.boot_id, after=0)
        first_one = asyncio.ensure_future(anext(one))
        first_two = asyncio.ensure_future(anext(two))
        await asyncio.sleep(0)
        log.emit("start", status())
        log.emit("exit", status())
        got_one = [(await first_one).seq, *await take(one, 1)]
        got_two = [(await first_two).seq, *await take(two, 1)]
        await one.aclose()
        await two.aclose()
        return got_one, got_two

    assert run(scenario) == ([1, 2], [1, 2])


def resync(log: EventLog, *, boot_id: str, after: int) -> ResyncNeeded:
    async def scenario() -> ResyncNeeded:
        stream = log.follow(boot_id=boot_id, after=after)
        with pytest.raises(ResyncNeeded) as info:
            await anext(stream)
        return info.value

    return run(scenario)


def test_another_boot_needs_a_resync() -> None:
    log = EventLog()
    log.emit("start", status())
    assert resync(log, boot_id="another-boot", after=0).seq == 1
    assert resync(log, boot_id="", after=1).seq == 1


def test_a_position_ahead_of_the_log_needs_a_resync() -> None:
    log = EventLog()
    log.emit("start", status())
    assert resync(log, boot_id=log.boot_id, after=2).seq == 1


def test_a_gap_the_ring_no_longer_holds_needs_a_resync() -> None:
    log = EventLog()
    for _ in range(5000):
        log.emit("start", status())
    assert resync(log, boot_id=log.boot_id, after=0).seq == 5000
    assert resync(log, boot_id=log.boot_id, after=5000 - 4097).seq == 5000

    async def oldest_kept() -> list[int]:
        stream = log.follow(boot_id=log.boot_id, after=5000 - 4096)
        got = await take(stream, 2)
        await stream.aclose()
        return got

    assert run(oldest_kept) == [5000 - 4095, 5000 - 4094]


def test_a_fresh_log_can_be_followed_from_zero() -> None:
    async def scenario() -> list[int]:
        log = EventLog()
        stream = log.follow(boot_id=log.boot_id, after=0)
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        log.emit("start", status())
        got = [(await pending).seq]
        await stream.aclose()
        return got

    assert run(scenario) == [1]


def test_end_streams_ends_every_follower_and_new_ones_at_once() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        log = EventLog()
        log.emit("start", status())
        waiting = log.follow(boot_id=log.boot_id, after=1)
        pending = asyncio.ensure_future(anext(waiting, None))
        await asyncio.sleep(0)
        log.end_streams()  # the agent is shutting down
        assert await pending is None
        log.emit("exit", status())  # still numbered and kept, no longer delivered
        late = log.follow(boot_id=log.boot_id, after=0)
        return [e.seq async for e in late], [log.seq]

    assert run(scenario) == ([], [2])
