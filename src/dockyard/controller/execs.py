"""Exec sessions (``docker exec``): the controller's side.

The controller names an exec (a random global id), checks policy, and records in the
store which tenant's container it belongs to; the container's agent keeps the request
and runs it (see ``dockyard.agent.execs``). Lookups go through the store with the
caller's tenant, so another tenant's exec id is simply not found. An exec the agent has
forgotten (its container stopped, as Docker forgets them) is dropped from the store
when next looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.controller.agents import RawStream
from dockyard.controller.containers import ContainerService
from dockyard.controller.events import EventLog
from dockyard.controller.hosts import HostRegistry
from dockyard.core.clock import now_ns
from dockyard.core.errors import NotFound, PermissionDenied
from dockyard.core.ids import new_id
from dockyard.core.models import Container, ExecInstance
from dockyard.core.protocol import ExecRequest, ExecStatus
from dockyard.store.base import ALL_TENANTS, Store

__all__ = ["ExecConfig", "ExecService"]


@dataclass(frozen=True, slots=True)
class ExecConfig:
    """What ``POST /containers/{id}/exec`` asks for."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = ""
    user: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    privileged: bool = False
    console_size: tuple[int, int] = (0, 0)
    detach_keys: str = ""


@dataclass(frozen=True, slots=True)
class ExecView:
    """An exec as inspect shows it."""

    status: ExecStatus
    container: Container


class ExecService:
    def __init__(
        self,
        *,
        store: Store,
        hosts: HostRegistry,
        containers: ContainerService,
        events: EventLog,
    ) -> None:
        self._store = store
        self._hosts = hosts
        self._containers = containers
        self._events = events

    async def create(self, *, tenant: str, ref: str, config: ExecConfig) -> str:
        """A new exec in the tenant's running container ``ref``; its id.

        PermissionDenied for ``privileged`` (no tenant process gets host privileges);
        Conflict (from the agent) if the container is not running or is paused.
        """
        if config.privileged:
            raise PermissionDenied(
                "--privileged is not allowed on Dockyard: exec processes never get "
                "host-level privileges"
            )
        container = self._containers.get(tenant=tenant, ref=ref)
        request = ExecRequest(
            id=new_id(),
            args=config.args,
            env=config.env,
            cwd=config.cwd,
            user=config.user,
            tty=config.tty,
            attach_stdin=config.attach_stdin,
            attach_stdout=config.attach_stdout,
            attach_stderr=config.attach_stderr,
            console_height=config.console_size[0],
            console_width=config.console_size[1],
            detach_keys=config.detach_keys,
        )
        await self._hosts.client(container.host).exec_create(container.id, request)
        instance = ExecInstance(
            id=request.id,
            tenant=tenant,
            container_id=container.id,
            created=now_ns(),
            command=" ".join(request.args),
        )
        self._store.add_exec(instance)
        self._event(container, "exec_create", instance)
        return request.id

    async def inspect(self, *, tenant: str, exec_id: str) -> ExecView:
        container = self._container_of(tenant, exec_id)
        try:
            status = await self._hosts.client(container.host).exec_inspect(container.id, exec_id)
        except NotFound:
            self._store.delete_exec(tenant=tenant, exec_id=exec_id)
            raise NotFound(f"No such exec instance: {exec_id}") from None
        return ExecView(status=status, container=container)

    async def start_attached(self, *, tenant: str, exec_id: str) -> RawStream:
        """Start the exec; its stdio on the returned stream (Docker's framing without a
        TTY). The stream ends once the exec's exit code is known."""
        instance, container = self._find(tenant, exec_id)
        stream = await self._hosts.client(container.host).exec_start(container.id, exec_id)
        self._event(container, "exec_start", instance)
        return stream

    async def start_detached(self, *, tenant: str, exec_id: str) -> None:
        instance, container = self._find(tenant, exec_id)
        await self._hosts.client(container.host).exec_start_detached(container.id, exec_id)
        self._event(container, "exec_start", instance)

    async def resize(self, *, tenant: str, exec_id: str, height: int, width: int) -> None:
        container = self._container_of(tenant, exec_id)
        await self._hosts.client(container.host).exec_resize(
            container.id, exec_id, height=height, width=width
        )

    def observe_exit(self, host: str, status: ExecStatus) -> None:
        """An agent reported that an exec ended: Docker's ``exec_die``."""
        try:
            container = self._containers.get(tenant=ALL_TENANTS, ref=status.container_id)
        except NotFound:
            return
        if container.host != host:
            return
        self._events.container(
            container,
            "exec_die",
            {"execID": status.request.id, "exitCode": str(status.exit_code)},
        )

    def _event(self, container: Container, action: str, instance: ExecInstance) -> None:
        """Docker names the command in the action: ``exec_start: sh -c true``."""
        self._events.container(container, f"{action}: {instance.command}", {"execID": instance.id})

    def _container_of(self, tenant: str, exec_id: str) -> Container:
        return self._find(tenant, exec_id)[1]

    def _find(self, tenant: str, exec_id: str) -> tuple[ExecInstance, Container]:
        instance = self._store.get_exec(tenant=tenant, exec_id=exec_id)
        try:
            container = self._containers.get(tenant=tenant, ref=instance.container_id)
        except NotFound:
            self._store.delete_exec(tenant=tenant, exec_id=exec_id)
            raise NotFound(f"No such exec instance: {exec_id}") from None
        return instance, container
