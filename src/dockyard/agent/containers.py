"""The agent's container lifecycle: create, start, stop, kill, pause, delete, and exits.

Lifecycle of one container on this host::

    create ──> created ──start──> running <──pause/unpause──> paused
                  ^                  │ exit (conmon writes exits/<id>)
                  └──── start ─── exited ──delete──> (gone)

Every transition is saved to the container's record (:mod:`records`) before it is reported,
and every step that fails undoes what it made. Operations on one container are serialised
by its lock; waiting for an exit happens outside the lock so the exit can be processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import resource
import shutil
import signal as signals
import stat
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dockyard.agent.attach import AttachOptions, connect, pump
from dockyard.agent.blobs import ControllerBlobs
from dockyard.agent.bundle import Peer, bundle_spec, write_etc_files
from dockyard.agent.events import EventLog
from dockyard.agent.execs import ExecManager, remove_execs, resize_terminal
from dockyard.agent.health import MAX_OUTPUT, HealthChecker, timed_probe
from dockyard.agent.logs import LogKeeper
from dockyard.agent.records import AgentRecord, load_record, save_record
from dockyard.agent.rootfs import RootfsUsers
from dockyard.core.clock import now_ns
from dockyard.core.disk import tree_size
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    QuotaExceeded,
    Unavailable,
)
from dockyard.core.layout import Layout
from dockyard.core.protocol import (
    ContainerSize,
    ContainerStatus,
    CreateRequest,
    EndpointSpec,
    HealthcheckSpec,
    HealthResult,
    HealthState,
    NetworkSpec,
    Resources,
)
from dockyard.core.signals import parse_signal
from dockyard.core.units import format_bytes
from dockyard.images.layers import LayerStore
from dockyard.images.snapshot import Snapshotter
from dockyard.network.host import HostNetwork, connected_endpoints, remaining_endpoints
from dockyard.network.ingress import check_ingress, merge_spec
from dockyard.network.names import endpoint_interface
from dockyard.runtime.base import CreateOptions, Runtime
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.paths import BundlePaths
from dockyard.runtime.safepath import makedirs_in_root, open_in_root, read_in_root
from dockyard.runtime.spec import build_config, linux_resources
from dockyard.runtime.users import resolve_user
from dockyard.volumes.local import LocalVolumes
from dockyard.wire.hijack import HijackedStream

__all__ = ["AgentSettings", "ContainerManager"]

_ATTACH_READY_TIMEOUT = 5.0
_MAX_PREPARED = 64  # created-but-not-started containers whose runtime is made ahead


@dataclass(frozen=True, slots=True)
class AgentSettings:
    layout: Layout
    init_binary: Path = Path("/usr/bin/tini-static")
    host_resolv: Path = Path("/etc/resolv.conf")
    seccomp: dict[str, Any] | None = None
    seccomp_program: str = ""


class _PendingAttach:
    """A client attached before start: it connects to conmon between create and start."""

    def __init__(self, client: HijackedStream, options: AttachOptions) -> None:
        self.client = client
        self.options = options
        self.socket_path: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self.connected = asyncio.Event()


class ContainerManager:
    """Owns every container on this host for one Dockyard instance."""

    def __init__(
        self,
        *,
        settings: AgentSettings,
        runtime: Runtime,
        layers: LayerStore,
        snapshotter: Snapshotter,
        network: HostNetwork,
        volumes: LocalVolumes,
        blobs: ControllerBlobs,
        events: EventLog,
        execs: ExecManager,
    ) -> None:
        self._settings = settings
        self._layout = settings.layout
        self._runtime = runtime
        self._layers = layers
        self._snapshotter = snapshotter
        self._network = network
        self._volumes = volumes
        self._blobs = blobs
        self.events = events
        self._execs = execs
        self._health = HealthChecker(
            probe=self._probe, report=self._health_report, active=self._probe_now
        )
        self.logs = LogKeeper(self.paths)
        self._records: dict[str, AgentRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._pending: dict[str, list[_PendingAttach]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self._prepared: dict[str, asyncio.Task[int]] = {}
        self.writable_used: dict[str, int] = {}
        """Bytes each container's writable layer held when last measured (agent.usage)."""
        self._exit_reasons: dict[str, str] = {}  # why the agent itself killed a container
        self.rootfs_users = RootfsUsers()  # docker cp and export at work in a rootfs
        self._nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if self._nofile == resource.RLIM_INFINITY:
            self._nofile = 1 << 20
        self._nofile = min(self._nofile, 1 << 20)

    # helpers -----------------------------------------------------------------------------

    def paths(self, container_id: str) -> BundlePaths:
        return BundlePaths(
            bundle=self._layout.bundles_dir / container_id,
            data=self._layout.containers_dir / container_id,
            exits_dir=self._layout.exits_dir,
        )

    def _get(self, container_id: str) -> AgentRecord:
        try:
            return self._records[container_id]
        except KeyError:
            raise NotFound(f"No such container: {container_id}") from None

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _exit_event(self, container_id: str) -> asyncio.Event:
        return self._exited.setdefault(container_id, asyncio.Event())

    def _save(self, record: AgentRecord) -> None:
        save_record(self.paths(record.id).state_file, record)

    def _cgroup(self, record: AgentRecord) -> Cgroup:
        return Cgroup(self._cgroups_path(record.request))

    def _cgroups_path(self, req: CreateRequest) -> str:
        return f"{self.tenant_cgroup_path(req.tenant)}/{req.id}"

    def tenant_cgroup_path(self, tenant: str) -> str:
        """The parent cgroup of every container of ``tenant`` on this host."""
        return f"{self._layout.cgroup_root}/{tenant[:16]}"

    def records(self) -> list[AgentRecord]:
        """Every container on this host (a snapshot)."""
        return list(self._records.values())

    def status(self, container_id: str) -> ContainerStatus:
        return self._get(container_id).status_message()

    def statuses(self) -> list[ContainerStatus]:
        return [r.status_message() for r in self._records.values()]

    def record(self, container_id: str) -> AgentRecord:
        return self._get(container_id)

    def is_active(self, container_id: str) -> bool:
        """Whether the container exists here and is running or paused."""
        record = self._records.get(container_id)
        return record is not None and record.status in ("running", "paused")

    # create ------------------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> ContainerStatus:
        """Prepare the bundle: layers present, rootfs mounted, volumes and /etc files ready."""
        if req.id in self._records:
            raise AlreadyExists(f"container {req.id} already exists on this host")
        if not req.layers:
            raise InvalidArgument("an image needs at least one layer")
        record = AgentRecord(request=req, phase="creating")
        paths = self.paths(req.id)
        async with self._lock(req.id):
            self._records[req.id] = record
            try:
                # No record is saved until the bundle is ready: after a crash, a data
                # directory without one is a half-done create, which recovery removes.
                paths.data.mkdir(mode=0o711, parents=True)
                paths.bundle.mkdir(mode=0o711, parents=True)
                await self._prepare(record, paths)
            except BaseException:
                self._records.pop(req.id, None)
                await self._discard_bundle(paths)
                raise
            record.phase = ""
            self._save(record)
            # A container joining another's network learns the peer's process at start.
            if len(self._prepared) < _MAX_PREPARED and req.network.mode != "container":
                self._prepared[req.id] = self._spawn_pid(self._create_runtime(record))
        return record.status_message()

    async def _prepare(self, record: AgentRecord, paths: BundlePaths) -> None:
        req = record.request
        await self._mount_rootfs(req, paths)
        for mount in req.mounts:
            if mount.type != "volume":
                continue
            data = await asyncio.to_thread(
                self._volumes.create,
                tenant=req.tenant,
                name=mount.source,
                uid_base=req.uid_base,
                options={},
            )
            if mount.copy_up:
                await _copy_up(paths.rootfs, mount.target, data)
        write_etc_files(paths, req, host_resolv=self._settings.host_resolv)

    async def _mount_rootfs(self, req: CreateRequest, paths: BundlePaths) -> None:
        missing = [d for d in dict.fromkeys(req.layers) if not self._layers.has(d)]
        for diff_id in missing:
            opener = functools.partial(self._blobs.open, diff_id)
            await asyncio.to_thread(self._layers.ensure, diff_id, opener)
        await asyncio.to_thread(
            self._snapshotter.mount_rootfs,
            layers=list(req.layers),
            uid_base=req.uid_base,
            uid_size=req.uid_size,
            upper=paths.upper,
            work=paths.work,
            target=paths.rootfs,
        )

    async def _before_restart(self, record: AgentRecord, paths: BundlePaths) -> None:
        """Ready a container for a start without a runtime container made ahead: the
        last run's cleanup finished, and the bundle made again when it is gone (its
        tmpfs does not outlive a reboot, while the container's record, writable layer,
        volumes and logs do)."""
        await self._settle(record.id)
        if self._runtime.exists(record.id):  # left over if the agent died mid-cleanup
            await self._runtime.delete(record.id, force=True)
        if os.path.ismount(paths.rootfs):
            return
        paths.bundle.mkdir(mode=0o711, parents=True, exist_ok=True)
        # The /etc files first: a mounted rootfs is what says the bundle is complete.
        write_etc_files(paths, record.request, host_resolv=self._settings.host_resolv)
        await self._mount_rootfs(record.request, paths)

    async def _discard_bundle(self, paths: BundlePaths) -> None:
        await asyncio.to_thread(self._snapshotter.unmount_rootfs, paths.rootfs)
        with contextlib.suppress(FileNotFoundError):
            paths.exit_file.unlink()
        await asyncio.to_thread(_remove_bundle, paths)

    # start -------------------------------------------------------------------------------

    async def start(self, container_id: str) -> ContainerStatus:
        async with self._lock(container_id):
            record = self._get(container_id)
            if record.status in ("running", "paused"):
                raise Conflict(f"container {container_id} is already running")
            self._check_writable(record)
            await self._start_locked(record)
            return record.status_message()

    def _check_writable(self, record: AgentRecord) -> None:
        """QuotaExceeded if the writable layer was last measured past its cap."""
        used = self.writable_used.get(record.id, 0)
        cap = record.request.resources.writable
        if cap and used > cap:
            raise QuotaExceeded(
                f"the writable layer of container {record.id[:12]} holds {format_bytes(used)}, "
                f"more than the {format_bytes(cap)} its size allows: copy out what you need "
                "and remove it, or give it a larger size (docker update -m)"
            )

    async def kill_over_cap(self, container_id: str, used: int) -> None:
        """Kill a running container whose writable layer holds ``used`` bytes, past its
        cap; the exit carries the reason as its error (the disk's OOM kill)."""
        record = self._get(container_id)
        cap = record.request.resources.writable
        self._exit_reasons[container_id] = (
            f"killed: the writable layer held {format_bytes(used)}, more than the "
            f"{format_bytes(cap)} its size allows"
        )
        try:
            await self.kill(container_id, signals.SIGKILL)
        except (Conflict, NotFound):
            self._exit_reasons.pop(container_id, None)

    async def _create_runtime(self, record: AgentRecord, peer: Peer | None = None) -> int:
        """Write config.json and have conmon run ``crun create``: the process exists,
        stopped before exec, until :meth:`_start_locked` releases it. ``peer``: the
        container whose network it joins (mode ``container``)."""
        req = record.request
        paths = self.paths(record.id)
        self._write_config(record, paths, peer)
        return await self._runtime.create(
            paths,
            CreateOptions(
                stdin=req.process.open_stdin,
                terminal=req.process.tty,
                # Docker closes stdin after the first attach only without a TTY: detaching
                # from `docker run -it` must not end the shell.
                leave_stdin_open=req.process.open_stdin
                and (req.process.tty or not req.process.stdin_once),
                log_size_max=self.logs.prepare_run(record.id, req),
            ),
        )

    async def _unprepare(self, container_id: str) -> None:
        """Drop a runtime container made ahead of start (its config may be stale)."""
        task = self._prepared.pop(container_id, None)
        if task is None:
            return
        with contextlib.suppress(Exception):
            await task
        with contextlib.suppress(DockyardError):
            await self._runtime.delete(container_id, force=True)

    async def _start_locked(self, record: AgentRecord) -> None:
        req = record.request
        paths = self.paths(record.id)
        # A first start finds the runtime container made right after create (creating
        # it takes most of a start; doing it early overlaps it with the client's next
        # requests). Later starts create it now.
        prepared = self._prepared.pop(record.id, None)
        if prepared is None:
            await self._before_restart(record, paths)
        self._exit_event(record.id).clear()
        record.phase = "starting"
        record.error = ""
        self._save(record)
        pid = 0
        try:
            peer, joined = None, (0, 0)
            if req.network.mode == "container":
                peer = self._network_peer(req)
                joined = _namespaces(peer.pid)
            pid = await (prepared if prepared is not None else self._create_runtime(record, peer))
            if peer is not None:
                _check_joined(pid, joined, req.network.peer)
            record.ports = await self._network.attach(
                container_id=record.id, pid=pid, spec=req.network
            )
            await self._release_pending(record, paths)
            await self._runtime.start(record.id)
        except BaseException as exc:
            if pid or prepared is not None:
                with contextlib.suppress(DockyardError):
                    await self._runtime.delete(record.id, force=True)
                with contextlib.suppress(DockyardError):
                    await self._network.detach(container_id=record.id)
            with contextlib.suppress(FileNotFoundError):
                paths.exit_file.unlink()
            record.phase = ""
            record.ports = {}
            record.error = exc.message if isinstance(exc, DockyardError) else str(exc)
            self._save(record)
            raise
        record.status = "running"
        record.phase = ""
        record.pid = pid
        record.exit_code = 0
        record.oom_killed = False
        record.started_at = now_ns()
        record.finished_at = 0
        record.health = None if req.healthcheck is None else HealthState()
        self._save(record)
        self.events.emit("start", record.status_message())
        self.logs.run_started(record.id)
        self._watch_health(record)
        if paths.exit_file.exists():  # exited before we were watching for it
            self._schedule_exit(record.id)

    def _network_peer(self, req: CreateRequest) -> Peer:
        """The running container whose network ``req`` joins (mode ``container``), with
        the /etc files and host name of the first container of the chain, which owns
        them. ``FailedPrecondition`` unless it runs here, for the same tenant."""
        peer_id = req.network.peer
        record = self._records.get(peer_id)
        if peer_id == req.id:
            raise FailedPrecondition("cannot join the network of the container itself")
        if (
            record is None
            or record.request.tenant != req.tenant
            or record.status not in ("running", "paused")
            or record.phase
            or not record.pid
        ):
            raise FailedPrecondition(
                f"cannot join the network of container {peer_id[:12]}: it is not running"
            )
        if record.request.uid_base != req.uid_base:
            raise FailedPrecondition(
                f"cannot join the network of container {peer_id[:12]}: other user namespace"
            )
        owner = record
        for _ in range(len(self._records)):
            if owner.request.network.mode != "container":
                break
            upstream = self._records.get(owner.request.network.peer)
            if upstream is None:
                break
            owner = upstream
        return Peer(
            pid=record.pid,
            paths=self.paths(owner.id),
            hostname=owner.request.hostname,
            domainname=owner.request.domainname,
        )

    # endpoints ---------------------------------------------------------------------------

    async def connect(self, container_id: str, endpoint: EndpointSpec) -> None:
        """Add ``endpoint`` to the container's networks and record it, so a restarted
        agent restores it and the next start plumbs it. A running or paused container
        gets the interface now; a stopped one at its next start. If its interface name
        is taken in the container it gets the lowest free ``ethN`` (the controller names
        it from the number of endpoints, and a disconnect may have left a gap). It comes
        first in the record if it becomes the primary endpoint
        (:func:`dockyard.network.host.connected_endpoints`).

        Raises ``FailedPrecondition`` unless the container is on tenant networks,
        ``AlreadyExists`` if the endpoint id is taken, ``InvalidArgument`` for a
        malformed endpoint.
        """
        endpoint_interface(endpoint)
        async with self._lock(container_id):
            record = self._get(container_id)
            net = record.request.network
            if net.mode != "tenant":
                raise FailedPrecondition(
                    f"container {container_id[:12]} is not on tenant networks "
                    f"(network mode {net.mode})"
                )
            for existing in net.endpoints:
                if existing.endpoint_id == endpoint.endpoint_id:
                    raise AlreadyExists(f"endpoint {endpoint.endpoint_id} is already connected")
            taken = {e.interface for e in net.endpoints}
            if endpoint.interface in taken:
                free = next(f"eth{n}" for n in itertools.count() if f"eth{n}" not in taken)
                endpoint = replace(endpoint, interface=free)
            if self._plumbed(record):
                await self._network.connect(
                    container_id=container_id, pid=record.pid, endpoint=endpoint
                )
            endpoints = connected_endpoints(net.endpoints, endpoint)  # as plumbed
            record.request = replace(record.request, network=replace(net, endpoints=endpoints))
            self._save(record)
            self._primary_changed(record, net)

    async def disconnect(self, container_id: str, endpoint_id: str) -> None:
        """Remove endpoint ``endpoint_id`` from the container's networks and its record;
        a running or paused container loses the interface now. If it was the primary
        endpoint, another takes its place (:func:`dockyard.network.host.remaining_endpoints`).

        Raises ``NotFound`` if the container has no such endpoint.
        """
        async with self._lock(container_id):
            record = self._get(container_id)
            net = record.request.network
            # The primary endpoint first, as the plumbing has it (a start or a restore
            # plumbs from this order).
            kept = remaining_endpoints(net.endpoints, endpoint_id)
            if len(kept) == len(net.endpoints):
                raise NotFound(f"container {container_id[:12]} has no endpoint {endpoint_id}")
            if self._plumbed(record):
                await self._network.disconnect(container_id=container_id, endpoint_id=endpoint_id)
            record.request = replace(record.request, network=replace(net, endpoints=kept))
            self._save(record)
            self._primary_changed(record, net)

    async def update_network(self, container_id: str, spec: NetworkSpec) -> None:
        """Take the security groups, ingress rules and public IP of ``spec`` (the
        container's whole network spec, as the controller has it now): applied at once if
        the container runs or is paused, kept in its record for its next starts and for
        a restarted agent. Endpoints change only through :meth:`connect` and
        :meth:`disconnect` (see :func:`dockyard.network.ingress.merge_spec`). Idempotent.

        Raises ``NotFound`` for an unknown container, ``InvalidArgument`` for malformed
        rules, groups or addresses (nothing is kept then), ``Unavailable`` if the kernel
        refuses (the record keeps the previous spec).
        """
        async with self._lock(container_id):
            record = self._get(container_id)
            merged = merge_spec(record.request.network, spec)
            if merged.mode == "tenant":
                check_ingress(merged)
            if merged == record.request.network:
                return
            if self._plumbed(record) and merged.mode == "tenant":
                await self._network.update(container_id=container_id, spec=merged)
            record.request = replace(record.request, network=merged)
            self._save(record)

    def _primary_changed(self, record: AgentRecord, before: NetworkSpec) -> None:
        """Rewrite the container's /etc/hosts and /etc/resolv.conf if its primary
        endpoint changed: its DNS server is the gateway of that network and its own
        entry that address (the files are bind-mounted: rewritten in place, a running
        container sees them at once; a start does not rewrite them)."""
        now = record.request.network.endpoints
        if (now[0] if now else None) == (before.endpoints[0] if before.endpoints else None):
            return
        paths = self.paths(record.id)
        if paths.resolv_conf.exists():
            write_etc_files(paths, record.request, host_resolv=self._settings.host_resolv)

    @staticmethod
    def _plumbed(record: AgentRecord) -> bool:
        return record.status in ("running", "paused") and not record.phase

    def _write_config(self, record: AgentRecord, paths: BundlePaths, peer: Peer | None) -> None:
        req = record.request
        passwd = _read_optional(paths.rootfs, "/etc/passwd")
        group = _read_optional(paths.rootfs, "/etc/group")
        user = resolve_user(
            req.process.user, passwd=passwd, group=group, group_add=req.process.group_add
        )
        if req.process.cwd and req.process.cwd != "/":
            makedirs_in_root(paths.rootfs, req.process.cwd, uid=req.uid_base, gid=req.uid_base)
        volumes = {
            m.source: self._volumes.path(tenant=req.tenant, name=m.source)
            for m in req.mounts
            if m.type == "volume"
        }
        spec = bundle_spec(
            req,
            paths=paths,
            user=user,
            volumes=volumes,
            cgroups_path=self._cgroups_path(req),
            seccomp=self._settings.seccomp,
            seccomp_program=self._settings.seccomp_program,
            nofile=self._nofile,
            init_binary=self._settings.init_binary,
            peer=peer,
        )
        record.uid, record.gid = user.uid, user.gid
        tmp = paths.config.with_suffix(".tmp")
        tmp.write_text(json.dumps(build_config(spec)))
        os.replace(tmp, paths.config)

    async def _release_pending(self, record: AgentRecord, paths: BundlePaths) -> None:
        """Let clients that attached before start connect now, before any output exists."""
        waiting = self._pending.pop(record.id, [])
        for pending in waiting:
            if not pending.socket_path.done():
                pending.socket_path.set_result(paths.attach_socket)
        for pending in waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.connected.wait(), _ATTACH_READY_TIMEOUT)

    # exits -------------------------------------------------------------------------------

    def exit_file_written(self, name: str) -> None:
        """inotify callback: conmon wrote ``exits/<name>``."""
        if name in self._records:
            self._schedule_exit(name)

    def _schedule_exit(self, container_id: str) -> None:
        self._spawn(self._process_exit(container_id))

    async def _process_exit(self, container_id: str) -> None:
        async with self._lock(container_id):
            record = self._records.get(container_id)
            if record is None or record.status not in ("running", "paused"):
                return
            paths = self.paths(container_id)
            code = _read_exit_code(paths.exit_file)
            if code is None:
                return
            # conmon writes the exit file before it has drained the container's last
            # output into the log; it exits once it has. Reporting the exit earlier would
            # let `docker run` read the logs short of their end.
            await _wait_for_monitor(paths)
            await self._finish(
                record,
                code=code,
                when=_mtime_ns(paths.exit_file),
                error=self._exit_reasons.pop(container_id, ""),
            )
        if record.request.auto_remove:
            # --rm: the container goes right after its exit is reported, whether or not
            # the controller is there to ask (as Docker's daemon does it). Yield first, so
            # the event streams send the exit out before the removal holds the loop (the
            # controller learnt of it ~2 ms later otherwise).
            await asyncio.sleep(0)
            await self.delete(container_id, force=True)

    async def _finish(self, record: AgentRecord, *, code: int, when: int, error: str = "") -> None:
        """Record an exit, report it, then free the runtime state, cgroup and network.

        The report goes first: waiters (``docker run``) learn of the exit without waiting
        for the cleanup, which still completes before the lock is released. The OOM state
        is read before the cgroup goes.
        """
        record.oom_killed = self._cgroup(record).oom_killed()
        self._health.stop(record.id)
        self._network.unpublish(container_id=record.id)  # its ports are free on return
        record.status = "exited"
        record.exit_code = code
        record.finished_at = when or now_ns()
        record.pid = 0
        record.ports = {}
        record.error = error
        self._save(record)
        if record.oom_killed:
            self.events.emit("oom", record.status_message())
        self.events.emit("exit", record.status_message())
        self._exit_event(record.id).set()
        self.logs.run_ended(record.id)
        # Cleanup runs on its own so a removal right after the exit need not wait for it;
        # the next start of this container does (see _settle).
        self._releasing[record.id] = self._spawn(self._release_runtime(record))

    async def _settle(self, container_id: str) -> None:
        """Wait for the cleanup of the container's previous run, if one is under way."""
        task = self._releasing.pop(container_id, None)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _release_runtime(self, record: AgentRecord) -> None:
        """Free what a run held: crun's state, the cgroup, the network attachment."""
        with contextlib.suppress(DockyardError):
            await self._runtime.delete(record.id, force=True)
        await remove_execs(self.paths(record.id))  # Docker forgets a stopped container's execs
        await asyncio.to_thread(self._cgroup(record).remove)
        with contextlib.suppress(DockyardError):
            await self._network.detach(container_id=record.id)

    async def wait_exit(self, container_id: str, timeout: float | None = None) -> bool:
        """Wait until the container is not running; False on timeout."""
        record = self._get(container_id)
        if record.status not in ("running", "paused"):
            return True
        try:
            await asyncio.wait_for(self._exit_event(container_id).wait(), timeout)
        except TimeoutError:
            return False
        return True

    # signals -----------------------------------------------------------------------------

    async def kill(self, container_id: str, signal: str | int = "SIGKILL") -> None:
        number = parse_signal(signal)
        async with self._lock(container_id):
            record = self._get(container_id)
            if record.status not in ("running", "paused"):
                raise Conflict(f"Container {container_id} is not running")
            await self._runtime.kill(container_id, number)
            if record.status == "paused" and number == signals.SIGKILL:
                await self._runtime.resume(container_id)

    async def stop(self, container_id: str, *, signal: str, timeout: int) -> ContainerStatus:
        """Send ``signal``; after ``timeout`` seconds (negative: never) send SIGKILL."""
        record = self._get(container_id)
        if record.status in ("running", "paused"):
            number = parse_signal(signal or "SIGTERM")
            with contextlib.suppress(Conflict):
                async with self._lock(container_id):
                    await self._runtime.kill(container_id, number)
                    if record.status == "paused":
                        await self._runtime.resume(container_id)
                        record.status = "running"
                        self._save(record)
            if not await self.wait_exit(container_id, None if timeout < 0 else float(timeout)):
                with contextlib.suppress(Conflict):
                    await self.kill(container_id, signals.SIGKILL)
                await self.wait_exit(container_id)
        return self._get(container_id).status_message()

    async def pause(self, container_id: str) -> ContainerStatus:
        async with self._lock(container_id):
            record = self._get(container_id)
            if record.status == "paused":
                raise Conflict(f"Container {container_id} is already paused")
            if record.status != "running":
                raise Conflict(f"Container {container_id} is not running")
            await self._runtime.pause(container_id)
            record.status = "paused"
            self._save(record)
            self.events.emit("pause", record.status_message())
            return record.status_message()

    async def unpause(self, container_id: str) -> ContainerStatus:
        async with self._lock(container_id):
            record = self._get(container_id)
            if record.status != "paused":
                raise Conflict(f"Container {container_id} is not paused")
            await self._runtime.resume(container_id)
            record.status = "running"
            self._save(record)
            self.events.emit("unpause", record.status_message())
            return record.status_message()

    async def update(self, container_id: str, resources: Resources) -> ContainerStatus:
        async with self._lock(container_id):
            record = self._get(container_id)
            await self._unprepare(container_id)  # made with the old limits
            record.request = replace(record.request, resources=resources)
            if record.status in ("running", "paused"):
                await self._runtime.update(container_id, linux_resources(resources))
            self._save(record)
            return record.status_message()

    # delete ------------------------------------------------------------------------------

    async def delete(self, container_id: str, *, force: bool) -> None:
        record = self._get(container_id)
        if record.status in ("running", "paused"):
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {container_id}. "
                    "Stop the container before attempting removal or force remove"
                )
            await self.stop(container_id, signal="SIGKILL", timeout=-1)
        async with self._lock(container_id):
            if container_id not in self._records:
                return
            for pending in self._pending.pop(container_id, []):
                pending.client.close()
            await self._unprepare(container_id)
            # From here the container is gone for callers; its files go in the background.
            # The phase survives a crash: recovery finishes the job.
            record.phase = "deleting"
            self._save(record)
            self._records.pop(container_id, None)
            self.writable_used.pop(container_id, None)
            self._exit_reasons.pop(container_id, None)
            self._exit_event(container_id).set()
            self.logs.forget(container_id)
        self._locks.pop(container_id, None)
        self._exited.pop(container_id, None)
        self._spawn(self._dispose(record))

    async def _dispose(self, record: AgentRecord) -> None:
        """Remove everything a deleted container left on the host."""
        await self.rootfs_users.evict(record.id)  # copies in flight end before the unmount
        await self._settle(record.id)
        await self._release_runtime(record)
        await self._discard_bundle(self.paths(record.id))

    def _spawn_pid(self, coro: Coroutine[Any, Any, int]) -> asyncio.Task[int]:
        task = asyncio.get_running_loop().create_task(coro)
        # Its outcome is read by start (or dropped by delete); never log it twice.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_task_failure)
        return task

    async def drain(self) -> None:
        """Wait for background cleanups (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # inspection --------------------------------------------------------------------------

    async def size(self, container_id: str) -> ContainerSize:
        record = self._get(container_id)
        upper = await asyncio.to_thread(tree_size, self.paths(container_id).upper)
        layers = sum(self._layers.size(d) for d in dict.fromkeys(record.request.layers))
        return ContainerSize(size_rw=upper, size_root_fs=upper + layers)

    def cgroup(self, container_id: str) -> Cgroup:
        """The container's cgroup (it exists while the container runs)."""
        return self._cgroup(self._get(container_id))

    def pids(self, container_id: str) -> list[int]:
        record = self._get(container_id)
        if record.status not in ("running", "paused"):
            raise Conflict(f"Container {container_id} is not running")
        return self._cgroup(record).pids()

    # attach ------------------------------------------------------------------------------

    async def attach(
        self, container_id: str, client: HijackedStream, options: AttachOptions
    ) -> None:
        """Stream the container's stdio to ``client`` until its output ends.

        A client attaching before start waits for the next start and is connected before
        the process runs, so it sees all output (what ``docker run`` relies on).
        """
        record = self._get(container_id)
        options.tty = record.request.process.tty
        if record.status in ("running", "paused") and not record.phase:
            sock = await connect(self.paths(container_id).attach_socket)
        else:
            pending = _PendingAttach(client, options)
            self._pending.setdefault(container_id, []).append(pending)
            try:
                waiter: asyncio.Future[Path] = asyncio.ensure_future(pending.socket_path)
                closed: asyncio.Future[None] = asyncio.ensure_future(client.wait_closed())
                either: set[asyncio.Future[Any]] = {waiter, closed}
                done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
                if waiter not in done:
                    waiter.cancel()
                    return
                sock = await connect(waiter.result())
            finally:
                pending.connected.set()
                with contextlib.suppress(ValueError):
                    self._pending.get(container_id, []).remove(pending)
        await pump(sock, client, options)

    def resize(self, container_id: str, *, height: int, width: int) -> None:
        """Resize the container's terminal (``docker run -it`` follows the client's)."""
        record = self._get(container_id)
        if not record.request.process.tty:
            raise InvalidArgument(f"container {container_id} has no TTY to resize")
        if record.status not in ("running", "paused"):
            raise Conflict(f"Container {container_id} is not running")
        resize_terminal(self.paths(container_id).ctl_fifo, height=height, width=width)

    # health ------------------------------------------------------------------------------

    def _watch_health(self, record: AgentRecord) -> None:
        spec = record.request.healthcheck
        if spec is not None:
            self._health.watch(record.id, spec, started_at=record.started_at)

    def _probe_now(self, container_id: str) -> bool:
        record = self._records.get(container_id)
        return record is not None and record.status == "running" and not record.phase

    async def _probe(self, container_id: str, spec: HealthcheckSpec) -> HealthResult:
        paths = self.paths(container_id)
        return await timed_probe(
            lambda: self._execs.run_captured(paths, spec.args, limit=MAX_OUTPUT),
            timeout=spec.timeout / 1e9,
        )

    def _health_report(self, container_id: str, state: HealthState) -> None:
        record = self._records.get(container_id)
        if record is None or record.status != "running":
            return
        record.health = state
        self._save(record)
        self.events.emit("health", record.status_message())

    # recovery ----------------------------------------------------------------------------

    async def recover(self) -> None:
        """Re-adopt containers after an agent restart; roll back half-done work.

        Running containers keep running (conmon holds them): their records are reloaded,
        their port reservations re-taken. Exits that happened while the agent was away are
        processed from conmon's exit files. Containers without a readable record, or
        caught mid-create, are removed, as are bundles without a container; a container
        caught mid-start is stopped and reported with the error. A bundle that is gone
        (after a reboot) is made again at the container's next start.
        """
        root = self._layout.containers_dir
        root.mkdir(parents=True, exist_ok=True)
        self._layout.bundles_dir.mkdir(parents=True, exist_ok=True)
        known_runtime = set(await self._runtime.list_ids())
        for bundle in sorted(p for p in root.iterdir() if p.is_dir()):
            paths = self.paths(bundle.name)
            try:
                record = load_record(paths.state_file)
            except (OSError, ValueError, DockyardError):
                await self._runtime.delete(bundle.name, force=True)
                await self._discard_bundle(paths)
                continue
            if record.phase in ("creating", "deleting"):
                await self._dispose(record)
                continue
            self._records[record.id] = record
            await self._adopt(record, paths)
            self.logs.recover(record.id, record.request, running=self.is_active(record.id))
        bundles = self._layout.bundles_dir
        for stray_bundle in sorted(p for p in bundles.iterdir() if p.name not in self._records):
            # A create that died before its data directory existed.
            await self._discard_bundle(self.paths(stray_bundle.name))
        for stray in known_runtime - set(self._records):
            with contextlib.suppress(DockyardError):
                await self._runtime.delete(stray, force=True)
        await self._network.cleanup(
            keep={
                r.id
                for r in self._records.values()
                if r.status in ("running", "paused") and r.id not in self._exit_reasons
            }
        )

    async def _adopt(self, record: AgentRecord, paths: BundlePaths) -> None:
        if record.phase == "starting":
            with contextlib.suppress(DockyardError):
                await self._runtime.delete(record.id, force=True)
            record.phase = ""
            record.error = "the agent restarted while the container was starting"
            record.status = "exited" if record.started_at else "created"
            self._save(record)
            return
        if record.status not in ("running", "paused"):
            if self._runtime.exists(record.id):  # made ahead of a start that never came
                with contextlib.suppress(DockyardError):
                    await self._runtime.delete(record.id, force=True)
            return
        code = _read_exit_code(paths.exit_file)
        if code is not None:
            await self._finish(record, code=code, when=_mtime_ns(paths.exit_file))
            return
        state = await self._runtime.state(record.id)
        if state is None or state.status == "stopped" or not _conmon_alive(paths):
            # The monitor is gone, so the container's output and exit code are lost with it.
            if state is not None and state.status != "stopped":
                with contextlib.suppress(DockyardError):
                    await self._runtime.kill(record.id, signals.SIGKILL)
            await self._finish(
                record, code=137, when=now_ns(), error="container monitor (conmon) died"
            )
            return
        record.status = "paused" if state.status == "paused" else "running"
        record.pid = state.pid or record.pid
        try:
            await self._network.restore(
                container_id=record.id,
                pid=record.pid,
                spec=record.request.network,
                ports=record.ports,
            )
        except DockyardError as exc:
            # Its plumbing is gone (a router or veth deleted while the agent was away, a
            # record of an older network layout) or a host port was taken meanwhile: it
            # would only look alive. It is killed and its exit reported with the reason
            # (a restart policy brings it back plumbed); the agent itself starts.
            self._exit_reasons[record.id] = (
                f"killed: its network could not be restored after an agent restart: {exc.message}"
            )
            with contextlib.suppress(DockyardError):
                await self._runtime.kill(record.id, signals.SIGKILL)
                if record.status == "paused":
                    await self._runtime.resume(record.id)
        self._save(record)
        self._watch_health(record)

    def process_pending_exits(self) -> None:
        """Pick up exit files written before the watch started (called after recovery)."""
        for record in list(self._records.values()):
            if record.status in ("running", "paused") and self.paths(record.id).exit_file.exists():
                self._schedule_exit(record.id)


