"""Per-tenant accounting on this host, and the writable-layer cap.

:class:`DiskWatch` measures, every ``interval`` seconds, the bytes allocated on disk by
each running container's writable layer (overlayfs upper dir) and by each volume a
running container mounts, and of those that ran since the previous round (or had files
copied in); stopped containers and idle volumes are measured once, since nothing writes
to them. A running container found past its size's cap is killed, and a container past
its cap cannot start again (``ContainerManager._check_writable``).

Why not a filesystem quota: the hosts' kernels have no quota format for ext4
(``CONFIG_QFMT_V2`` is off: mounting with ``prjquota`` fails) and no XFS quota, and a
loop-mounted filesystem per container costs a mkfs and a mount on the start path and a
loop device per container. So the cap is checked, not enforced by the kernel: a
container can write past it for up to one interval before it is killed (ADR 0013). A
walk costs about 7 µs per file (a container with 10,000 files in its upper dir: 70 ms
of one core per round), 12 µs for an empty upper dir.

:func:`tenant_usage` answers ``GET /v1/tenants/{tenant}/usage``: memory and CPU time of
the tenant's parent cgroup (every container of the tenant on this host runs below it),
and the disk numbers of the last round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import TypeVar

from dockyard.agent.containers import ContainerManager
from dockyard.core.clock import now_ns
from dockyard.core.disk import tree_usage
from dockyard.core.errors import DockyardError, InvalidArgument, NotFound
from dockyard.core.protocol import TenantUsage
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.stats import parse_keyed
from dockyard.volumes.local import LocalVolumes

__all__ = ["DEFAULT_DISK_INTERVAL", "DiskWatch", "read_tenant_cgroup"]

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("dockyard.agent")
DEFAULT_DISK_INTERVAL = 10.0
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_ACTIVE = ("running", "paused")


def read_tenant_cgroup(cgroup: Cgroup) -> tuple[int, int]:
    """(memory in use, CPU ns used) of a cgroup and everything below it; (0, 0) if it
    does not exist (no container of the tenant has run here yet)."""
    if cgroup.unified:
        memory = cgroup.read("memory", "memory.current")
        cpu = parse_keyed(cgroup.read("cpu", "cpu.stat")).get("usage_usec", 0) * 1000
    else:
        memory = cgroup.read("memory", "memory.usage_in_bytes")
        cpu = int(cgroup.read("cpuacct", "cpuacct.usage").strip() or 0)
    return int(memory.strip() or 0), cpu


class DiskWatch:
    """Measures writable layers and volumes, enforces writable-layer caps, and answers
    tenants' accounting. ``interval`` 0 measures only when asked (:meth:`measure`)."""

    def __init__(
        self, *, manager: ContainerManager, volumes: LocalVolumes, interval: float
    ) -> None:
        self._manager = manager
        self._volumes = volumes
        self._interval = interval
        self._volume_used: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._previous = 0  # when the previous round started (ns)
        self.measured = 0
        """When the last round ended (ns; 0: none yet)."""

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.measure()
            except OSError as exc:  # the round is retried; one unreadable dir stops nothing
                log.warning("measuring disk use failed: %s", exc)
            await asyncio.sleep(self._interval)

    async def measure(self) -> None:
        """One round: measure what may have grown (and what was never measured), then
        kill running containers past their cap."""
        started = now_ns()
        records = self._manager.records()
        # What may have grown: running now, or ran since the previous round began.
        busy = {r.id for r in records if r.status in _ACTIVE or r.finished_at >= self._previous}
        layers = {
            r.id: self._manager.paths(r.id).upper
            for r in records
            if r.id in busy or r.id not in self._manager.writable_used
        }
        mounted = {  # the volumes of those containers (docker cp into one too)
            (r.request.tenant, m.source)
            for r in records
            if r.id in layers
            for m in r.request.mounts
            if m.type == "volume"
        }
        present = set(await asyncio.to_thread(self._volumes.list_volumes))
        volumes = self._volume_dirs(
            key for key in present if key in mounted or key not in self._volume_used
        )
        layer_sizes = await asyncio.to_thread(_measure_all, layers)
        volume_sizes = await asyncio.to_thread(_measure_all, volumes)
        for key in list(self._volume_used):
            if key not in present:
                del self._volume_used[key]
        self._volume_used.update(volume_sizes)
        alive = {r.id for r in self._manager.records()}  # some may be deleted meanwhile
        for record in records:
            if record.id not in layers or record.id not in alive:
                continue
            used = layer_sizes[record.id]
            self._manager.writable_used[record.id] = used
            cap = record.request.resources.writable
            if record.status in _ACTIVE and cap and used > cap:
                log.warning("container %s is past its writable-layer cap: killing it", record.id)
                with contextlib.suppress(DockyardError):
                    await self._manager.kill_over_cap(record.id, used)
        self._previous = started
        self.measured = now_ns()

    def _volume_dirs(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Path]:
        """The data dirs of the volumes ``keys`` names (those removed meanwhile left out)."""
        found = {}
        for tenant, name in keys:
            with contextlib.suppress(NotFound):
                found[tenant, name] = self._volumes.path(tenant=tenant, name=name)
        return found

    async def tenant_usage(self, tenant: str) -> TenantUsage:
        """The tenant's accounting on this host; volumes never measured are measured now."""
        if not _TENANT.match(tenant):
            raise InvalidArgument(f"invalid tenant id {tenant!r}")
        cgroup = Cgroup(self._manager.tenant_cgroup_path(tenant))
        memory, cpu = await asyncio.to_thread(read_tenant_cgroup, cgroup)
        records = [r for r in self._manager.records() if r.request.tenant == tenant]
        unmeasured = self._volume_dirs(
            key
            for key in await asyncio.to_thread(self._volumes.list_volumes)
            if key[0] == tenant and key not in self._volume_used
        )
        if unmeasured:
            self._volume_used.update(await asyncio.to_thread(_measure_all, unmeasured))
        return TenantUsage(
            tenant=tenant,
            memory=memory,
            cpu=cpu,
            containers_running=sum(r.status in _ACTIVE for r in records),
            writable=sum(self._manager.writable_used.get(r.id, 0) for r in records),
            volumes=sum(v for (t, _), v in self._volume_used.items() if t == tenant),
            measured=self.measured,
        )


def _measure_all(paths: dict[K, Path]) -> dict[K, int]:
    return {key: tree_usage(path) for key, path in paths.items()}
