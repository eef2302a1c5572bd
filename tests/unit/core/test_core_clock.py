"""Times as Docker prints and parses them (dockyard.core.clock)."""

from __future__ import annotations

import time

import pytest

from dockyard.core import clock
from dockyard.core.clock import ZERO_TIME, format_rfc3339, now_ns, parse_time_filter
from dockyard.core.errors import InvalidArgument

NS = 1_000_000_000
NOW = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z


def test_public_surface() -> None:
    assert set(clock.__all__) == {
        "ZERO_TIME",
        "format_rfc3339",
        "go_duration",
        "now_ns",
        "parse_time_filter",
    }


def test_now_ns_is_the_wall_clock_in_nanoseconds() -> None:
    before = time.time_ns()
    value = now_ns()
    assert before <= value <= time.time_ns()


def test_zero_and_negative_are_dockers_zero_time() -> None:
    assert ZERO_TIME == "0001-01-01T00:00:00Z"
    assert format_rfc3339(0) == ZERO_TIME
    assert format_rfc3339(-5) == ZERO_TIME


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (NOW + 123_456_789, "2023-11-14T22:13:20.123456789Z"),
        (NOW + 1, "2023-11-14T22:13:20.000000001Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
    ],
)
def test_format_rfc3339_in_utc_with_nanoseconds(ns: int, text: str) -> None:
    assert format_rfc3339(ns) == text


def test_format_whole_seconds_parses_back() -> None:
    text = format_rfc3339(NOW)
    assert text.startswith("2023-11-14T22:13:20")
    assert text.endswith("Z")
    assert parse_time_filter(text) == NOW


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1700000000", NOW),
        ("  1700000000  ", NOW),
        ("1700000000.5", NOW + NS // 2),
        ("1700000000.000000001", NOW + 1),
        ("1700000000.123456789999", NOW + 123_456_789),
        ("0", 0),
    ],
)
def test_unix_timestamps_with_fractions(value: str, expected: int) -> None:
    assert parse_time_filter(value, now=0) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14T17:13:20-05:00", NOW),
        ("2023-11-14T22:13:20.25Z", NOW + NS // 4),
        ("2023-11-14", NOW - (22 * 3600 + 13 * 60 + 20) * NS),
    ],
)
def test_rfc3339_dates_and_times(value: str, expected: int) -> None:
    assert parse_time_filter(value, now=0) == expected


def test_rfc3339_keeps_nanoseconds() -> None:
    # `docker logs --timestamps` prints nanoseconds; a copied stamp must select exactly.
    stamp = NOW + 123_456_789
    assert parse_time_filter(format_rfc3339(stamp)) == stamp
    assert parse_time_filter("2023-11-14T22:13:20.123456789Z") == stamp


@pytest.mark.parametrize(
    ("value", "ago"),
    [
        ("10m", 600 * NS),
        ("1.5h", 5400 * NS),
        ("30s", 30 * NS),
        ("250ms", 250_000_000),
        ("7us", 7_000),
        ("7µs", 7_000),
        ("9ns", 9),
        ("0s", 0),
    ],
)
def test_go_durations_count_back_from_now(value: str, ago: int) -> None:
    assert parse_time_filter(value, now=NOW) == NOW - ago


@pytest.mark.parametrize(("value", "ago"), [("1h30m", 5400 * NS), ("2m3.5s", 123_500_000_000)])
def test_compound_go_durations(value: str, ago: int) -> None:
    # Go's time.ParseDuration (which Docker uses for --since) accepts unit sequences.
    assert parse_time_filter(value, now=NOW) == NOW - ago


def test_durations_default_to_the_wall_clock() -> None:
    before = time.time_ns()
    value = parse_time_filter("1s")
    assert before - NS <= value <= time.time_ns() - NS


@pytest.mark.parametrize("value", ["", "   ", "yesterday", "10x", "1.2.3", "m", "2023-13-45"])
def test_invalid_values(value: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_time_filter(value, now=NOW)
