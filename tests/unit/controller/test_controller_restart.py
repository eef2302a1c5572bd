"""Restart policies and Docker's back-off (controller.restart.RestartTracker)."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.controller.restart import RestartTracker
from dockyard.core.models import (
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
    RestartPolicy,
    Status,
)

SECOND = 1_000_000_000


def exited(
    policy: str = "always",
    *,
    retries: int = 0,
    exit_code: int = 0,
    ran: float = 1.0,
    cid: str = "c1",
    restart_count: int = 0,
    manually_stopped: bool = False,
    auto_remove: bool = False,
) -> Container:
    started = 1_000 * SECOND
    return Container(
        id=cid,
        tenant="t",
        name=cid,
        created=1,
        image="busybox",
        image_id="sha256:x",
        config=ContainerConfig(image="busybox"),
        host_config=HostConfig(
            restart_policy=RestartPolicy(name=policy, maximum_retry_count=retries),
            auto_remove=auto_remove,
        ),
        host="h",
        state=ContainerState(
            status=Status.EXITED,
            exit_code=exit_code,
            started_at=started,
            finished_at=started + int(ran * SECOND),
        ),
        restart_count=restart_count,
        manually_stopped=manually_stopped,
    )


@pytest.mark.parametrize("policy", ["no", "", "bogus"])
def test_no_policy_never_restarts(policy: str) -> None:
    tracker = RestartTracker()
    assert tracker.next_delay(exited(policy, exit_code=1)) is None


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
@pytest.mark.parametrize("exit_code", [0, 1, 137])
def test_always_and_unless_stopped_restart_after_any_exit(policy: str, exit_code: int) -> None:
    assert RestartTracker().next_delay(exited(policy, exit_code=exit_code)) == pytest.approx(0.1)


def test_on_failure_restarts_only_after_a_failure() -> None:
    tracker = RestartTracker()
    assert tracker.next_delay(exited("on-failure", exit_code=0)) is None
    assert tracker.next_delay(exited("on-failure", exit_code=2)) == pytest.approx(0.1)


def test_on_failure_with_a_maximum() -> None:
    tracker = RestartTracker()
    for count in range(3):
        container = exited("on-failure", retries=3, exit_code=1, restart_count=count)
        assert tracker.next_delay(container) is not None
    assert tracker.next_delay(exited("on-failure", retries=3, exit_code=1, restart_count=3)) is None


def test_on_failure_without_a_maximum_keeps_going() -> None:
    container = exited("on-failure", exit_code=1, restart_count=1_000)
    assert RestartTracker().next_delay(container) is not None


@pytest.mark.parametrize("policy", ["always", "unless-stopped", "on-failure"])
def test_manual_stop_is_respected(policy: str) -> None:
    container = exited(policy, exit_code=1, manually_stopped=True)
    assert RestartTracker().next_delay(container) is None


def test_auto_remove_never_restarts() -> None:
    assert RestartTracker().next_delay(exited("always", auto_remove=True)) is None


def test_back_off_doubles_from_a_tenth_of_a_second_up_to_a_minute() -> None:
    tracker = RestartTracker()
    delays = [tracker.next_delay(exited(ran=0.5)) for _ in range(13)]
    expected = [0.1 * 2**i for i in range(10)] + [60.0, 60.0, 60.0]
    assert delays == pytest.approx(expected)


def test_a_run_of_ten_seconds_resets_the_back_off() -> None:
    tracker = RestartTracker()
    for _ in range(5):
        tracker.next_delay(exited(ran=1))
    assert tracker.next_delay(exited(ran=9.9)) == pytest.approx(3.2)
    assert tracker.next_delay(exited(ran=10)) == pytest.approx(0.1)
    assert tracker.next_delay(exited(ran=1)) == pytest.approx(0.2)


def test_a_container_that_never_started_backs_off() -> None:
    tracker = RestartTracker()
    never = exited(ran=0)
    never.state.started_at = 0
    never.state.finished_at = 50 * SECOND
    assert [tracker.next_delay(never) for _ in range(3)] == pytest.approx([0.1, 0.2, 0.4])


def test_back_off_is_per_container_and_forget_resets_it() -> None:
    tracker = RestartTracker()
    for _ in range(3):
        tracker.next_delay(exited(cid="a"))
    assert tracker.next_delay(exited(cid="b")) == pytest.approx(0.1)
    assert tracker.next_delay(exited(cid="a")) == pytest.approx(0.8)
    tracker.forget("a")
    assert tracker.next_delay(exited(cid="a")) == pytest.approx(0.1)


def test_schedule_runs_the_action_after_the_delay_and_cancel_prevents_it() -> None:
    async def scenario() -> list[str]:
        ran: list[str] = []
        tracker = RestartTracker()

        def action(name: str):  # type: ignore[no-untyped-def]
            async def run() -> None:
                ran.append(name)

            return run

        tracker.schedule("a", 0.01, action("a"))
        tracker.schedule("b", 0.01, action("b"))
        tracker.schedule("c", 0.01, action("c-old"))
        tracker.schedule("c", 0.02, action("c-new"))  # replaces the pending one
        assert tracker.cancel("b")
        assert not tracker.cancel("b")
        assert not tracker.cancel("never")
        await asyncio.sleep(0.1)
        assert not tracker.cancel("a"), "a restart that ran is no longer pending"
        tracker.schedule("d", 10, action("d"))
        tracker.close()
        await asyncio.sleep(0)
        return ran

    assert sorted(asyncio.run(scenario())) == ["a", "c-new"]
