"""The agent's durable record of each container, kept in the container's data directory.

The record is what lets a restarted agent re-adopt its containers: it is written at
every state change, before the change is reported. ``phase`` marks work in progress: a
record found in ``creating`` or ``starting`` after a crash names a half-done step that
recovery rolls back.

A save never leaves a torn record behind, yet makes no new file: there are two slots,
``dockyard.json`` and ``dockyard.1.json``, and each save overwrites the older one with
the next ``seq``; a load takes the readable slot with the highest ``seq``. A crash in
the middle of a save leaves that slot unreadable (or older) and the other one holds the
record as it was before the save, as a temp file + rename would. Rewriting a file in
place instead of renaming a new one over it spares the state disk an inode allocation
and a release per save (ADR 0023).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import ContainerStatus, CreateRequest, HealthState
from dockyard.core.serde import from_data, to_data

__all__ = ["AgentRecord", "load_record", "save_record", "slots"]


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
    seq: int = 0  # of its last save: which slot holds the newest record

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


def slots(path: Path) -> tuple[Path, Path]:
    """The two files of the record named ``path``."""
    return path, path.with_name(f"{path.stem}.1{path.suffix}")


def save_record(path: Path, record: AgentRecord) -> None:
    """Write ``record`` with the next ``seq`` over the older of its two slots."""
    record.seq += 1
    data = json.dumps(to_data(record), separators=(",", ":")).encode()
    fd = os.open(
        slots(path)[record.seq % 2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def load_record(path: Path) -> AgentRecord:
    """Read the newest readable slot of the record; raises OSError if there is none,
    ValueError or InvalidArgument if the only one there is corrupt."""
    found: list[AgentRecord] = []
    error: Exception | None = None
    for slot in slots(path):
        try:
            found.append(_load_slot(slot))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, InvalidArgument) as exc:
            error = exc
    if found:
        return max(found, key=lambda r: r.seq)
    if error is not None:
        raise error
    raise FileNotFoundError(f"no record at {path}")


def _load_slot(path: Path) -> AgentRecord:
    with open(path) as handle:
        data = json.load(handle)
    record = from_data(AgentRecord, data)
    record.ports = {k: [(str(h), int(p)) for h, p in v] for k, v in record.ports.items()}
    return record
