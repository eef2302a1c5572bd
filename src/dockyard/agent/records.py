"""The agent's durable record of each container, kept in the container's bundle.

The record is what lets a restarted agent re-adopt its containers: it is written
atomically (temp file + rename) at every state change, before the change is reported.
``phase`` marks work in progress: a record found in ``creating`` or ``starting`` after a
crash names a half-done step that recovery rolls back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.core.protocol import ContainerStatus, CreateRequest, HealthState
from dockyard.core.serde import from_data, to_data

__all__ = ["AgentRecord", "load_record", "save_record"]


@dataclass(slots=True)
class AgentRecord:
    """``status``: created, running, paused or exited. ``phase``: "" when at rest, else
    ``creating`` or ``starting`` while that step runs."""

    request: CreateRequest
    status: str = "created"
    phase: str = ""
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    started_at: int = 0
    finished_at: int = 0
    error: str = ""
    uid: int = 0
    gid: int = 0
    ports: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    health: HealthState | None = None  # while it runs with a healthcheck

    @property
    def id(self) -> str:
        return self.request.id

    def status_message(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id,
            status=self.status,
            pid=self.pid if self.status in ("running", "paused") else 0,
            exit_code=self.exit_code,
            oom_killed=self.oom_killed,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            ports={k: list(v) for k, v in self.ports.items()},
            health=self.health,
        )


def save_record(path: Path, record: AgentRecord) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        json.dump(to_data(record), handle, separators=(",", ":"))
    os.replace(tmp, path)


def load_record(path: Path) -> AgentRecord:
    """Read a record; raises OSError or InvalidArgument if it is missing or corrupt."""
    with open(path) as handle:
        data = json.load(handle)
    record = from_data(AgentRecord, data)
    record.ports = {k: [(str(h), int(p)) for h, p in v] for k, v in record.ports.items()}
    return record
