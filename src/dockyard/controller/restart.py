"""Restart policies with Docker's back-off.

``always`` and ``unless-stopped`` restart after every exit not caused by an explicit stop;
``on-failure[:N]`` after a non-zero exit, at most N times when N > 0. The delay starts at
100 ms and doubles after each restart, capped at one minute, and falls back to 100 ms once
a run lasted at least 10 seconds (Docker's restartmanager).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dockyard.core.models import Container

__all__ = ["RestartTracker"]

_INITIAL = 0.1
_MAXIMUM = 60.0
_RESET_AFTER_NS = 10 * 1_000_000_000


class RestartTracker:
    def __init__(self) -> None:
        self._delays: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def next_delay(self, container: Container) -> float | None:
        """Seconds to wait before restarting ``container`` after its exit, or None."""
        policy = container.host_config.restart_policy
        state = container.state
        if container.manually_stopped or container.host_config.auto_remove:
            return None
        if policy.name in ("always", "unless-stopped"):
            pass
        elif policy.name == "on-failure":
            if state.exit_code == 0:
                return None
            if policy.maximum_retry_count and (
                container.restart_count >= policy.maximum_retry_count
            ):
                return None
        else:
            return None
        ran = state.finished_at - state.started_at if state.started_at else 0
        previous = self._delays.get(container.id)
        delay = (
            _INITIAL if previous is None or ran >= _RESET_AFTER_NS else min(previous * 2, _MAXIMUM)
        )
        self._delays[container.id] = delay
        return delay

    def schedule(
        self, container_id: str, delay: float, action: Callable[[], Awaitable[None]]
    ) -> None:
        self.cancel(container_id)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._pending.pop(container_id, None)
            await action()

        self._pending[container_id] = asyncio.get_running_loop().create_task(later())

    def cancel(self, container_id: str) -> bool:
        """Drop a scheduled restart; True if there was one."""
        task = self._pending.pop(container_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    def forget(self, container_id: str) -> None:
        self.cancel(container_id)
        self._delays.pop(container_id, None)

    def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()
        self._delays.clear()
