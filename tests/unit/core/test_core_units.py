from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core.errors import InvalidArgument
from dockyard.core.units import format_bytes, parse_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1024", 1024),
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("64MiB", 64 << 20),
        ("64 MB", 64 << 20),
        ("2g", 2 << 30),
        ("2GiB", 2 << 30),
        ("1.5g", 3 << 29),
        ("1.25k", 1280),
        ("3t", 3 << 40),
        ("512b", 512),
        (" 7k ", 7 << 10),
    ],
)
def test_parse(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "g", "-1", "1.g", "2x", "2 gigs", "0x10", "1e3"])
def test_parse_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid size"):
        parse_bytes(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (64 << 20, "64 MiB"),
        (3 << 29, "1.5 GiB"),
        ((7 << 28), "1.75 GiB"),
        (2 << 30, "2 GiB"),
        ((2 << 30) + 1, "2 GiB"),
        (1 << 50, "1 PiB"),
        (-(1 << 20), "-1 MiB"),
    ],
)
def test_format(value: int, text: str) -> None:
    assert format_bytes(value) == text


@given(st.integers(min_value=0, max_value=1 << 40), st.sampled_from(["", "k", "m", "g"]))
def test_whole_numbers_with_units_round_trip(number: int, unit: str) -> None:
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
    assert parse_bytes(f"{number}{unit}") == number * scale
