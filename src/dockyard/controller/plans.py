"""Plans: named sets of quota limits a tenant can be on.

Four are built in; a TOML file (the controller's ``--plans``) may redefine them or add
more. Each plan in the file names every quota, so a forgotten line never means
"unlimited"::

    [plans.free]
    description = "try it out"
    memory = "2g"            # bytes with a unit, or a number of bytes
    containers = 10
    volumes = 5
    volume_storage = "10g"
    public_ips = 2
    image_storage = "5g"

    [plans.team]
    memory = "32g"
    containers = "unlimited"
    ...
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.core.quotas import QUOTAS, Limits, Plan, parse_limit

__all__ = ["BOOTSTRAP_PLAN", "DEFAULT_PLAN", "builtin_plans", "load_plans", "parse_plans"]

GIB = 1 << 30
DEFAULT_PLAN = "free"
"""Where a tenant goes unless the operator says otherwise."""
BOOTSTRAP_PLAN = "unlimited"
"""The plan of the embedded cloud's first tenant, the local operator's own."""


def builtin_plans() -> dict[str, Plan]:
    return {
        "free": Plan(
            name="free",
            description="to try Dockyard out",
            limits=Limits(
                memory=2 * GIB,
                containers=10,
                volumes=5,
                volume_storage=10 * GIB,
                public_ips=2,
                image_storage=5 * GIB,
            ),
        ),
        "standard": Plan(
            name="standard",
            description="a team's services",
            limits=Limits(
                memory=16 * GIB,
                containers=50,
                volumes=20,
                volume_storage=100 * GIB,
                public_ips=5,
                image_storage=20 * GIB,
            ),
        ),
        "pro": Plan(
            name="pro",
            description="production workloads",
            limits=Limits(
                memory=64 * GIB,
                containers=200,
                volumes=100,
                volume_storage=500 * GIB,
                public_ips=16,
                image_storage=100 * GIB,
            ),
        ),
        "unlimited": Plan(
            name="unlimited", description="no limits (the operator's own)", limits=Limits()
        ),
    }


def parse_plans(data: Mapping[str, Any]) -> dict[str, Plan]:
    """Plans from a parsed TOML document (``[plans.<name>]`` tables); InvalidArgument
    naming the plan and the line's key for anything missing, unknown or malformed."""
    tables = data.get("plans")
    if not isinstance(tables, dict) or not tables:
        raise InvalidArgument("a plans file needs at least one [plans.<name>] table")
    plans = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise InvalidArgument(f"plan {name}: expected a table")
        unknown = sorted(set(table) - {*QUOTAS, "description"})
        if unknown:
            raise InvalidArgument(
                f"plan {name}: unknown key {unknown[0]!r} (quotas: {', '.join(QUOTAS)})"
            )
        missing = [q for q in QUOTAS if q not in table]
        if missing:
            raise InvalidArgument(f"plan {name}: no limit for {', '.join(missing)}")
        limits = {}
        for quota in QUOTAS:
            value = table[quota]
            if not isinstance(value, str | int):
                raise InvalidArgument(f"plan {name}: invalid limit for {quota}: {value!r}")
            try:
                limits[quota] = parse_limit(quota, value)
            except InvalidArgument as exc:
                raise InvalidArgument(f"plan {name}: {exc.message}") from exc
        plans[name] = Plan(
            name=name, limits=Limits(**limits), description=str(table.get("description", ""))
        )
    return plans


def load_plans(path: Path) -> dict[str, Plan]:
    """The built-in plans with those of the TOML file at ``path`` over them."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"cannot read plans from {path}: {exc}") from exc
    return {**builtin_plans(), **parse_plans(data)}
