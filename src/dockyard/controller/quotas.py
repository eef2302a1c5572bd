"""QuotaService: tenants' plans, what they use, and the checks that keep them within.

Where each quota is counted (``dockyard.core.quotas`` defines them):

- memory and containers: one aggregate over the tenant's container records in the store,
  creates under way included (a create adds its record before it asks an agent);
- volumes: the tenant's volume records; volume storage: what the agents holding the
  tenant's volumes last measured (``GET /v1/tenants/{tenant}/usage`` on each);
- image storage: the tenant's distinct image layers, each at its blob's size, whether or
  not another tenant holds the same layer (so a tenant's use never depends on, or tells
  it anything about, other tenants' images);
- public IPs: :attr:`QuotaService.count_public_ips`, which the floating-IP service
  (``controller/public_ips.py``) sets to the addresses the tenant holds, bound or not.

Checks run under a per-tenant lock (:meth:`QuotaService.lock`) held from the count to
the write that makes the new object count, so two creates racing for the last slot of
one tenant cannot both pass. The lock is per controller process: with several
controllers on one store the check and the write must become one store transaction
(ADR 0013).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dockyard.controller.hosts import HostRegistry
from dockyard.controller.plans import DEFAULT_PLAN
from dockyard.core.errors import DockyardError, InvalidArgument, NotFound
from dockyard.core.protocol import TenantUsage
from dockyard.core.quotas import (
    QUOTAS,
    Limits,
    Plan,
    Refusal,
    TenantQuota,
    Usage,
    quota_exceeded,
    refusals,
    validate_overrides,
)
from dockyard.images.content import ContentStore
from dockyard.store.base import Store

__all__ = ["HostUsage", "QuotaReport", "QuotaService"]

log = logging.getLogger("dockyard.controller")


def _no_public_ips(_tenant: str) -> int:
    return 0  # no public IPs exist until the floating-IP service registers its count


@dataclass(frozen=True, slots=True)
class HostUsage:
    """One host's accounting of a tenant (``usage`` is None if the host did not answer)."""

    host: str
    name: str
    usage: TenantUsage | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class QuotaReport:
    """A tenant's plan, limits and use, and what each host measures of it."""

    tenant: str
    plan: Plan
    settings: TenantQuota
    limits: Limits
    used: Usage
    hosts: list[HostUsage] = field(default_factory=list)


