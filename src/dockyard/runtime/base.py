"""The Runtime protocol: the thin interface the agent drives containers through.

A runtime holds no lifecycle state of its own; the agent decides, the runtime executes.
States reported by :meth:`Runtime.state` use the OCI names: ``creating``, ``created``,
``running``, ``paused``, ``stopped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.runtime.paths import BundlePaths

__all__ = ["CreateOptions", "Runtime", "RuntimeState"]


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
