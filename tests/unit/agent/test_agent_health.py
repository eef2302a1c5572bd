"""agent.health: Docker's health state machine and the probe loop."""

from __future__ import annotations

import asyncio

from dockyard.agent.health import MAX_LOG_ENTRIES, HealthChecker, next_state, timed_probe
from dockyard.core.errors import Unavailable
from dockyard.core.protocol import HealthcheckSpec, HealthResult, HealthState

S = 1_000_000_000
SPEC = HealthcheckSpec(args=("true",), interval=S, timeout=S, start_period=10 * S, retries=2)


def result(at: int, code: int) -> HealthResult:
    return HealthResult(start=at, end=at + 1, exit_code=code, output=f"{code}")


def test_failures_count_only_after_the_start_period_while_starting() -> None:
    state = HealthState()
    state = next_state(state, result(5 * S, 1), spec=SPEC, started_at=0)
    assert (state.status, state.failing_streak) == ("starting", 0)
    state = next_state(state, result(11 * S, 1), spec=SPEC, started_at=0)
    assert (state.status, state.failing_streak) == ("starting", 1)
    state = next_state(state, result(12 * S, 1), spec=SPEC, started_at=0)
    assert (state.status, state.failing_streak) == ("unhealthy", 2)


def test_success_is_healthy_and_resets_the_streak_even_in_the_start_period() -> None:
    state = next_state(HealthState(), result(1 * S, 0), spec=SPEC, started_at=0)
    assert (state.status, state.failing_streak) == ("healthy", 0)
    # Once healthy, failures count at once (the start period only shields "starting").
    state = next_state(state, result(2 * S, 1), spec=SPEC, started_at=0)
    assert (state.status, state.failing_streak) == ("healthy", 1)
    state = next_state(state, result(3 * S, 1), spec=SPEC, started_at=0)
    assert state.status == "unhealthy"
    state = next_state(state, result(4 * S, 0), spec=SPEC, started_at=0)
    assert (state.status, state.failing_streak) == ("healthy", 0)


def test_the_log_keeps_the_newest_entries_and_states_are_new_objects() -> None:
    state = HealthState()
    seen = []
    for i in range(MAX_LOG_ENTRIES + 3):
        new = next_state(state, result(20 * S + i, 0), spec=SPEC, started_at=0)
        assert new is not state and new.log is not state.log
        seen.append(new)
        state = new
    assert len(state.log) == MAX_LOG_ENTRIES
    assert state.log[-1].start == 20 * S + MAX_LOG_ENTRIES + 2
    assert len(seen[0].log) == 1, "an earlier report must not change"


def test_timed_probe_reports_a_timeout_and_a_probe_that_cannot_run() -> None:
    async def slow() -> tuple[int, bytes]:
        await asyncio.sleep(5)
        return 0, b""

    async def broken() -> tuple[int, bytes]:
        raise Unavailable("no monitor")

    async def fine() -> tuple[int, bytes]:
        return 0, b"x" * 10_000

    timed_out = asyncio.run(timed_probe(slow, timeout=0.05))
    assert timed_out.exit_code == -1
    assert "exceeded timeout" in timed_out.output
    failed = asyncio.run(timed_probe(broken, timeout=1))
    assert failed.exit_code == -1 and "no monitor" in failed.output
    ok = asyncio.run(timed_probe(fine, timeout=1))
    assert ok.exit_code == 0 and len(ok.output) == 4096


def test_checker_probes_only_active_containers_and_stops() -> None:
    spec = HealthcheckSpec(args=("true",), interval=S // 100, timeout=S, start_period=0, retries=1)
    reports: list[HealthState] = []
    active = {"on": True}
    probes = 0

    async def probe(_cid: str, _spec: HealthcheckSpec) -> HealthResult:
        nonlocal probes
        probes += 1
        return result(probes, 0)

    async def scenario() -> None:
        checker = HealthChecker(
            probe=probe, report=lambda _c, s: reports.append(s), active=lambda _c: active["on"]
        )
        checker.watch("c1", spec, started_at=0)
        while len(reports) < 2:
            await asyncio.sleep(0.01)
        active["on"] = False
        before = len(reports)
        await asyncio.sleep(0.1)
        assert len(reports) == before, "paused or stopped containers are not probed"
        checker.stop("c1")
        active["on"] = True
        await asyncio.sleep(0.05)
        assert len(reports) == before, "a stopped checker reports nothing"
        checker.close()

    asyncio.run(scenario())
    assert reports[0].status == "healthy"
