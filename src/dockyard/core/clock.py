"""Time in the form Dockyard stores it (integer ns since the epoch) and Docker prints it."""

from __future__ import annotations

import datetime as dt
import re
import time

from dockyard.core.errors import InvalidArgument

__all__ = ["ZERO_TIME", "format_rfc3339", "now_ns", "parse_time_filter"]

ZERO_TIME = "0001-01-01T00:00:00Z"
_NS = 1_000_000_000
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$")
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}


def now_ns() -> int:
    return time.time_ns()


def format_rfc3339(ns: int) -> str:
    """RFC 3339 with nanoseconds in UTC, as Docker prints times; 0 is Docker's zero time."""
    if ns <= 0:
        return ZERO_TIME
    seconds, frac = divmod(ns, _NS)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def parse_time_filter(value: str, *, now: int | None = None) -> int:
    """Parse Docker's ``since``/``until`` values into ns since the epoch.

    Accepted: a Unix timestamp with optional fraction (``1700000000.5``), an RFC 3339 date or
    date-time, or a Go duration (``10m``, ``1.5h``) meaning that long before ``now``.
    """
    value = value.strip()
    if not value:
        raise InvalidArgument("empty time value")
    reference = now_ns() if now is None else now
    match = _DURATION.match(value)
    if match:
        return reference - int(float(match.group(1)) * _UNITS[match.group(2)])
    if re.match(r"^-?\d+(\.\d+)?$", value):
        whole, _, frac = value.partition(".")
        return int(whole) * _NS + int((frac + "000000000")[:9] or 0)
    try:
        text = value.replace("Z", "+00:00")
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid time value {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp()) * _NS + parsed.microsecond * 1000
