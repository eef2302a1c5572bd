"""ContainerService: a tenant's containers, from create to remove.

The store holds the desired and last observed state; the agent that runs a container
reports changes (:meth:`ContainerService.observe`). Operations on one container are
serialised by its lock. A record carries ``phase`` while a multi-step operation runs, so
a restarted controller can finish or undo it (:meth:`ContainerService.reconcile`).
Every change is recorded in the event log with Docker's event (``create``, ``start``,
``die``, ...), in Docker's order.

Docker's quirks belong to the API layer; this module speaks in domain errors: starting a
running container is NotModified, stopping a stopped one too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from signal import SIGKILL
from typing import Any

from dockyard.controller.admission import admit
from dockyard.controller.agents import AgentClient, RawStream
from dockyard.controller.config import ControllerConfig
from dockyard.controller.events import EventLog
from dockyard.controller.healthcheck import healthcheck_spec
from dockyard.controller.hosts import HostRegistry
from dockyard.controller.images import ImageService
from dockyard.controller.logconfig import details_prefix, log_attributes
from dockyard.controller.logs import follow_logs
from dockyard.controller.merge import build_process, merge_config
from dockyard.controller.mounts import plan_mounts
from dockyard.controller.networks import EndpointRequest, NetworkService
from dockyard.controller.quotas import QuotaService
from dockyard.controller.restart import RestartTracker
from dockyard.controller.security_groups import group_records, groups_for_create
from dockyard.controller.volumes import VolumeService
from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
    NotModified,
    PermissionDenied,
    Unavailable,
)
from dockyard.core.ids import new_id, random_name, validate_name
from dockyard.core.models import (
    Container,
    ContainerConfig,
    HostConfig,
    Network,
    PortBinding,
    Status,
)
from dockyard.core.protocol import (
    ContainerSize,
    ContainerStats,
    ContainerStatus,
    CreateRequest,
    MountSpec,
    StopRequest,
    TopResult,
)
from dockyard.core.signals import parse_signal
from dockyard.core.sizes import SIZE_LABEL
from dockyard.core.tenancy import Tenant
from dockyard.scheduler.placement import PlacementRequest, place
from dockyard.store.base import ALL_TENANTS, Store

__all__ = ["ContainerService", "CreateResult", "UpdateRequest"]

log = logging.getLogger("dockyard.controller")
_ACTIVE = (Status.RUNNING, Status.PAUSED)
_LOG_RETRY = 1.0  # seconds between attempts to resume a log follow whose agent went away


@dataclass(frozen=True, slots=True)
class CreateResult:
    container: Container
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """``docker update``: fields left at None are unchanged."""

    host_config: HostConfig
    fields: frozenset[str]


class _Watch:
    """Change notification for one container, for ``wait``."""

    def __init__(self) -> None:
        self.exits = 0
        self.last_exit = 0
        self.last_error = ""
        self.removed = False
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """The event the next :meth:`notify` sets. Take it *before* checking a condition,
        then wait on it: a change in between is not lost."""
        return self._event


class ContainerService:
    def __init__(
        self,
        *,
        store: Store,
        config: ControllerConfig,
        hosts: HostRegistry,
        images: ImageService,
        networks: NetworkService,
        volumes: VolumeService,
        events: EventLog,
        quotas: QuotaService,
    ) -> None:
        self._store = store
        self._quotas = quotas
        self._events = events
        self._config = config
        self._hosts = hosts
        self._images = images
        self._networks = networks
        self._volumes = volumes
        self._locks: dict[str, asyncio.Lock] = {}
        self._watches: dict[str, _Watch] = {}
        self._restarts = RestartTracker()
        self._restarting: dict[str, int] = {}  # ``docker restart``s under way, by container
        self._tasks: set[asyncio.Task[None]] = set()
        self._cache: dict[str, Container] = {}

    # helpers -----------------------------------------------------------------------------

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def lock(self, container_id: str) -> asyncio.Lock:
        """Held while the container's record or its agent's view of it changes (start,
        stop, connect, remove...). Another service changing what the container's network
        spec is made of (its public IP) holds it from reading the record to pushing the
        spec and recording the change, so pushes of one container never interleave."""
        return self._lock(container_id)

    def _watch(self, container_id: str) -> _Watch:
        return self._watches.setdefault(container_id, _Watch())

    def get(self, *, tenant: str, ref: str) -> Container:
        """A tenant's container by full id, name or unique id prefix."""
        if ref in self._cache:
            with contextlib.suppress(NotFound):
                return self._by_id(tenant, ref)
        return self._store.get_container(tenant=tenant, ref=ref)

    def _reload(self, container: Container) -> Container:
        """The current record of ``container`` (NotFound once removed)."""
        return self._by_id(container.tenant, container.id)

    # The write-through record cache. This controller is the only writer of the records of
    # the containers it manages (ADR 0004), so reads by id need not go to the store: on
    # one ``docker run`` that saves about a dozen queries. Callers get copies, since
    # they change records before saving them.

    def _by_id(self, tenant: str, container_id: str) -> Container:
        cached = self._cache.get(container_id)
        if cached is None:
            cached = self._store.get_container(tenant=tenant, ref=container_id)
            self._cache[container_id] = cached
        elif tenant not in (ALL_TENANTS, cached.tenant):
            raise NotFound(f"No such container: {container_id}")
        return _clone(cached)

    def _add(self, container: Container) -> None:
        self._store.add_container(container)
        self._cache[container.id] = _clone(container)

    def _put(self, container: Container) -> None:
        self._store.put_container(container)
        self._cache[container.id] = _clone(container)

    def _delete(self, container: Container) -> None:
        self._store.delete_container(tenant=container.tenant, container_id=container.id)
        self._cache.pop(container.id, None)

    def list_containers(self, *, tenant: str) -> list[Container]:
        return [c for c in self._store.list_containers(tenant=tenant) if c.phase != "creating"]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background container task failed", exc_info=task.exception())

    # create ------------------------------------------------------------------------------

    async def create(
        self,
        *,
        tenant: Tenant,
        name: str,
        config: ContainerConfig,
        host_config: HostConfig,
        endpoints: Sequence[EndpointRequest] = (),
    ) -> CreateResult:
        """Create a container from the user's config (Docker's Config and HostConfig).

        Its size comes from the user's ``dockyard.size`` label or ``-m`` (an image's label
        does not choose it) and is written into the label; QuotaExceeded, with nothing
        made, if the tenant's memory or container quota cannot take it."""
        admitted = admit(host_config, self._config, size_label=config.labels.get(SIZE_LABEL, ""))
        image = self._images.resolve(tenant=tenant.id, ref=config.image)
        merged = merge_config(config, self._images.config(image))
        merged.labels[SIZE_LABEL] = admitted.size.name
        container_id = new_id()
        if not merged.hostname:
            merged.hostname = container_id[:12]
        process = build_process(merged, host_config)
        healthcheck = healthcheck_spec(merged.healthcheck, shell=merged.shell)
        joins = self._networks.resolve(
            tenant=tenant.id, mode=host_config.network_mode, requests=endpoints
        )
        peer = self._network_peer(tenant.id, host_config)
        security_groups = groups_for_create(self._store, tenant=tenant.id, labels=config.labels)
        mounts, anonymous = plan_mounts(merged, host_config)
        if name:
            name = validate_name(name)
        container = Container(
            id=container_id,
            tenant=tenant.id,
            name=name or random_name(),
            created=now_ns(),
            image=config.image,
            image_id=image.id,
            config=merged,
            host_config=host_config,
            host="",
            phase="creating",
            memory=admitted.resources.memory,
            mounts=tuple(mounts),
            anonymous_volumes=tuple(anonymous),
            size=admitted.size.name,
            security_groups=security_groups,
        )
        volumes_host = await self._volume_host(tenant.id, mounts)
        container.host = place(
            self._hosts.view(self._store.reservations(), overcommit=self._config.memory_overcommit),
            PlacementRequest(
                memory=admitted.resources.memory,
                pinned_host=peer.host if peer is not None else volumes_host,
            ),
        ).host
        # Held until the record is complete (or gone), so nothing changes it meanwhile and
        # a reconcile does not take it for a create a crash interrupted.
        async with self._lock(container.id):
            async with self._quotas.lock(tenant.id):
                # No await between the check and the add: the new record counts at once.
                self._quotas.check_container(tenant.id, memory=container.memory)
                self._add_named(container, chosen=bool(name))
            created_volumes: list[str] = []
            try:
                for mount in mounts:
                    if mount.type == "volume":
                        existed = self._volume_exists(tenant.id, mount.source)
                        await self._volumes.create(
                            tenant=tenant,
                            name=mount.source,
                            host=container.host,
                            anonymous=mount.source in anonymous,
                        )
                        if not existed:
                            created_volumes.append(mount.source)
                for network, wanted in joins:
                    container.endpoints.append(
                        self._networks.join(
                            container_id=container.id, network=network, request=wanted
                        )
                    )
                request = CreateRequest(
                    id=container.id,
                    tenant=tenant.id,
                    name=container.name,
                    uid_base=tenant.uid_base,
                    uid_size=tenant.uid_size,
                    layers=image.layers,
                    process=process,
                    hostname=merged.hostname,
                    domainname=merged.domainname,
                    resources=admitted.resources,
                    mounts=tuple(mounts),
                    readonly_rootfs=host_config.readonly_rootfs,
                    init=host_config.init,
                    capabilities=admitted.capabilities,
                    network=self._networks.spec(
                        container,
                        peer=peer.id if peer else "",
                        groups=group_records(self._store, container),
                        # None yet: binding one waits for our lock and refuses a container
                        # being created (PublicIpService.bind).
                        public_ip="",
                    ),
                    dns=host_config.dns,
                    dns_search=host_config.dns_search,
                    dns_options=host_config.dns_options,
                    extra_hosts=host_config.extra_hosts,
                    shm_size=host_config.shm_size,
                    oom_score_adj=max(0, host_config.oom_score_adj),
                    log_max_size=admitted.logging.max_size,
                    log_max_files=admitted.logging.max_files,
                    log_compress=admitted.logging.compress,
                    auto_remove=host_config.auto_remove,
                    healthcheck=healthcheck,
                )
                await self._hosts.client(container.host).create(request)
            except BaseException:
                for volume in created_volumes:
                    with contextlib.suppress(DockyardError):
                        await self._volumes.remove(tenant=tenant.id, name=volume, users=[])
                self._delete(container)
                self._locks.pop(container.id, None)
                raise
            container.phase = ""
            self._put(container)
            self._events.container(container, "create")
            return CreateResult(
                container=container, warnings=admitted.warnings + admitted.logging.warnings
            )

    def _add_named(self, container: Container, *, chosen: bool) -> None:
        """Store a new record; a generated name that is taken is replaced and tried again
        (the store's uniqueness check is the only one that cannot race)."""
        for attempt in range(16):
            try:
                self._add(container)
            except AlreadyExists:
                if chosen:
                    raise
                suffix = f"_{new_id()[:6]}" if attempt >= 8 else ""
                container.name = random_name() + suffix
            else:
                return
        raise Unavailable("could not find a free name for the container")

    def _volume_exists(self, tenant: str, name: str) -> bool:
        try:
            self._volumes.get(tenant=tenant, name=name)
        except NotFound:
            return False
        return True

    async def _volume_host(self, tenant: str, mounts: list[MountSpec]) -> str:
        for mount in mounts:
            if mount.type == "volume":
                with contextlib.suppress(NotFound):
                    return self._volumes.get(tenant=tenant, name=mount.source).host
        return ""

    # start / stop ------------------------------------------------------------------------

    async def start(self, *, tenant: str, ref: str) -> Container:
        container = self.get(tenant=tenant, ref=ref)
        async with self._lock(container.id):
            container = self._reload(container)
            if container.state.status == Status.PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if container.state.status == Status.RUNNING:
                raise NotModified("container already started")
            self._restarts.cancel(container.id)
            self._check_network_peer(container)
            if container.manually_stopped:
                container.manually_stopped = False
                self._put(container)
            try:
                status = await self._start_on_agent(container)
            except DockyardError:
                if container.host_config.auto_remove:
                    # As Docker does: a --rm container that cannot start is removed.
                    self._spawn(self._auto_remove(container))
                raise
            self._started(container)
            return self._apply(container, status)

    async def _start_on_agent(self, container: Container) -> ContainerStatus:
        try:
            return await self._hosts.client(container.host).start(container.id)
        except DockyardError as exc:
            container = self._reload(container)
            container.state.error = exc.message
            container.state.exit_code = _start_failure_code(exc.message)
            self._put(container)
            raise

    async def stop(
        self, *, tenant: str, ref: str, timeout: int | None = None, signal: str = ""
    ) -> Container:
        container = self.get(tenant=tenant, ref=ref)
        signal = signal or container.config.stop_signal or "SIGTERM"
        number = parse_signal(signal)
        async with self._lock(container.id):
            container = self._reload(container)
            cancelled = self._restarts.cancel(container.id)
            container.manually_stopped = True
            if container.state.status not in _ACTIVE:
                if cancelled or container.state.status == Status.RESTARTING:
                    container.state.status = Status.EXITED
                    self._put(container)
                    self._watch(container.id).notify()
                    return container
                self._put(container)
                raise NotModified("container already stopped")
            self._put(container)
            self._events.container(container, "kill", {"signal": str(number)})
        status = await self._hosts.client(container.host).stop(
            container.id,
            StopRequest(signal=signal, timeout=self._stop_timeout(container, timeout)),
        )
        async with self._lock(container.id):
            container = self._apply(self._reload(container), status)
            self._events.container(container, "stop")
            return container

    def _stop_timeout(self, container: Container, timeout: int | None) -> int:
        if timeout is not None:
            return timeout
        if container.config.stop_timeout is not None:
            return container.config.stop_timeout
        return self._config.default_stop_timeout

    async def restart(self, *, tenant: str, ref: str, timeout: int | None = None) -> Container:
        container_id = self.get(tenant=tenant, ref=ref).id
        # Marked while under way, so a log follow knows the stop is not the end.
        self._restarting[container_id] = self._restarting.get(container_id, 0) + 1
        try:
            with contextlib.suppress(NotModified):
                await self.stop(tenant=tenant, ref=ref, timeout=timeout)
            container = await self.start(tenant=tenant, ref=ref)
        finally:
            left = self._restarting.pop(container_id) - 1
            if left:
                self._restarting[container_id] = left
            if container_id in self._watches:
                self._watch(container_id).notify()
        self._events.container(container, "restart")
        return container

    async def kill(self, *, tenant: str, ref: str, signal: str) -> None:
        container = self.get(tenant=tenant, ref=ref)
        number = parse_signal(signal or "SIGKILL")
        async with self._lock(container.id):
            container = self._reload(container)
            if container.state.status not in _ACTIVE:
                raise Conflict(f"Container {container.id} is not running")
            if signal.upper().removeprefix("SIG") in ("KILL", "9", "TERM", "15", ""):
                container.manually_stopped = True
                self._put(container)
            await self._hosts.client(container.host).kill(container.id, str(number))
            self._events.container(container, "kill", {"signal": str(number)})

    async def pause(self, *, tenant: str, ref: str) -> None:
        container = self.get(tenant=tenant, ref=ref)
        async with self._lock(container.id):
            container = self._reload(container)
            if container.state.status == Status.PAUSED:
                raise Conflict(f"Container {container.id} is already paused")
            if container.state.status != Status.RUNNING:
                raise Conflict(f"Container {container.id} is not running")
            status = await self._hosts.client(container.host).pause(container.id)
            self._events.container(container, "pause")
            self._apply(container, status)

    async def unpause(self, *, tenant: str, ref: str) -> None:
        container = self.get(tenant=tenant, ref=ref)
        async with self._lock(container.id):
            container = self._reload(container)
            if container.state.status != Status.PAUSED:
                raise Conflict(f"Container {container.id} is not paused")
            status = await self._hosts.client(container.host).unpause(container.id)
            self._events.container(container, "unpause")
            self._apply(container, status)

    # wait --------------------------------------------------------------------------------

    async def wait_registered(
        self, *, tenant: str, ref: str, condition: str
    ) -> AsyncGenerator[tuple[int, str], None]:
        """Register a waiter, yield once (registered), then yield (exit code, error).

        Split in two so the API can send response headers as soon as the waiter exists;
        ``docker run`` starts the container only after that.
        """
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        container = self.get(tenant=tenant, ref=ref)
        watch = self._watch(container.id)
        start_exits = watch.exits
        yield (0, "")
        while True:
            change = watch.next_change()
            if condition == "removed":
                if watch.removed or not self._exists(container):
                    yield (watch.last_exit, watch.last_error)
                    return
            elif condition == "next-exit":
                if watch.exits > start_exits:
                    yield (watch.last_exit, watch.last_error)
                    return
            else:
                current = self._current(container)
                if current is None:
                    yield (watch.last_exit, watch.last_error)
                    return
                if current.state.status not in (*_ACTIVE, Status.RESTARTING):
                    yield (current.state.exit_code, current.state.error)
                    return
            await change.wait()

    def _exists(self, container: Container) -> bool:
        return self._current(container) is not None

    def _current(self, container: Container) -> Container | None:
        try:
            return self._reload(container)
        except NotFound:
            return None

    # remove / rename / update ------------------------------------------------------------

    async def remove(self, *, tenant: str, ref: str, force: bool, volumes: bool) -> None:
        container = self.get(tenant=tenant, ref=ref)
        async with self._lock(container.id):
            container = self._reload(container)
            if container.state.status in _ACTIVE and not force:
                raise Conflict(
                    f"You cannot remove a running container {container.id}. Stop the "
                    "container before attempting removal or force remove"
                )
            if container.phase == "removing" and not force:
                raise Conflict(f"removal of container {container.id} is already in progress")
            self._restarts.cancel(container.id)
            container.phase = "removing"
            if container.state.status in _ACTIVE:
                container.manually_stopped = True
            self._put(container)
            if container.state.status in _ACTIVE:
                # Killed here rather than by the delete, so its exit is applied (and its
                # die event carries the exit code) before the record goes.
                self._events.container(container, "kill", {"signal": str(int(SIGKILL))})
                with contextlib.suppress(NotFound, Conflict):
                    status = await self._hosts.client(container.host).stop(
                        container.id, StopRequest(signal="SIGKILL", timeout=-1)
                    )
                    container = self._apply(container, status)
            await self._remove_locked(container, volumes=volumes)

    async def _remove_locked(self, container: Container, *, volumes: bool) -> None:
        with contextlib.suppress(NotFound):
            await self._hosts.client(container.host).delete(container.id, force=True)
        await self._remove_record(container, volumes=volumes)

    async def _remove_record(self, container: Container, *, volumes: bool) -> None:
        """Forget a container whose agent no longer has it: record, address, and with
        ``volumes`` its anonymous volumes; then wake ``wait(removed)``."""
        self._drop_record(container)
        if volumes:
            await self._remove_anonymous_volumes(container)

    def _drop_record(self, container: Container) -> None:
        """The part of :meth:`_remove_record` that does not wait: all but the volumes."""
        self._delete(container)  # its addresses with it
        self._events.container(container, "destroy")
        self._restarts.forget(container.id)
        watch = self._watch(container.id)
        watch.removed = True
        watch.notify()
        self._watches.pop(container.id, None)
        self._locks.pop(container.id, None)

    async def _remove_anonymous_volumes(self, container: Container) -> None:
        """Remove the anonymous volumes of a container whose record is gone (one that
        another container mounts too stays)."""
        for name in container.anonymous_volumes:
            with contextlib.suppress(NotFound, Conflict):
                await self._volumes.remove(
                    tenant=container.tenant,
                    name=name,
                    users=self.volume_users(tenant=container.tenant, name=name),
                )

    async def rename(self, *, tenant: str, ref: str, name: str) -> None:
        container = self.get(tenant=tenant, ref=ref)
        new_name = validate_name(name)
        async with self._lock(container.id):
            # Read again under the lock: the spec pushed below is made of its endpoints,
            # which a connect may have changed while we waited.
            container = self._reload(container)
            if new_name == container.name:
                raise AlreadyExists("Renaming a container with the same name as its current name")
            self._store.rename_container(tenant=tenant, container_id=container.id, name=new_name)
            self._cache.pop(container.id, None)
            renamed = replace(container, name=new_name)
            self._events.container(renamed, "rename", {"oldName": f"/{container.name}"})
            if container.endpoints and not container.phase:
                # Its DNS name changes with it (the agent keeps the spec for later starts;
                # it is the agent's copy that a start uses).
                try:
                    spec = self._networks.spec(renamed)
                    await self._hosts.client(container.host).update_network(container.id, spec)
                except DockyardError as exc:
                    log.warning(
                        "container %s renamed, but its agent did not take the new DNS name "
                        "(it keeps answering to the old one until its network spec is sent "
                        "again): %s",
                        container.id[:12],
                        exc.message,
                    )

    async def connect(
        self, *, tenant: str, ref: str, network_ref: str, request: EndpointRequest
    ) -> None:
        """``docker network connect``: join one more network, at once if the container
        runs, else from its next start. PermissionDenied if it is already on it or its
        network mode allows no networks."""
        container = self.get(tenant=tenant, ref=ref)
        network = self._networks.get(tenant=tenant, ref=network_ref)
        async with self._lock(container.id):
            container = self._reload(container)
            mode = container.host_config.network_mode
            if mode == "none" or mode.startswith("container:"):
                raise PermissionDenied(
                    f"container {container.name} uses network mode {mode} and cannot be "
                    "connected to a network"
                )
            if any(e.network_id == network.id for e in container.endpoints):
                raise PermissionDenied(
                    f"endpoint with name {container.name} already exists in network {network.name}"
                )
            endpoint = self._networks.join(
                container_id=container.id, network=network, request=request
            )
            # The agent keeps the interface name if it is free in the container, else it
            # takes the lowest free ethN (a disconnect may have left a gap).
            spec = self._networks.endpoint_spec(
                container,
                endpoint,
                len(container.endpoints),
                groups=group_records(self._store, container),
            )
            try:
                await self._hosts.client(container.host).connect(container.id, spec)
            except BaseException:
                self._networks.leave(container_id=container.id, network_id=network.id)
                raise
            if network.internal or self._routed(container):
                container.endpoints.append(endpoint)
            else:
                # The gateway network now, as the agent orders it
                # (dockyard.network.host.connected_endpoints).
                container.endpoints.insert(0, endpoint)
            self._put(container)
            if container.state.status in (Status.RUNNING, Status.PAUSED):
                self._events.network(
                    tenant=tenant, network=network, action="connect", container_id=container.id
                )

    async def disconnect(self, *, tenant: str, ref: str, network_ref: str) -> None:
        """``docker network disconnect``: leave a network (its interface goes at once if
        the container runs) and return the address."""
        container = self.get(tenant=tenant, ref=ref)
        network = self._networks.get(tenant=tenant, ref=network_ref)
        async with self._lock(container.id):
            container = self._reload(container)
            endpoint = next((e for e in container.endpoints if e.network_id == network.id), None)
            if endpoint is None:
                raise PermissionDenied(
                    f"container {container.id} is not connected to network {network.name}"
                )
            await self._hosts.client(container.host).disconnect(container.id, endpoint.id)
            primary = container.endpoints[0] is endpoint
            container.endpoints.remove(endpoint)
            if primary:
                self._promote_gateway(container)
            self._put(container)
            self._networks.leave(container_id=container.id, network_id=network.id)
            if container.state.status in (Status.RUNNING, Status.PAUSED):
                self._events.network(
                    tenant=tenant, network=network, action="disconnect", container_id=container.id
                )

    def _routed(self, container: Container) -> bool:
        """Whether one of its networks is not internal (gives it a default route)."""
        for endpoint in container.endpoints:
            network = self._networks.find(tenant=container.tenant, network_id=endpoint.network_id)
            if network is not None and not network.internal:
                return True
        return False

    def _promote_gateway(self, container: Container) -> None:
        """After its primary (first) endpoint left: the first endpoint on a network that
        is not internal moves to the front, as the agent orders them
        (``dockyard.network.host.remaining_endpoints``), so ``docker inspect``'s
        top-level address and gateway are those of the network giving the default
        route."""
        for index, endpoint in enumerate(container.endpoints):
            network = self._networks.find(tenant=container.tenant, network_id=endpoint.network_id)
            if network is not None and not network.internal:
                container.endpoints.insert(0, container.endpoints.pop(index))
                return

    async def set_security_groups(
        self, *, tenant: str, container_id: str, change: Callable[[Container], list[str]]
    ) -> Container:
        """Put the container in the security groups ``change`` returns for its current
        record (it raises to refuse); called under the container's lock with no await
        before the save. The agent learns of it from SecurityGroupService."""
        async with self._lock(container_id):
            container = self._by_id(tenant, container_id)
            container.security_groups = change(container)
            self._put(container)
            return container

    async def update(self, *, tenant: str, ref: str, update: UpdateRequest) -> tuple[str, ...]:
        container = self.get(tenant=tenant, ref=ref)
        async with self._lock(container.id):
            container = self._reload(container)
            new_hc = container.host_config
            changes = {f: getattr(update.host_config, f) for f in update.fields}
            new_hc = replace(new_hc, **changes)
            # A new memory limit chooses the size anew; otherwise the size stays.
            label = "" if "memory" in update.fields else container.config.labels.get(SIZE_LABEL, "")
            admitted = admit(new_hc, self._config, size_label=label)
            async with self._quotas.lock(tenant):
                self._quotas.check_memory_growth(
                    tenant, more=admitted.resources.memory - container.memory
                )
                # The agent applies the limits now if the container runs, else at next start.
                await self._hosts.client(container.host).update(container.id, admitted.resources)
                container.host_config = new_hc
                container.memory = admitted.resources.memory
                container.size = admitted.size.name
                container.config.labels = {**container.config.labels, SIZE_LABEL: container.size}
                self._put(container)
            self._events.container(container, "update")
            return admitted.warnings

    def volume_users(self, *, tenant: str, name: str) -> list[str]:
        """Ids of the tenant's containers that mount the named volume."""
        users = []
        for c in self._store.list_containers(tenant=tenant):
            if any(m.type == "volume" and m.source == name for m in c.mounts):
                users.append(c.id)
        return users

    # inspection and streams --------------------------------------------------------------

    async def size(self, container: Container) -> ContainerSize:
        try:
            return await self._hosts.client(container.host).size(container.id)
        except DockyardError:
            return ContainerSize(size_rw=0, size_root_fs=0)

    async def top(self, *, tenant: str, ref: str, ps_args: str) -> TopResult:
        container = self.get(tenant=tenant, ref=ref)
        if container.state.status not in _ACTIVE:
            raise Conflict(f"Container {container.id} is not running")
        return await self._hosts.client(container.host).top(container.id, ps_args)

    async def stats(self, container: Container) -> ContainerStats:
        """One resource-use sample from the container's agent (zero when not running)."""
        return await self._hosts.client(container.host).stats(container.id)

    def logs(self, container: Container, params: dict[str, str]) -> AsyncGenerator[bytes, None]:
        """The container's log stream in Docker's framing; ``params`` is the query on the
        agent protocol (``details=1`` gets the attributes added here). A follow goes on
        across restarts and agent restarts (controller.logs)."""
        params = dict(params)
        if params.get("details") == "1":
            params["attrs"] = details_prefix(log_attributes(container))
        if params.get("follow") != "1":
            return self._hosts.client(container.host).logs(container.id, params)

        def open_stream(query: dict[str, str]) -> AsyncGenerator[bytes, None]:
            return self._hosts.client(container.host).logs(container.id, query)

        async def retry() -> bool:
            await asyncio.sleep(_LOG_RETRY)
            return self._current(container) is not None

        return follow_logs(
            open_stream,
            params,
            tty=container.config.tty,
            run_over=lambda run: self._run_over(container, run),
            retry=retry,
        )

    async def _run_over(self, container: Container, run: int) -> bool:
        """Whether a log follow ends after the output of the run that started at ``run``:
        yes once the container is removed, or stopped with no restart coming; no once a
        later run started. Waits while that is not known yet."""
        while True:
            if self._current(container) is None:
                return True
            change = self._watch(container.id).next_change()
            current = self._current(container)
            if current is None:
                return True
            state = current.state
            if state.started_at > run:
                return False
            settled = (
                state.started_at == run
                and state.status not in (*_ACTIVE, Status.RESTARTING)
                and container.id not in self._restarting
            )
            if settled:
                return True
            await change.wait()

    async def attach(self, container: Container, params: dict[str, str]) -> RawStream:
        stream = await self._hosts.client(container.host).attach(container.id, params)
        self._events.container(container, "attach")
        return stream

    async def resize(self, *, tenant: str, ref: str, height: int, width: int) -> None:
        """Resize the container's terminal; InvalidArgument without a TTY."""
        container = self.get(tenant=tenant, ref=ref)
        await self._hosts.client(container.host).resize(container.id, height=height, width=width)

    async def prune(
        self, *, tenant: str, until: int = 0, labels: tuple[str, ...] = ()
    ) -> tuple[list[str], int]:
        deleted: list[str] = []
        reclaimed = 0
        for container in self.list_containers(tenant=tenant):
            if container.state.status in (*_ACTIVE, Status.RESTARTING):
                continue
            if until and container.created >= until:
                continue
            if not _labels_match(container.config.labels, labels):
                continue
            size = await self.size(container)
            with contextlib.suppress(NotFound, Conflict):
                await self.remove(tenant=tenant, ref=container.id, force=False, volumes=False)
                deleted.append(container.id)
                reclaimed += size.size_rw
        return deleted, reclaimed

    # observed state ----------------------------------------------------------------------

    def _apply(
        self, container: Container, status: ContainerStatus, *, reported: bool = False
    ) -> Container:
        """Merge an agent's report into the record, ignoring reports older than it.

        Reports of one run share ``started_at``; an exit carries ``finished_at``. So a
        report is stale if it belongs to an earlier run, or to the same run before its exit.
        ``reported``: it came on the agent's event stream (not as the answer to one of our
        calls, whose caller goes on with the record): an exited --rm container's record
        then goes at once, without being written first.
        """
        state = container.state
        if (status.started_at, status.finished_at) < (state.started_at, state.finished_at):
            return container
        before = (replace(state), dict(container.ports), container.has_been_started)
        health_before = state.health.status if state.health is not None else ""
        was_active = state.status in _ACTIVE
        state.status = {
            "running": Status.RUNNING,
            "paused": Status.PAUSED,
            "exited": Status.EXITED,
            "created": Status.CREATED,
        }.get(status.status, Status.DEAD)
        state.pid = status.pid
        state.started_at = status.started_at or state.started_at
        state.finished_at = status.finished_at
        state.exit_code = status.exit_code
        state.oom_killed = status.oom_killed
        state.health = status.health
        state.error = status.error or ("" if state.status in _ACTIVE else state.error)
        container.ports = {
            key: tuple(PortBinding(host_ip=h, host_port=str(p)) for h, p in pairs)
            for key, pairs in status.ports.items()
        }
        if state.status in _ACTIVE:
            container.has_been_started = True
        if (state, container.ports, container.has_been_started) == before:
            return container  # a report of what we already know (the start's own event)
        exited = was_active and state.status == Status.EXITED
        drop = exited and reported and container.host_config.auto_remove
        if not drop:
            self._put(container)
        health = state.health.status if state.health is not None else ""
        if health != health_before and health in ("healthy", "unhealthy"):
            self._events.container(container, f"health_status: {health}")
        if was_active and state.status not in _ACTIVE:
            self._died(container, oom=state.oom_killed and not before[0].oom_killed)
        if exited:
            self._exited(container, drop=drop)
            if drop:
                return container
        self._watch(container.id).notify()
        return container

    def _started(self, container: Container) -> None:
        """Docker's events of a start: each volume mounted, the network connected, start."""
        for mount in container.mounts:
            if mount.type == "volume":
                self._events.volume(
                    tenant=container.tenant,
                    name=mount.source,
                    action="mount",
                    attributes={
                        "container": container.id,
                        "destination": mount.target,
                        "read/write": str(not mount.read_only).lower(),
                        "propagation": "",
                    },
                )
        for network in self._networks_of(container):
            self._events.network(
                tenant=container.tenant,
                network=network,
                action="connect",
                container_id=container.id,
            )
        self._events.container(container, "start")

    def _died(self, container: Container, *, oom: bool, known: bool = True) -> None:
        """Docker's events of an exit: oom if it was killed for memory, the network
        disconnected, each volume unmounted, then die with the exit code (``known``: the
        agent reported it; an exit found only by the container's absence has none)."""
        if oom:
            self._events.container(container, "oom")
        for network in self._networks_of(container):
            self._events.network(
                tenant=container.tenant,
                network=network,
                action="disconnect",
                container_id=container.id,
            )
        for mount in container.mounts:
            if mount.type == "volume":
                self._events.volume(
                    tenant=container.tenant,
                    name=mount.source,
                    action="unmount",
                    attributes={"container": container.id},
                )
        attributes = {}
        state = container.state
        if known:
            attributes["exitCode"] = str(state.exit_code)
            if state.started_at and state.finished_at >= state.started_at:
                ran = (state.finished_at - state.started_at) // 1_000_000_000
                attributes["execDuration"] = str(ran)
        self._events.container(container, "die", attributes)

    def _networks_of(self, container: Container) -> list[Network]:
        found = (
            self._networks.find(tenant=container.tenant, network_id=e.network_id)
            for e in container.endpoints
        )
        return [n for n in found if n is not None]

    def _check_network_peer(self, container: Container) -> None:
        mode = container.host_config.network_mode
        if not mode.startswith("container:"):
            return
        peer_id = mode.removeprefix("container:")
        try:
            peer = self.get(tenant=container.tenant, ref=peer_id)
        except NotFound:
            raise Conflict(f"cannot join network of a removed container: {peer_id}") from None
        if peer.state.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"cannot join network of a non running container: {peer.id}")

    def _network_peer(self, tenant: str, host_config: HostConfig) -> Container | None:
        """For ``--network container:<ref>``: the tenant's container whose netns is joined
        (NotFound for any other tenant's); NetworkMode is rewritten to its full id."""
        mode = host_config.network_mode
        if not mode.startswith("container:"):
            return None
        ref = mode.removeprefix("container:")
        if not ref:
            raise InvalidArgument("network mode container: needs a container name or id")
        peer = self.get(tenant=tenant, ref=ref)
        if peer.host_config.network_mode.startswith("container:"):
            peer_of_peer = peer.host_config.network_mode.removeprefix("container:")
            peer = self.get(tenant=tenant, ref=peer_of_peer)
        host_config.network_mode = f"container:{peer.id}"
        if host_config.port_bindings or host_config.publish_all_ports:
            raise InvalidArgument(
                "conflicting options: port publishing and the container type network mode"
            )
        return peer

    def _exited(self, container: Container, *, drop: bool = False) -> None:
        watch = self._watch(container.id)
        watch.exits += 1
        watch.last_exit = container.state.exit_code
        watch.last_error = container.state.error
        delay = self._restarts.next_delay(container)
        if delay is not None:
            container.state.status = Status.RESTARTING
            self._put(container)
            self._restarts.schedule(container.id, delay, lambda: self._restart_later(container))
        elif container.host_config.auto_remove:
            # The agent deletes a --rm container itself once it has reported the exit;
            # here only the record, its address and its anonymous volumes go. With
            # ``drop`` (the caller holds the lock and is done with the record) at once,
            # which wakes `docker run --rm` ~2 ms sooner; else after the caller.
            if not drop:
                self._spawn(self._forget(container))
                return
            self._drop_record(container)
            if container.anonymous_volumes:
                self._spawn(self._remove_anonymous_volumes(container))

    async def _restart_later(self, container: Container) -> None:
        async with self._lock(container.id):
            try:
                current = self._reload(container)
            except NotFound:
                return
            if current.state.status != Status.RESTARTING or current.manually_stopped:
                return
            current.restart_count += 1
            self._put(current)
            try:
                status = await self._start_on_agent(current)
            except DockyardError as exc:
                log.warning("restarting %s failed: %s", current.id[:12], exc)
                current = self._reload(current)
                current.state.status = Status.EXITED
                self._put(current)
                self._watch(current.id).notify()
                return
            self._started(current)
            self._apply(self._reload(current), status)

    async def _forget(self, container: Container) -> None:
        """Drop the record of a container its agent has deleted (or will: --rm)."""
        async with self._lock(container.id):
            try:
                current = self._reload(container)
            except NotFound:
                return
            await self._remove_record(current, volumes=True)

    async def _auto_remove(self, container: Container) -> None:
        with contextlib.suppress(NotFound):
            await self.remove(tenant=container.tenant, ref=container.id, force=True, volumes=True)

    async def observe(self, host: str, status: ContainerStatus) -> None:
        """An agent reported ``status`` for one of its containers."""
        try:
            container = self._by_id(ALL_TENANTS, status.id)
        except NotFound:
            return
        if container.host != host:
            return
        async with self._lock(container.id):
            with contextlib.suppress(NotFound):
                self._apply(self._reload(container), status, reported=True)

    async def reconcile(self, host: str, statuses: list[ContainerStatus]) -> None:
        """Bring records of containers on ``host`` in line with the agent's full listing.

        Finishes or rolls back operations a crash interrupted, records exits that happened
        while nobody watched, and removes containers the agent has that no record names.

        It runs while the controller serves requests (on every resync with an agent), so
        each container is handled under its lock from its record read again there: what
        an operation changed meanwhile (a start, a rename, a connect...) stays, a record
        removed meanwhile is passed over, and only the state the agent reports is applied.
        """
        reported = {s.id: s for s in statuses}
        client = self._hosts.client(host)
        for listed in self._store.list_containers(tenant=ALL_TENANTS, host=host):
            status = reported.pop(listed.id, None)
            if self._current(listed) is None:
                continue  # removed since the listing (no lock made for it)
            async with self._lock(listed.id):
                container = self._current(listed)
                if container is not None:
                    await self._reconcile_locked(client, container, status)
        for orphan in reported:
            log.warning("removing container %s unknown to the store", orphan[:12])
            with contextlib.suppress(DockyardError):
                await client.delete(orphan, force=True)

    async def _reconcile_locked(
        self, client: AgentClient, container: Container, status: ContainerStatus | None
    ) -> None:
        """Reconcile one current record with the agent's ``status`` of it (None: not in
        the listing); the caller holds the container's lock."""
        if container.phase == "creating":
            # A create holds the lock until its record is complete or gone: this one's
            # controller died mid-way and its caller never got an answer. Undo it.
            if status is not None:
                with contextlib.suppress(DockyardError):
                    await client.delete(container.id, force=True)
            self._delete(container)  # its addresses with it
            self._locks.pop(container.id, None)
            # Named volumes it made stay (they may have been meant to outlive it); its
            # anonymous ones belong to nothing else.
            await self._remove_anonymous_volumes(container)
            return
        if container.phase == "removing":
            await self._remove_locked(container, volumes=True)
            return
        if status is None:
            # The listing was taken before the records were read: a container created
            # since is not in it. Ask once more before taking it for missing.
            with contextlib.suppress(NotFound):
                status = await client.status(container.id)
        if status is not None:
            self._apply(container, status)
            return
        was_active = container.state.status in _ACTIVE
        if container.host_config.auto_remove:
            # --rm: its agent removed it after the exit, while we were away (the exit code
            # went with it).
            if was_active:
                self._died(container, oom=False, known=False)
            await self._remove_record(container, volumes=True)
            return
        container.state.status = Status.DEAD
        container.state.error = "the container is missing on its host"
        self._put(container)
        if was_active:
            self._died(container, oom=False, known=False)

    async def close(self) -> None:
        self._restarts.close()
        for task in list(self._tasks):
            task.cancel()


def _labels_match(have: dict[str, str], wanted: tuple[str, ...]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        negate = key.endswith("!")
        key = key.rstrip("!")
        hit = key in have and (not sep or have[key] == value)
        if hit == negate:
            return False
    return True


def _start_failure_code(message: str) -> int:
    """Docker's exit codes for a failed start: 127 not found, 126 not executable."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 128


def _clone(container: Container) -> Container:
    """A copy safe to change: records are changed field by field (state in place, the
    rest by reassignment), so copying the record and its state is enough."""
    return replace(container, state=replace(container.state))
