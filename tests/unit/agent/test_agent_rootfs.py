"""Holders of a container's rootfs are aborted and awaited by a deletion."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from dockyard.agent.rootfs import RootfsUsers


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout=5))


def test_evict_aborts_every_holder_and_waits_until_they_let_go() -> None:
    run(evict_aborts_every_holder())


async def evict_aborts_every_holder() -> None:
    users = RootfsUsers()
    aborted: list[str] = []
    released = asyncio.Event()

    async def holder(name: str) -> None:
        stop = asyncio.Event()

        def abort() -> None:
            aborted.append(name)
            stop.set()

        with users.hold("c1", abort):
            await stop.wait()
            await asyncio.sleep(0)  # still holding for a moment after the abort
        released.set()

    tasks = [asyncio.create_task(holder(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    assert users.busy("c1")
    await users.evict("c1")
    assert sorted(aborted) == ["a", "b"]
    assert not users.busy("c1")
    assert released.is_set()
    await asyncio.gather(*tasks)


def test_evict_without_holders_returns_at_once_and_leaves_other_containers() -> None:
    run(evict_without_holders())


async def evict_without_holders() -> None:
    users = RootfsUsers()
    called: list[str] = []
    with users.hold("other", lambda: called.append("other")):
        await asyncio.wait_for(users.evict("c1"), 1)
        assert called == []
        assert users.busy("other")
    assert not users.busy("other")
