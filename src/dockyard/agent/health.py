"""Health checks: a container's probe, run by the agent while the container runs.

Docker's rules: the first probe runs one interval after the start, then one every
interval; exit code 0 is healthy, anything else (or running past the timeout) a failure.
``retries`` consecutive failures make the container unhealthy; failures during the start
period do not count while it is still starting. The last five probes are kept, each
with the first 4 KiB of its output. Paused containers are not probed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dockyard.core.clock import now_ns
from dockyard.core.errors import DockyardError
from dockyard.core.protocol import HealthcheckSpec, HealthResult, HealthState

__all__ = ["MAX_LOG_ENTRIES", "MAX_OUTPUT", "HealthChecker", "next_state", "timed_probe"]

MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

log = logging.getLogger("dockyard.agent")

Probe = Callable[[str, HealthcheckSpec], Awaitable[HealthResult]]
Report = Callable[[str, HealthState], None]
Probing = Callable[[str], bool]


def next_state(
    state: HealthState, result: HealthResult, *, spec: HealthcheckSpec, started_at: int
) -> HealthState:
    """The health after ``result`` (a new object: reports already sent keep theirs)."""
    entries = [*state.log, result][-MAX_LOG_ENTRIES:]
    if result.exit_code == 0:
        return HealthState(status="healthy", failing_streak=0, log=entries)
    in_start_period = result.start - started_at < spec.start_period
    if state.status == "starting" and in_start_period:
        return HealthState(status="starting", failing_streak=state.failing_streak, log=entries)
    streak = state.failing_streak + 1
    status = "unhealthy" if streak >= spec.retries else state.status
    return HealthState(status=status, failing_streak=streak, log=entries)


class HealthChecker:
    """One probe loop per running container that has a healthcheck.

    ``probe`` runs the check in the container; ``report`` records and announces a new
    state; ``active`` says whether the container is running and not paused right now.
    """

    def __init__(self, *, probe: Probe, report: Report, active: Probing) -> None:
        self._probe = probe
        self._report = report
        self._active = active
        self._loops: dict[str, asyncio.Task[None]] = {}

    def watch(self, container_id: str, spec: HealthcheckSpec, *, started_at: int) -> None:
        """Probe the container from now on (replacing any loop of an earlier run)."""
        self.stop(container_id)
        task = asyncio.create_task(self._loop(container_id, spec, started_at))
        self._loops[container_id] = task
        task.add_done_callback(lambda t: self._done(container_id, t))

    def stop(self, container_id: str) -> None:
        task = self._loops.pop(container_id, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        for container_id in list(self._loops):
            self.stop(container_id)

    def _done(self, container_id: str, task: asyncio.Task[None]) -> None:
        if self._loops.get(container_id) is task:
            del self._loops[container_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("health checks of %s stopped", container_id[:12], exc_info=task.exception())

    async def _loop(self, container_id: str, spec: HealthcheckSpec, started_at: int) -> None:
        state = HealthState()
        while True:
            await asyncio.sleep(spec.interval / 1e9)
            if not self._active(container_id):
                continue
            result = await self._probe(container_id, spec)
            if not self._active(container_id):
                continue  # it stopped or paused while probed: the result says nothing
            state = next_state(state, result, spec=spec, started_at=started_at)
            self._report(container_id, state)


async def timed_probe(
    run: Callable[[], Awaitable[tuple[int, bytes]]], *, timeout: float
) -> HealthResult:
    """Run one probe (``run`` returns its exit code and output) within ``timeout``."""
    start = now_ns()
    code, output = -1, b""
    try:
        code, output = await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        output = f"Health check exceeded timeout ({timeout:g}s)".encode()
    except (DockyardError, OSError) as exc:  # a probe that cannot run has failed
        output = f"health check could not run: {exc}".encode()
    return HealthResult(
        start=start,
        end=now_ns(),
        exit_code=code,
        output=output[:MAX_OUTPUT].decode(errors="replace"),
    )
