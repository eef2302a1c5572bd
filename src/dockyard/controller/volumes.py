"""VolumeService: a tenant's named volumes.

A volume's data lives on one host (the local driver); the record says which, so the
scheduler can place containers using it there. Names are unique per tenant; the host
directory includes the tenant id, so two tenants' "data" volumes never meet. Creating and
removing one are ``create`` and ``destroy`` events.
"""

from __future__ import annotations

from collections.abc import Callable

from dockyard.controller.admission import check_volume_options
from dockyard.controller.agents import AgentClient
from dockyard.controller.events import EventLog
from dockyard.controller.quotas import QuotaService
from dockyard.core.clock import now_ns
from dockyard.core.errors import Conflict, NotFound
from dockyard.core.ids import new_id, validate_name
from dockyard.core.models import Volume
from dockyard.core.protocol import VolumeRequest
from dockyard.core.tenancy import Tenant
from dockyard.store.base import Store

__all__ = ["VolumeService"]


class VolumeService:
    def __init__(
        self,
        *,
        store: Store,
        agent_for: Callable[[str], AgentClient],
        default_host: Callable[[], str],
        events: EventLog,
        quotas: QuotaService,
    ) -> None:
        self._store = store
        self._quotas = quotas
        self._events = events
        self._agent_for = agent_for
        self._default_host = default_host

    def get(self, *, tenant: str, name: str) -> Volume:
        return self._store.get_volume(tenant=tenant, name=name)

    def list_volumes(self, *, tenant: str) -> list[Volume]:
        return self._store.list_volumes(tenant=tenant)

    async def create(
        self,
        *,
        tenant: Tenant,
        name: str = "",
        driver: str = "local",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
        host: str = "",
    ) -> Volume:
        """Create a volume, or return the existing one of that name (Docker's behaviour).

        QuotaExceeded if the tenant's volume count or volume storage has no room left;
        PermissionDenied for driver options that would have the host mount something
        (:func:`~dockyard.controller.admission.check_volume_options`)."""
        check_volume_options(driver, options or {})
        name = validate_name(name, what="volume") if name else new_id()
        try:
            return self._store.get_volume(tenant=tenant.id, name=name)
        except NotFound:
            pass
        # Held across the agent's create, until the record that makes it count is added.
        async with self._quotas.lock(tenant.id):
            try:
                return self._store.get_volume(tenant=tenant.id, name=name)
            except NotFound:
                pass
            await self._quotas.check_volume(tenant.id)
            host = host or self._default_host()
            result = await self._agent_for(host).create_volume(
                VolumeRequest(name=name, tenant=tenant.id, uid_base=tenant.uid_base)
            )
            volume = Volume(
                name=name,
                tenant=tenant.id,
                created=now_ns(),
                host=host,
                mountpoint=str(result.get("mountpoint", "")),
                labels=dict(labels or {}),
                anonymous=anonymous,
            )
            self._store.add_volume(volume)
        self._events.volume(tenant=tenant.id, name=name, action="create")
        return volume

    async def remove(self, *, tenant: str, name: str, users: list[str]) -> None:
        """Delete a volume and its data; Conflict while ``users`` (container ids) hold it."""
        volume = self._store.get_volume(tenant=tenant, name=name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        await self._agent_for(volume.host).remove_volume(tenant, name)
        self._store.delete_volume(tenant=tenant, name=name)
        self._events.volume(tenant=tenant, name=name, action="destroy")

    async def usage(self, volume: Volume) -> int:
        """Bytes used by the volume, measured on its host (-1 if the host cannot tell)."""
        try:
            data = await self._agent_for(volume.host).volume_usage(volume.tenant, volume.name)
        except (NotFound, Conflict):
            return -1
        return int(data.get("size", -1))
