"""Quota arithmetic: limits, use, what a request asks, and the refusal's words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core.errors import InvalidArgument, QuotaExceeded
from dockyard.core.quotas import (
    QUOTAS,
    UNLIMITED,
    Limits,
    Refusal,
    Usage,
    amount_text,
    parse_limit,
    quota_exceeded,
    refusals,
    validate_overrides,
)

MIB = 1 << 20
GIB = 1 << 30
FREE = Limits(
    memory=2 * GIB,
    containers=10,
    volumes=5,
    volume_storage=10 * GIB,
    public_ips=2,
    image_storage=5 * GIB,
)


def test_the_six_quotas() -> None:
    assert QUOTAS == (
        "memory",
        "containers",
        "volumes",
        "volume_storage",
        "public_ips",
        "image_storage",
    )
    assert Limits().as_dict() == dict.fromkeys(QUOTAS, UNLIMITED)
    assert Usage().as_dict() == dict.fromkeys(QUOTAS, 0)


def test_a_request_that_fits_is_not_refused() -> None:
    used = Usage(memory=GIB, containers=4)
    assert refusals(FREE, used, Usage(memory=GIB, containers=1)) == []


def test_the_last_byte_fits_and_the_next_does_not() -> None:
    used = Usage(memory=2 * GIB - 256 * MIB)
    assert refusals(FREE, used, Usage(memory=256 * MIB)) == []
    assert refusals(FREE, used, Usage(memory=256 * MIB + 1)) == [
        Refusal(quota="memory", used=used.memory, asked=256 * MIB + 1, limit=2 * GIB)
    ]


def test_every_quota_passed_is_named_in_order() -> None:
    used = Usage(memory=2 * GIB, containers=10)
    refused = refusals(FREE, used, Usage(memory=64 * MIB, containers=1))
    assert [r.quota for r in refused] == ["memory", "containers"]
    error = quota_exceeded(refused, plan="free")
    assert isinstance(error, QuotaExceeded)
    assert error.message == (
        "quota exceeded: memory: 2 GiB used of 2 GiB, 64 MiB more asked; "
        "containers: 10 used of 10, 1 more asked (plan free)"
    )


def test_asking_nothing_of_a_quota_over_its_limit_is_not_refused() -> None:
    # The operator lowered the limit below the use: removing and shrinking still work.
    used = Usage(memory=3 * GIB, containers=12)
    assert refusals(FREE, used, Usage()) == []
    assert refusals(FREE, used, Usage(volumes=1)) == []


def test_room_is_needed_for_a_new_volume() -> None:
    full = Usage(volumes=1, volume_storage=10 * GIB)
    refused = refusals(FREE, full, Usage(volumes=1), room=("volume_storage",))
    assert refused == [Refusal("volume_storage", used=10 * GIB, asked=0, limit=10 * GIB)]
    assert refused[0].message() == "volume_storage: 10 GiB used of 10 GiB"
    almost = Usage(volumes=1, volume_storage=10 * GIB - 1)
    assert refusals(FREE, almost, Usage(volumes=1), room=("volume_storage",)) == []


def test_unlimited_never_refuses() -> None:
    used = Usage(memory=1 << 50, containers=10**6)
    assert refusals(Limits(), used, Usage(memory=1 << 50, containers=1)) == []


def test_a_zero_limit_refuses_any_demand() -> None:
    none = FREE.overridden({"public_ips": 0})
    assert refusals(none, Usage(), Usage(public_ips=1))[0].message() == (
        "public_ips: 0 used of 0, 1 more asked"
    )


@given(
    st.lists(st.integers(min_value=-1, max_value=100), min_size=6, max_size=6),
    st.lists(st.integers(min_value=0, max_value=100), min_size=6, max_size=6),
    st.lists(st.integers(min_value=0, max_value=100), min_size=6, max_size=6),
)
def test_refused_exactly_where_the_sum_passes_the_limit(
    limits: list[int], used: list[int], asked: list[int]
) -> None:
    lim = Limits(**dict(zip(QUOTAS, limits, strict=True)))
    have = Usage(**dict(zip(QUOTAS, used, strict=True)))
    more = Usage(**dict(zip(QUOTAS, asked, strict=True)))
    expected = [
        q
        for q, limit, u, a in zip(QUOTAS, limits, used, asked, strict=True)
        if limit != UNLIMITED and a > 0 and u + a > limit
    ]
    assert [r.quota for r in refusals(lim, have, more)] == expected


def test_overrides_replace_single_limits() -> None:
    changed = FREE.overridden({"memory": 4 * GIB, "containers": UNLIMITED})
    assert changed.memory == 4 * GIB and changed.containers == UNLIMITED
    assert changed.volumes == FREE.volumes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cpus": 2}, "unknown quota 'cpus'"),
        ({"memory": -2}, "invalid limit for memory"),
        ({"memory": True}, "invalid limit for memory"),
        ({"memory": "2g"}, "invalid limit for memory"),
    ],
)
def test_invalid_overrides(overrides: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_overrides(overrides)


@pytest.mark.parametrize(
    ("quota", "text", "value"),
    [
        ("memory", "4g", 4 * GIB),
        ("memory", "512MiB", 512 * MIB),
        ("image_storage", "1073741824", GIB),
        ("memory", "unlimited", UNLIMITED),
        ("containers", "-1", UNLIMITED),
        ("containers", "25", 25),
        ("public_ips", 3, 3),
        ("volumes", "Unlimited", UNLIMITED),
    ],
)
def test_parse_limit(quota: str, text: str | int, value: int) -> None:
    assert parse_limit(quota, text) == value


@pytest.mark.parametrize(
    ("quota", "text"), [("containers", "2g"), ("containers", "many"), ("memory", "lots")]
)
def test_parse_limit_refuses(quota: str, text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_limit(quota, text)


def test_amounts_for_people() -> None:
    assert amount_text("memory", 3 << 29) == "1.5 GiB"
    assert amount_text("containers", 7) == "7"
    assert amount_text("volume_storage", UNLIMITED) == "unlimited"
