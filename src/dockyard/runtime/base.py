"""The Runtime protocol: the thin interface the agent drives containers through.

A runtime holds no lifecycle state of its own; the agent decides, the runtime executes.
States reported by :meth:`Runtime.state` use the OCI names: ``creating``, ``created``,
``running``, ``paused``, ``stopped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.runtime.paths import BundlePaths, ExecPaths

__all__ = ["CreateOptions", "ExecOptions", "ExecProcess", "Runtime", "RuntimeState"]


@dataclass(frozen=True, slots=True)
class RuntimeState:
    status: str
    pid: int


@dataclass(frozen=True, slots=True)
class CreateOptions:
    """How the monitor should wire the container's stdio."""

    stdin: bool = False
    terminal: bool = False
    leave_stdin_open: bool = False
    log_size_max: int = 0


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """How the monitor of an exec wires its stdio. With ``attach`` the process waits for
    :meth:`ExecProcess.run` so that a client connected to the attach socket first misses
    no output."""

    terminal: bool = False
    stdin: bool = False
    attach: bool = False


class ExecProcess(Protocol):
    """A process started by :meth:`Runtime.exec`, under its own monitor."""

    async def run(self) -> int:
        """Let the process run; return its host pid once it exists.

        InvalidArgument if the runtime could not start it for a reason of the request
        (no such executable, permission denied), Unavailable otherwise.
        """

    async def wait(self) -> int | None:
        """The exit code, once the process has exited; None if the monitor went away
        without saying (then its exit file, if any, is the truth)."""

    def close(self) -> None:
        """Forget the process (it keeps running under its monitor). Idempotent."""


class Runtime(Protocol):
    async def create(self, paths: BundlePaths, options: CreateOptions) -> int:
        """Create the container from ``paths.config`` under a monitor; return its pid.

        The process exists but has not run user code; :meth:`start` releases it. Raises
        Unavailable (with the runtime's own explanation) if creation fails, leaving no
        runtime state behind.
        """

    async def start(self, container_id: str) -> None: ...

    async def kill(self, container_id: str, signal: int) -> None:
        """Signal the container's init process; Conflict if it is not running."""

    async def pause(self, container_id: str) -> None: ...

    async def resume(self, container_id: str) -> None: ...

    async def update(self, container_id: str, resources: dict[str, Any]) -> None: ...

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        """Forget the container (and with ``force`` kill it first). Idempotent."""

    async def state(self, container_id: str) -> RuntimeState | None:
        """The runtime's view, or None if the runtime does not know the container."""

    def exists(self, container_id: str) -> bool:
        """Whether the runtime still holds state for the container (cheap, no process)."""

    async def list_ids(self) -> list[str]:
        """Ids of every container this runtime instance knows."""

    async def exec(self, container_id: str, paths: ExecPaths, options: ExecOptions) -> ExecProcess:
        """Start a monitor for the process spec at ``paths.process`` in the container.

        Returns once the monitor is ready (its attach socket exists); without
        ``options.attach`` the process starts at once, else at :meth:`ExecProcess.run`.
        The monitor outlives the caller and writes the exit code to ``paths.exit_file``.
        """
