"""LocalVolumes: volumes as directories on the agent's disk, ``<root>/<tenant>/<name>/_data``.

The data directory belongs to the tenant's container root (host uid ``uid_base``), so files
written by containers keep their shifted ownership and no other tenant's range can own them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dockyard.core.disk import tree_size
from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.core.ids import validate_name

__all__ = ["LocalVolumes"]


class LocalVolumes:
    """The ``local`` driver. Accepts no driver options yet."""

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o711)  # noqa: S103  (traversable, not listable)

    def _dir(self, tenant: str, name: str) -> Path:
        validate_name(name, what="volume")
        if not tenant or "/" in tenant or tenant.startswith("."):
            raise InvalidArgument(f"invalid tenant id {tenant!r}")
        return self._root / tenant / name

    def create(self, *, tenant: str, name: str, uid_base: int, options: dict[str, str]) -> Path:
        if options:
            raise InvalidArgument(
                f"the local volume driver takes no options (got {', '.join(sorted(options))})"
            )
        data = self._dir(tenant, name) / "_data"
        if not data.is_dir():
            data.parent.parent.mkdir(mode=0o711, exist_ok=True)
            data.parent.mkdir(mode=0o711, exist_ok=True)
            data.mkdir(mode=0o755, exist_ok=True)
            os.chown(data, uid_base, uid_base)
        return data

    def path(self, *, tenant: str, name: str) -> Path:
        data = self._dir(tenant, name) / "_data"
        if not data.is_dir():
            raise NotFound(f"get {name}: no such volume")
        return data

    def remove(self, *, tenant: str, name: str) -> None:
        shutil.rmtree(self._dir(tenant, name), ignore_errors=True)

    def size(self, *, tenant: str, name: str) -> int:
        return tree_size(self.path(tenant=tenant, name=name))

    def list_volumes(self) -> list[tuple[str, str]]:
        found = []
        for tenant_dir in sorted(self._root.iterdir()) if self._root.is_dir() else []:
            for volume_dir in sorted(tenant_dir.iterdir()) if tenant_dir.is_dir() else []:
                if (volume_dir / "_data").is_dir():
                    found.append((tenant_dir.name, volume_dir.name))
        return found
