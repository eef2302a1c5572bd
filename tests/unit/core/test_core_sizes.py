"""The size table and how a container's size is chosen."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core import sizes
from dockyard.core.errors import InvalidArgument
from dockyard.core.sizes import (
    DEFAULT_SIZE,
    LARGEST,
    SIZES,
    choose_size,
    size_for_memory,
    size_named,
)

MIB = 1 << 20


def test_public_surface() -> None:
    assert set(sizes.__all__) == {
        "DEFAULT_SIZE",
        "LARGEST",
        "SIZES",
        "SIZE_LABEL",
        "Size",
        "choose_size",
        "size_for_memory",
        "size_named",
    }


def test_the_table_is_the_issues() -> None:
    assert [(s.name, s.memory // MIB) for s in SIZES] == [
        ("pico", 64),
        ("nano", 128),
        ("micro", 256),
        ("tiny", 512),
        ("small", 1024),
        ("medium", 2048),
        ("large", 4096),
        ("xlarge", 8192),
        ("2xlarge", 16384),
    ]
    assert DEFAULT_SIZE == "micro" and LARGEST.name == "2xlarge"
    # CPU weight and writable layer grow with memory; small has Docker's default weight.
    assert size_named("small").cpu_shares == 1024
    assert all(a.cpu_shares < b.cpu_shares for a, b in itertools.pairwise(SIZES))
    assert [s.writable // s.memory for s in SIZES] == [16] * len(SIZES)


@pytest.mark.parametrize(
    ("memory", "name"),
    [
        (1, "pico"),
        (64 * MIB, "pico"),
        (64 * MIB + 1, "nano"),
        (100 * MIB, "nano"),
        (128 * MIB, "nano"),
        (200 * MIB, "micro"),
        (1000 * MIB, "small"),
        (1 << 30, "small"),
        ((1 << 30) + 1, "medium"),
        (16 << 30, "2xlarge"),
    ],
)
def test_memory_rounds_up_to_the_next_size(memory: int, name: str) -> None:
    assert size_for_memory(memory).name == name


def test_beyond_the_largest_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidArgument) as info:
        size_for_memory((16 << 30) + 1)
    assert info.value.message == (
        "memory limit 16 GiB (17179869185) exceeds the largest container size, 2xlarge (16 GiB)"
    )


@given(st.integers(min_value=1, max_value=16 << 30))
def test_the_chosen_size_is_the_smallest_that_holds_the_request(memory: int) -> None:
    chosen = size_for_memory(memory)
    assert chosen.memory >= memory
    smaller = [s for s in SIZES if s.memory < chosen.memory]
    assert all(s.memory < memory for s in smaller)


def test_choose_size() -> None:
    assert choose_size(label="", memory=0).name == "micro"
    assert choose_size(label="", memory=0, default="nano").name == "nano"
    assert choose_size(label="", memory=300 * MIB).name == "tiny"
    assert choose_size(label="large", memory=0).name == "large"
    assert choose_size(label=" small ", memory=10 * MIB).name == "small"
    with pytest.raises(InvalidArgument, match=r"does not fit size small \(1 GiB\)"):
        choose_size(label="small", memory=2 << 30)
    with pytest.raises(InvalidArgument) as info:
        choose_size(label="huge", memory=0)
    assert info.value.message == (
        "unknown container size 'huge': choose one of pico, nano, micro, tiny, small, medium, "
        "large, xlarge, 2xlarge"
    )
