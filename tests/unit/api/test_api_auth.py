"""api.auth.FailureLimiter: repeated failures block a source for a while."""

from __future__ import annotations

import pytest

from dockyard.api.auth import FailureLimiter
from dockyard.core.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_source_is_blocked_after_too_many_failures_then_freed() -> None:
    clock = Clock()
    limiter = FailureLimiter(max_failures=3, window=10, block=30, clock=clock)
    for _ in range(2):
        limiter.failed("ip:1")
        limiter.check("ip:1")
    limiter.failed("ip:1")
    with pytest.raises(RateLimited, match="30s"):
        limiter.check("ip:1")
    limiter.check("ip:2")  # other sources are not affected
    clock.now = 29.5
    with pytest.raises(RateLimited, match="1s"):
        limiter.check("ip:1")
    clock.now = 30.1
    limiter.check("ip:1")


def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    limiter = FailureLimiter(max_failures=3, window=10, block=30, clock=clock)
    for step in range(10):
        clock.now = step * 6.0
        limiter.failed("uid:0")
        limiter.check("uid:0")
