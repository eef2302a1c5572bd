"""JSON of plans, sizes, quotas and usage, shared by the native and the operator's API
(docs/native-api.md describes each shape)."""

from __future__ import annotations

from typing import Any

from dockyard.api.docker.body import get_int, get_str
from dockyard.controller.quotas import HostUsage, QuotaReport
from dockyard.core.errors import InvalidArgument
from dockyard.core.quotas import BYTE_QUOTAS, QUOTAS, Plan, Refusal, Usage
from dockyard.core.sizes import SIZES, Size, choose_size
from dockyard.core.tenancy import Tenant

__all__ = [
    "asked_from",
    "plan_json",
    "refusal_json",
    "report_json",
    "sizes_json",
]


def _unit(quota: str) -> str:
    return "bytes" if quota in BYTE_QUOTAS else "count"


def plan_json(plan: Plan, *, default: bool = False) -> dict[str, Any]:
    return {
        "name": plan.name,
        "description": plan.description,
        "default": default,
        "limits": plan.limits.as_dict(),
    }


def sizes_json(default: str) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "memory": s.memory,
            "cpu_shares": s.cpu_shares,
            "writable": s.writable,
            "default": s.name == default,
        }
        for s in SIZES
    ]


def _host_json(host: HostUsage) -> dict[str, Any]:
    out: dict[str, Any] = {"id": host.host, "name": host.name, "error": host.error}
    if host.usage is not None:
        out.update(
            memory=host.usage.memory,
            cpu=host.usage.cpu,
            containers_running=host.usage.containers_running,
            writable=host.usage.writable,
            volumes=host.usage.volumes,
            measured=host.usage.measured,
        )
    return out


def report_json(tenant: Tenant, report: QuotaReport) -> dict[str, Any]:
    """``{tenant, plan, overrides, quotas: [{quota, unit, used, limit}], hosts}``; a
    limit of -1 is unlimited."""
    return {
        "tenant": {"id": tenant.id, "name": tenant.name},
        "plan": report.plan.name,
        "overrides": dict(report.settings.overrides),
        "quotas": [
            {
                "quota": q,
                "unit": _unit(q),
                "used": report.used.of(q),
                "limit": report.limits.of(q),
            }
            for q in QUOTAS
        ],
        "hosts": [_host_json(h) for h in report.hosts],
    }


def refusal_json(refusal: Refusal) -> dict[str, Any]:
    return {
        "quota": refusal.quota,
        "used": refusal.used,
        "asked": refusal.asked,
        "limit": refusal.limit,
        "message": refusal.message(),
    }


def asked_from(body: dict[str, Any], *, default_size: str) -> tuple[Usage, list[Size]]:
    """What a dry run asks for: ``containers`` (a list of ``{size}`` or ``{memory}``, each
    sized as a create would be), ``volumes``, ``public_ips``, ``image_storage`` (bytes)."""
    items = body.get("containers") or []
    if not isinstance(items, list):
        raise InvalidArgument("containers: expected a list")
    sizes = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidArgument(f"containers[{index}]: expected an object")
        memory = get_int(item, "memory", "containers")
        if memory < 0:
            raise InvalidArgument(f"containers[{index}]: memory cannot be negative")
        sizes.append(
            choose_size(
                label=get_str(item, "size", "containers"), memory=memory, default=default_size
            )
        )
    counts = {key: get_int(body, key) for key in ("volumes", "public_ips", "image_storage")}
    for key, value in counts.items():
        if value < 0:
            raise InvalidArgument(f"{key} cannot be negative")
    asked = Usage(
        memory=sum(s.memory for s in sizes),
        containers=len(sizes),
        volumes=counts["volumes"],
        public_ips=counts["public_ips"],
        image_storage=counts["image_storage"],
    )
    return asked, sizes
