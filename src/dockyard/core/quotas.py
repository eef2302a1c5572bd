"""Tenant quotas: what each limits, plans of limits, and the arithmetic of a refusal.

Six quotas, each a count or bytes:

==============  =====  ==============================================================
quota           unit   counts
==============  =====  ==============================================================
memory          bytes  the memory (size) of every container not removed, stopped ones too
containers      count  containers not removed
volumes         count  named and anonymous volumes
volume_storage  bytes  bytes the tenant's volumes hold, as their hosts measured them
public_ips      count  public (floating) IPs held
image_storage   bytes  the tenant's image layers, each distinct layer once
==============  =====  ==============================================================

A plan names a limit for each (:data:`UNLIMITED` for none); a tenant is on one plan and
the operator may override single limits for it (:class:`TenantQuota`). A request is
refused when it adds to a quota and the sum would pass the limit (:func:`refusals`); a
request that adds nothing to a quota is never refused by it, so a tenant whose limit was
lowered below its use can still remove and shrink things.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dockyard.core.errors import InvalidArgument, QuotaExceeded
from dockyard.core.units import format_bytes, parse_bytes

__all__ = [
    "BYTE_QUOTAS",
    "QUOTAS",
    "UNLIMITED",
    "Limits",
    "Plan",
    "Refusal",
    "TenantQuota",
    "Usage",
    "amount_text",
    "parse_limit",
    "quota_exceeded",
    "refusals",
    "validate_overrides",
]

UNLIMITED = -1
QUOTAS = ("memory", "containers", "volumes", "volume_storage", "public_ips", "image_storage")
BYTE_QUOTAS = frozenset({"memory", "volume_storage", "image_storage"})


def _check_name(quota: str) -> str:
    if quota not in QUOTAS:
        raise InvalidArgument(f"unknown quota {quota!r}: choose one of {', '.join(QUOTAS)}")
    return quota


@dataclass(frozen=True, slots=True)
class Limits:
    """A limit per quota; :data:`UNLIMITED` (-1) for none."""

    memory: int = UNLIMITED
    containers: int = UNLIMITED
    volumes: int = UNLIMITED
    volume_storage: int = UNLIMITED
    public_ips: int = UNLIMITED
    image_storage: int = UNLIMITED

    def of(self, quota: str) -> int:
        value: int = getattr(self, _check_name(quota))
        return value

    def overridden(self, overrides: Mapping[str, int]) -> Limits:
        """These limits with ``overrides`` (quota name -> limit) in place."""
        return dataclasses.replace(self, **validate_overrides(overrides))

    def as_dict(self) -> dict[str, int]:
        return {q: self.of(q) for q in QUOTAS}


@dataclass(frozen=True, slots=True)
class Usage:
    """An amount per quota: what a tenant uses, or what a request would add."""

    memory: int = 0
    containers: int = 0
    volumes: int = 0
    volume_storage: int = 0
    public_ips: int = 0
    image_storage: int = 0

    def of(self, quota: str) -> int:
        value: int = getattr(self, _check_name(quota))
        return value

    def plus(self, other: Usage) -> Usage:
        return Usage(**{q: self.of(q) + other.of(q) for q in QUOTAS})

    def as_dict(self) -> dict[str, int]:
        return {q: self.of(q) for q in QUOTAS}


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    limits: Limits
    description: str = ""


@dataclass(frozen=True, slots=True)
class TenantQuota:
    """A tenant's plan (``""``: the controller's default plan) and the operator's
    overrides of single limits (quota name -> limit, :data:`UNLIMITED` allowed)."""

    tenant: str
    plan: str = ""
    overrides: dict[str, int] = field(default_factory=dict)


def validate_overrides(overrides: Mapping[str, int]) -> dict[str, int]:
    """``overrides`` checked: known quota names, limits of -1 (unlimited) or more."""
    out = {}
    for quota, limit in overrides.items():
        _check_name(quota)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < UNLIMITED:
            raise InvalidArgument(f"invalid limit for {quota}: {limit!r} (-1 means unlimited)")
        out[quota] = limit
    return out


def parse_limit(quota: str, value: str | int) -> int:
    """A limit as people write it: ``unlimited`` (or -1), a count, or for byte quotas a
    size with a unit (``2g``, ``512MiB``). InvalidArgument otherwise."""
    _check_name(quota)
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid limit for {quota}: {value!r}")
    if isinstance(value, int):
        return validate_overrides({quota: value})[quota]
    text = value.strip().lower()
    if text in ("unlimited", "-1"):
        return UNLIMITED
    if quota in BYTE_QUOTAS:
        return parse_bytes(text)
    if not text.isdecimal():
        raise InvalidArgument(f"invalid limit for {quota}: {value!r} (a number or 'unlimited')")
    return int(text)


def amount_text(quota: str, value: int) -> str:
    """A quota's amount for people: bytes in binary units, counts as numbers."""
    if value == UNLIMITED:
        return "unlimited"
    return format_bytes(value) if quota in BYTE_QUOTAS else str(value)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One quota a request does not fit: ``used`` now, ``asked`` more, ``limit``."""

    quota: str
    used: int
    asked: int
    limit: int

    def message(self) -> str:
        text = (
            f"{self.quota}: {amount_text(self.quota, self.used)} used of "
            f"{amount_text(self.quota, self.limit)}"
        )
        if self.asked:
            text += f", {amount_text(self.quota, self.asked)} more asked"
        return text


def refusals(
    limits: Limits, used: Usage, asked: Usage, *, room: Iterable[str] = ()
) -> list[Refusal]:
    """The quotas a request adding ``asked`` to ``used`` would pass, in :data:`QUOTAS`
    order. A quota in ``room`` must also have room left when the request adds nothing
    measurable yet (a new volume holds no bytes, but needs storage to grow into)."""
    need_room = {_check_name(q) for q in room}
    out = []
    for quota in QUOTAS:
        limit, have, more = limits.of(quota), used.of(quota), asked.of(quota)
        if limit == UNLIMITED:
            continue
        if (more > 0 and have + more > limit) or (quota in need_room and have >= limit):
            out.append(Refusal(quota=quota, used=have, asked=more, limit=limit))
    return out


def quota_exceeded(refused: list[Refusal], *, plan: str) -> QuotaExceeded:
    """The error for ``refused`` (not empty): every quota with its use and limit."""
    reasons = "; ".join(r.message() for r in refused)
    return QuotaExceeded(f"quota exceeded: {reasons} (plan {plan})")
