"""Plans: the built-in ones and those of an operator's TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.controller.plans import (
    BOOTSTRAP_PLAN,
    DEFAULT_PLAN,
    builtin_plans,
    load_plans,
    parse_plans,
)
from dockyard.core.errors import InvalidArgument
from dockyard.core.quotas import QUOTAS, UNLIMITED, Limits

GIB = 1 << 30
FULL = {
    "memory": "1g",
    "containers": 3,
    "volumes": 1,
    "volume_storage": "unlimited",
    "public_ips": 0,
    "image_storage": 1073741824,
}


def test_the_free_plan_is_the_issues() -> None:
    free = builtin_plans()["free"].limits
    assert (free.memory, free.public_ips, free.containers) == (2 * GIB, 2, 10)
    assert DEFAULT_PLAN == "free"
    assert builtin_plans()[BOOTSTRAP_PLAN].limits == Limits()


def test_bigger_plans_are_bigger() -> None:
    plans = builtin_plans()
    order = [plans[name].limits for name in ("free", "standard", "pro")]
    for quota in QUOTAS:
        values = [limits.of(quota) for limits in order]
        assert values == sorted(values) and UNLIMITED not in values, quota


def test_a_file_adds_and_redefines_plans(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(
        '[plans.free]\nmemory = "512m"\ncontainers = 2\nvolumes = 1\n'
        'volume_storage = "1g"\npublic_ips = 0\nimage_storage = "1g"\n\n'
        '[plans.team]\ndescription = "for teams"\nmemory = "32GiB"\ncontainers = "unlimited"\n'
        'volumes = 50\nvolume_storage = "1t"\npublic_ips = 8\nimage_storage = "50g"\n'
    )
    plans = load_plans(path)
    assert set(plans) == {"free", "standard", "pro", "unlimited", "team"}
    assert plans["free"].limits.memory == 512 << 20
    assert plans["team"].limits.containers == UNLIMITED
    assert plans["team"].limits.volume_storage == 1 << 40
    assert plans["team"].description == "for teams"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "at least one"),
        ({"plans": {"x": 1}}, "plan x: expected a table"),
        ({"plans": {"x": {**FULL, "cpus": 2}}}, "plan x: unknown key 'cpus'"),
        (
            {"plans": {"x": {k: v for k, v in FULL.items() if k != "volumes"}}},
            "no limit for volumes",
        ),
        ({"plans": {"x": {**FULL, "containers": "2g"}}}, "plan x: invalid limit for containers"),
        ({"plans": {"x": {**FULL, "memory": 1.5}}}, "plan x: invalid limit for memory"),
        ({"plans": {"x": {**FULL, "memory": -3}}}, "plan x: invalid limit for memory"),
    ],
)
def test_a_malformed_plan_is_refused_with_its_name(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_plans(data)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read plans"):
        load_plans(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[plans.free\n")
    with pytest.raises(InvalidArgument, match="cannot read plans"):
        load_plans(tmp_path / "bad.toml")
