"""Signals as Docker names them: ``9``, ``KILL`` or ``SIGKILL``."""

from __future__ import annotations

import signal as signals

from dockyard.core.errors import InvalidArgument

__all__ = ["parse_signal"]


def parse_signal(value: str | int) -> int:
    """Docker accepts ``9``, ``KILL`` and ``SIGKILL``; anything else is InvalidArgument."""
    if isinstance(value, int) or value.isdecimal():
        number = int(value)
        if 0 < number < signals.NSIG:
            return number
        raise InvalidArgument(f"invalid signal: {value}")
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {value}") from None
