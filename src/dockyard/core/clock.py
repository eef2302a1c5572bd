"""Time in the form Dockyard stores it (integer ns since the epoch) and Docker prints it."""

from __future__ import annotations

import datetime as dt
import re
import time

from dockyard.core.errors import InvalidArgument

__all__ = ["ZERO_TIME", "format_rfc3339", "go_duration", "now_ns", "parse_time_filter"]

ZERO_TIME = "0001-01-01T00:00:00Z"
_NS = 1_000_000_000
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_FRACTION = re.compile(r"^(?P<head>[^.]*T\d\d:\d\d:\d\d)\.(?P<frac>\d+)(?P<tail>.*)$")
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
    fraction = f"{frac:09d}".rstrip("0")  # Go's RFC3339Nano drops trailing zeros
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def go_duration(value: str) -> int:
    """A Go duration (``10m``, ``1.5h``, ``1h30m``, ``2m3.5s``) in nanoseconds."""
    if not _DURATION.match(value):
        raise InvalidArgument(f"invalid duration {value!r}")
    return sum(int(float(number) * _UNITS[unit]) for number, unit in _DURATION_PART.findall(value))


def parse_time_filter(value: str, *, now: int | None = None) -> int:
    """Parse Docker's ``since``/``until`` values into ns since the epoch.

    Accepted: a Unix timestamp with optional fraction (``1700000000.5``), an RFC 3339 date or
    date-time (nanoseconds kept), or a Go duration (``10m``, ``1h30m``) meaning that long
    before ``now``.
    """
    value = value.strip()
    if not value:
        raise InvalidArgument("empty time value")
    reference = now_ns() if now is None else now
    if _DURATION.match(value):
        return reference - go_duration(value)
    if re.match(r"^-?\d+(\.\d+)?$", value):
        whole, _, frac = value.partition(".")
        return int(whole) * _NS + int((frac + "000000000")[:9] or 0)
    nanos = 0
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    fraction = _FRACTION.match(text)
    if fraction:  # fromisoformat in 3.11 takes at most microseconds
        nanos = int((fraction.group("frac") + "000000000")[:9])
        text = fraction.group("head") + fraction.group("tail")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid time value {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp()) * _NS + (nanos or parsed.microsecond * 1000)