class QuotaService:
    def __init__(
        self,
        *,
        store: Store,
        plans: Mapping[str, Plan],
        default_plan: str = DEFAULT_PLAN,
        content: ContentStore,
        hosts: HostRegistry,
    ) -> None:
        if default_plan not in plans:
            raise InvalidArgument(f"the default plan {default_plan!r} is not among the plans")
        self._store = store
        self._plans = dict(plans)
        self._default_plan = default_plan
        self._content = content
        self._hosts = hosts
        self._locks: dict[str, asyncio.Lock] = {}
        self.count_public_ips: Callable[[str], int] = _no_public_ips
        """Public IPs the tenant holds (the floating-IP service replaces this)."""

    # plans and limits --------------------------------------------------------------------

    @property
    def default_plan(self) -> str:
        return self._default_plan

    def plans(self) -> list[Plan]:
        return list(self._plans.values())

    def plan(self, name: str) -> Plan:
        """The plan called ``name``; InvalidArgument naming the offered ones otherwise."""
        try:
            return self._plans[name]
        except KeyError:
            offered = ", ".join(self._plans)
            raise InvalidArgument(f"unknown plan {name!r}: choose one of {offered}") from None

    def settings(self, tenant: str) -> TenantQuota:
        return self._store.get_tenant_quota(tenant)

    def plan_of(self, settings: TenantQuota) -> Plan:
        """The plan a tenant is on: its own, or the default one if it has none or its plan
        is no longer offered."""
        chosen = self._plans.get(settings.plan or self._default_plan)
        if chosen is None:
            log.warning(
                "tenant %s is on plan %r, which is not offered: using %s",
                settings.tenant,
                settings.plan,
                self._default_plan,
            )
            chosen = self._plans[self._default_plan]
        return chosen

    def limits(self, tenant: str) -> tuple[Plan, Limits]:
        settings = self.settings(tenant)
        plan = self.plan_of(settings)
        return plan, plan.limits.overridden(settings.overrides)

    def update(
        self,
        tenant: str,
        *,
        plan: str = "",
        limits: Mapping[str, int] | None = None,
        reset: Iterable[str] = (),
    ) -> TenantQuota:
        """Move the tenant to ``plan`` (if given), drop the overrides named in ``reset``
        (``"all"``: every one), then override ``limits``. Lowering a limit below what the
        tenant uses removes nothing; it only refuses what would add to it."""
        settings = self.settings(tenant)
        if plan:
            self.plan(plan)
        overrides = dict(settings.overrides)
        for quota in reset:
            if quota == "all":
                overrides.clear()
            elif quota not in QUOTAS:
                raise InvalidArgument(f"unknown quota {quota!r}: choose one of {', '.join(QUOTAS)}")
            else:
                overrides.pop(quota, None)
        overrides.update(validate_overrides(limits or {}))
        updated = TenantQuota(tenant=tenant, plan=plan or settings.plan, overrides=overrides)
        self._store.put_tenant_quota(updated)
        return updated

    # use ---------------------------------------------------------------------------------

    def lock(self, tenant: str) -> asyncio.Lock:
        """Held from a quota check to the write that makes the new object count."""
        return self._locks.setdefault(tenant, asyncio.Lock())

    def image_layers(self, tenant: str) -> set[str]:
        return {d for image in self._store.list_images(tenant=tenant) for d in image.layers}

    def _layer_bytes(self, layers: Iterable[str]) -> int:
        total = 0
        for diff_id in layers:
            with contextlib.suppress(NotFound):
                total += self._content.size(diff_id)
        return total

    def image_storage(self, tenant: str) -> int:
        """Bytes of the tenant's distinct image layers."""
        return self._layer_bytes(self.image_layers(tenant))

    async def host_usage(self, tenant: str, hosts: Iterable[str] | None = None) -> list[HostUsage]:
        """Each ready host's accounting of the tenant (all of them unless ``hosts``)."""
        wanted = None if hosts is None else set(hosts)
        handles = [
            h for h in self._hosts.handles() if h.ready and (wanted is None or h.host.id in wanted)
        ]

        async def ask(handle_index: int) -> HostUsage:
            handle = handles[handle_index]
            try:
                usage = await handle.client.tenant_usage(tenant)
            except DockyardError as exc:
                return HostUsage(handle.host.id, handle.host.name, None, exc.message)
            return HostUsage(handle.host.id, handle.host.name, usage)

        return list(await asyncio.gather(*(ask(i) for i in range(len(handles)))))

    async def volume_storage(self, tenant: str) -> int:
        """Bytes in the tenant's volumes, as the hosts holding them last measured."""
        hosts = {v.host for v in self._store.list_volumes(tenant=tenant)}
        if not hosts:
            return 0
        return sum(h.usage.volumes for h in await self.host_usage(tenant, hosts) if h.usage)

    async def report(self, tenant: str) -> QuotaReport:
        """Everything ``/v1/usage`` shows: plan, limits, use, and each host's accounting."""
        settings = self.settings(tenant)
        plan = self.plan_of(settings)
        memory, containers = self._store.container_totals(tenant=tenant)
        volumes = self._store.list_volumes(tenant=tenant)
        hosts = await self.host_usage(tenant)
        volume_hosts = {v.host for v in volumes}
        used = Usage(
            memory=memory,
            containers=containers,
            volumes=len(volumes),
            volume_storage=sum(
                h.usage.volumes for h in hosts if h.usage and h.host in volume_hosts
            ),
            public_ips=self.count_public_ips(tenant),
            image_storage=self.image_storage(tenant),
        )
        return QuotaReport(
            tenant=tenant,
            plan=plan,
            settings=settings,
            limits=plan.limits.overridden(settings.overrides),
            used=used,
            hosts=hosts,
        )

    # checks ------------------------------------------------------------------------------

    def _refuse(self, tenant: str, used: Usage, asked: Usage, room: Iterable[str] = ()) -> None:
        plan, limits = self.limits(tenant)
        refused = refusals(limits, used, asked, room=room)
        if refused:
            raise quota_exceeded(refused, plan=plan.name)

    def check_container(self, tenant: str, *, memory: int) -> None:
        """QuotaExceeded unless one more container of ``memory`` bytes fits (call it under
        :meth:`lock`, right before the record is added)."""
        have_memory, have_containers = self._store.container_totals(tenant=tenant)
        self._refuse(
            tenant,
            Usage(memory=have_memory, containers=have_containers),
            Usage(memory=memory, containers=1),
        )

    def check_memory_growth(self, tenant: str, *, more: int) -> None:
        """QuotaExceeded unless a container may grow by ``more`` bytes (``docker update``)."""
        if more <= 0:
            return
        have_memory, _ = self._store.container_totals(tenant=tenant)
        self._refuse(tenant, Usage(memory=have_memory), Usage(memory=more))

    async def check_volume(self, tenant: str) -> None:
        """QuotaExceeded unless one more volume fits: the count, and room left in the
        volume storage (a new volume holds nothing yet, but needs room to grow into)."""
        _, limits = self.limits(tenant)
        count = len(self._store.list_volumes(tenant=tenant))
        storage = 0 if limits.volume_storage < 0 else await self.volume_storage(tenant)
        self._refuse(
            tenant,
            Usage(volumes=count, volume_storage=storage),
            Usage(volumes=1),
            room=("volume_storage",),
        )

    def check_image_layers(self, tenant: str, layers: Mapping[str, int]) -> None:
        """QuotaExceeded unless the tenant can take images made of ``layers`` (diff id ->
        bytes): only layers it does not hold yet add to its image storage."""
        held = self.image_layers(tenant)
        added = sum(size for diff_id, size in layers.items() if diff_id not in held)
        if added <= 0:
            return
        self._refuse(
            tenant,
            Usage(image_storage=self._layer_bytes(held)),
            Usage(image_storage=added),
        )

    def check_public_ips(self, tenant: str, count: int = 1) -> None:
        """QuotaExceeded unless the tenant may hold ``count`` more public IPs (for the
        floating-IP service, under :meth:`lock`)."""
        self._refuse(
            tenant, Usage(public_ips=self.count_public_ips(tenant)), Usage(public_ips=count)
        )

    async def dry_run(self, tenant: str, asked: Usage) -> tuple[QuotaReport, list[Refusal]]:
        """Whether ``asked`` would fit now, without making anything: the report it was
        judged against, and the quotas it would pass (none: it fits). Asking for volumes
        also needs room left in the volume storage, as a real create does."""
        report = await self.report(tenant)
        room = ("volume_storage",) if asked.volumes > 0 else ()
        return report, refusals(report.limits, report.used, asked, room=room)
