"""Signal names as Docker accepts them (core.signals.parse_signal)."""

from __future__ import annotations

import signal

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.core.signals import parse_signal


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("SIGKILL", signal.SIGKILL),
        ("KILL", signal.SIGKILL),
        ("kill", signal.SIGKILL),
        ("sigterm", signal.SIGTERM),
        ("9", 9),
        (15, 15),
        ("SIGHUP", signal.SIGHUP),
        ("USR1", signal.SIGUSR1),
        ("WINCH", signal.SIGWINCH),
        ("64", 64),
    ],
)
def test_numbers_and_names(value: str | int, number: int) -> None:
    assert parse_signal(value) == number


@pytest.mark.parametrize(
    "value", ["", "0", 0, -1, "65", 65, "SIGNOPE", "SIG", "9x", "-9", "SIG_DFL"]
)
def test_invalid_signals(value: str | int) -> None:
    with pytest.raises(InvalidArgument, match="invalid signal"):
        parse_signal(value)
