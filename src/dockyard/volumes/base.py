"""The VolumeDriver protocol: where a tenant's named volume keeps its data on a host."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

__all__ = ["VolumeDriver"]


class VolumeDriver(Protocol):
    def create(self, *, tenant: str, name: str, uid_base: int, options: dict[str, str]) -> Path:
        """Create the volume (idempotent) and return the host path to mount."""

    def path(self, *, tenant: str, name: str) -> Path:
        """Host path of an existing volume; NotFound if it does not exist here."""

    def remove(self, *, tenant: str, name: str) -> None:
        """Delete the volume and its data. Idempotent."""

    def size(self, *, tenant: str, name: str) -> int:
        """Bytes used by the volume's data."""

    def list_volumes(self) -> list[tuple[str, str]]:
        """Every (tenant, name) on this host."""
