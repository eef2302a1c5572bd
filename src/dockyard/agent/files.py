"""``docker cp``, ``export``, ``diff`` and ``commit`` for the containers of this host.

Copies and exports run in an archive child process that sees the container's root as the
container does, volumes and ``/etc`` files included, and nothing of the host
(:mod:`dockyard.runtime.rootview`, :mod:`dockyard.runtime.archive_child`); this module
says what that view holds for one container and keeps the container's files in place
while the child works: deleting the container aborts it first (:mod:`rootfs`).
``diff`` compares the container's upper dir with its layers on the host
(:mod:`dockyard.images.overlay_diff`), never following a tenant's symlink. ``commit``'s
layer is a tar of the upper dir made by an archive child whose root is that upper dir
(ADR 0017).

Works whether the container is created, running, paused or exited: its rootfs is mounted
on this host from create to delete. tmpfs mounts of a running container are not in the
view (as in Docker): paths below them resolve to the rootfs underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from dockyard.agent.bundle import INIT_PATH
from dockyard.agent.containers import ContainerManager
from dockyard.core.errors import Conflict, DockyardError, NotFound, Unavailable
from dockyard.core.protocol import FileChange, PathStat
from dockyard.core.serde import from_data
from dockyard.images.layers import LayerStore
from dockyard.images.overlay_diff import overlay_changes
from dockyard.runtime.archive import ArchiveProcess
from dockyard.runtime.archive_child import ArchiveRequest
from dockyard.runtime.archive_rules import container_path
from dockyard.runtime.rootview import Bind
from dockyard.volumes.local import LocalVolumes

__all__ = ["MAX_CHILDREN_PER_TENANT", "RUNTIME_PATHS", "ContainerFiles"]

# Archive children one tenant may have at once on this host (each is a Python process);
# more wait. Per tenant, so a tenant's stalled downloads only ever hold up its own copies.
MAX_CHILDREN_PER_TENANT = 8

# Mount points the runtime makes in every container; Docker keeps them in an init layer,
# so ``docker diff`` never lists them.
RUNTIME_PATHS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/sys", "/dev")


class _Job:
    """One archive child and the request task driving it, abortable before or after the
    child exists. Killing the child alone is not enough: the task may be stuck writing to
    a client that stopped reading, so it is cancelled too."""

    def __init__(self) -> None:
        self.aborted = False
        self._child: ArchiveProcess | None = None
        self._task = asyncio.current_task()

    def abort(self) -> None:
        self.aborted = True
        if self._child is not None:
            self._child.kill()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def attach(self, child: ArchiveProcess) -> None:
        self._child = child
        if self.aborted:
            child.kill()


class ContainerFiles:
    """File access to this host's containers for the agent protocol."""

    def __init__(
        self, *, manager: ContainerManager, volumes: LocalVolumes, layers: LayerStore
    ) -> None:
        self._manager = manager
        self._volumes = volumes
        self._layers = layers
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _request(self, container_id: str, op: str, **fields: object) -> tuple[str, ArchiveRequest]:
        """The tenant of the container and the child's request for ``op`` on it."""
        record = self._manager.record(container_id)
        if record.phase in ("creating", "deleting"):
            doing = "created" if record.phase == "creating" else "removed"
            raise Conflict(f"container {container_id} is being {doing}")
        req = record.request
        paths = self._manager.paths(container_id)
        binds = [
            Bind(str(paths.hostname), "/etc/hostname", directory=False),
            Bind(str(paths.hosts), "/etc/hosts", directory=False),
            Bind(str(paths.resolv_conf), "/etc/resolv.conf", directory=False),
        ]
        for mount in req.mounts:
            if mount.type == "volume":
                with contextlib.suppress(NotFound):
                    source = self._volumes.path(tenant=req.tenant, name=mount.source)
                    binds.append(Bind(str(source), mount.target, read_only=mount.read_only))
        return req.tenant, ArchiveRequest(
            op=op,
            # A commit's layer is the upper dir alone: the child's view is rooted there.
            rootfs=str(paths.upper if op == "layer" else paths.rootfs),
            uid_base=req.uid_base,
            uid_size=req.uid_size,
            binds=tuple(binds),
            read_only_root=req.readonly_rootfs,
            spool_dir=str(paths.data),
            **fields,  # type: ignore[arg-type]
        )

    @contextlib.asynccontextmanager
    async def _run(
        self, container_id: str, op: str, **fields: object
    ) -> AsyncIterator[ArchiveProcess]:
        tenant, request = self._request(container_id, op, **fields)
        job = _Job()
        slots = self._slots.setdefault(tenant, asyncio.Semaphore(MAX_CHILDREN_PER_TENANT))
        # No await between finding the record and holding its rootfs: a deletion either
        # happened before (NotFound above) or sees this holder and aborts it.
        with self._manager.rootfs_users.hold(container_id, job.abort):
            async with slots:
                child = await ArchiveProcess.start(request)
                job.attach(child)
                try:
                    yield child
                except DockyardError as exc:
                    if job.aborted:
                        raise NotFound(f"No such container: {container_id}") from exc
                    raise
                finally:
                    await child.close()

    async def stat(self, container_id: str, path: str) -> PathStat:
        """The path as ``docker cp`` sees it; NotFound if it does not exist."""
        container_path(path)
        async with self._run(container_id, "stat", path=path) as child:
            return from_data(PathStat, (await child.answer())["stat"])

    @contextlib.asynccontextmanager
    async def archive(
        self, container_id: str, path: str
    ) -> AsyncIterator[tuple[PathStat, AsyncIterator[bytes]]]:
        """The path's stat and a tar of it, streamed while the ``with`` block lasts."""
        container_path(path)
        async with self._run(container_id, "get", path=path) as child:
            found = from_data(PathStat, (await child.answer())["stat"])
            yield found, child.chunks()

    @contextlib.asynccontextmanager
    async def export(self, container_id: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """A tar of the container's root filesystem (volumes not included)."""
        async with self._run(container_id, "export") as child:
            await child.answer()
            yield child.chunks()

    @contextlib.asynccontextmanager
    async def layer(self, container_id: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """``docker commit``: the container's writable layer as a Docker layer tar
        (whiteouts, opaque directories, container ids; the runtime's mount points left
        out), streamed while the ``with`` block lasts. The caller pauses the container
        if it wants a consistent copy."""
        record = self._manager.record(container_id)
        ignore = RUNTIME_PATHS + ((INIT_PATH,) if record.request.init else ())
        async with self._run(container_id, "layer", ignore=ignore) as child:
            await child.answer()
            yield child.chunks()

    async def extract(
        self,
        container_id: str,
        path: str,
        body: AsyncIterator[bytes],
        *,
        keep_ids: bool,
        no_overwrite_dir_non_dir: bool,
    ) -> None:
        """Extract the tar ``body`` into the directory ``path``. Nothing is written unless
        the whole body arrives and every entry passes the checks of
        :mod:`dockyard.runtime.archive_rules`."""
        container_path(path)
        async with self._run(
            container_id,
            "put",
            path=path,
            keep_ids=keep_ids,
            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        ) as child:
            await child.feed(body)
            await child.answer()
        # Measured anew in the next round, running or not: a copy grows the writable layer
        # (or a volume) like a write from inside does.
        self._manager.writable_used.pop(container_id, None)

    async def changes(self, container_id: str) -> list[FileChange]:
        """``docker diff``: what the container changed over its image."""
        record = self._manager.record(container_id)
        req = record.request
        upper = self._manager.paths(container_id).upper
        # Topmost first, each layer once at its topmost place.
        lowers = [self._layers.path(diff_id) for diff_id in dict.fromkeys(reversed(req.layers))]
        ignore = frozenset(RUNTIME_PATHS + ((INIT_PATH,) if req.init else ()))
        with self._manager.rootfs_users.hold(container_id, lambda: None):
            try:
                found = await asyncio.to_thread(
                    overlay_changes, upper, lowers, uid_shift=req.uid_base, ignore=ignore
                )
            except FileNotFoundError as exc:
                raise NotFound(f"No such container: {container_id}") from exc
            except OSError as exc:
                raise Unavailable(f"cannot read the changes of {container_id}: {exc}") from exc
        return [FileChange(path=path, kind=kind.value) for path, kind in found]