async def _copy_up(rootfs: Path, target: str, data: Path) -> None:
    """Seed an empty volume with the image's content at ``target`` (Docker's behaviour)."""
    if any(data.iterdir()):
        return
    try:
        fd = open_in_root(rootfs, target, os.O_PATH | os.O_DIRECTORY)
    except NotFound:
        return  # nothing in the image at that path
    except NotADirectoryError:
        return
    try:
        await seed_volume(fd, data)
    finally:
        os.close(fd)


async def seed_volume(source_fd: int, data: Path) -> None:
    """Copy the directory ``source_fd`` into the volume directory ``data``, never through
    anything the tenant made there.

    The volume may be mounted in a running container of the tenant while this runs, and
    ``cp`` (as host root) writes through a symlink it finds at a destination name: a link
    ``data/f -> /etc/passwd`` made between the emptiness check and the copy would have the
    image's ``f`` overwrite the host's file. So the copy goes to a staging directory beside
    ``data`` that no container sees, and its entries are then renamed into ``data``:
    rename(2) replaces a name, it never follows it. A name the tenant took in the
    meantime is replaced, or, where rename cannot (a directory over a file or a non-empty
    directory), stays the tenant's and that part of the copy is dropped.
    """
    staging = Path(tempfile.mkdtemp(prefix=".seed-", dir=data.parent))
    try:
        proc = await asyncio.create_subprocess_exec(
            "cp",
            "-a",
            "--no-dereference",
            f"/proc/self/fd/{source_fd}/.",
            f"{staging}/",
            pass_fds=(source_fd,),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise Unavailable(
                f"copying image content into the volume failed: {err.decode().strip()}"
            )
        # The volume's root takes the image directory's owner and mode, as with cp into it.
        info = os.stat(staging, follow_symlinks=False)
        os.chown(data, info.st_uid, info.st_gid)
        os.chmod(data, stat.S_IMODE(info.st_mode))
        for entry in os.listdir(staging):
            with contextlib.suppress(OSError):  # the tenant's entry of that name stays
                os.rename(staging / entry, data / entry)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)


def _read_optional(root: Path, path: str) -> str:
    try:
        return read_in_root(root, path).decode(errors="replace")
    except (NotFound, InvalidArgument, OSError):
        return ""


def _namespaces(pid: int) -> tuple[int, int]:
    """The inode numbers of ``pid``'s network and user namespaces."""
    try:
        return (
            os.stat(f"/proc/{pid}/ns/net").st_ino,
            os.stat(f"/proc/{pid}/ns/user").st_ino,
        )
    except OSError as exc:
        raise FailedPrecondition(f"process {pid} is gone") from exc


def _check_joined(pid: int, joined: tuple[int, int], peer_id: str) -> None:
    """FailedPrecondition unless ``pid`` sits in the namespaces ``joined`` (those of the
    peer when it was looked at): the peer may have exited and its pid gone to another
    process before crun opened /proc/<pid>/ns; never run in a stranger's netns."""
    if _namespaces(pid) != joined:
        raise FailedPrecondition(
            f"container {peer_id[:12]} stopped while its network was being joined"
        )


def _read_exit_code(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _mtime_ns(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


async def _wait_for_monitor(paths: BundlePaths, timeout: float = 5.0) -> None:
    """Wait until the container's conmon has exited (at most ``timeout`` seconds)."""
    if not _conmon_alive(paths):
        return
    try:
        pid = int(paths.conmon_pidfile.read_text().strip())
        fd = os.pidfd_open(pid)
    except (OSError, ValueError):
        return  # gone already
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, exited)
    try:
        await asyncio.wait_for(gone, timeout)
    except TimeoutError:
        logging.getLogger("dockyard.agent").warning(
            "conmon of %s still runs %.0f s after the container exited",
            paths.container_id,
            timeout,
        )
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _conmon_alive(paths: BundlePaths) -> bool:
    try:
        pid = int(paths.conmon_pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"conmon" in cmdline and paths.container_id.encode() in cmdline


def _remove_bundle(paths: BundlePaths) -> None:
    """Delete the bundle and the data directory; refuse to descend into anything still
    mounted."""
    if os.path.ismount(paths.rootfs):
        raise Unavailable(f"rootfs of {paths.container_id} is still mounted; not removing it")
    for directory in (paths.bundle, paths.data):
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=False, onerror=_chmod_and_retry)


def _chmod_and_retry(func: Callable[..., Any], path: str, _exc: Any) -> None:
    # Containers may leave read-only directories in their upper dir.
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        func(path)


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("dockyard.agent").error(
            "background container work failed", exc_info=task.exception()
        )
