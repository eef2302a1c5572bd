"""Reading a container's cgroup from the host: OOM kills, processes, usage; removal.

Handles both layouts met in practice: cgroup v1 (one hierarchy per controller under
/sys/fs/cgroup/<controller>, the hosts we test on) and the unified v2 hierarchy. crun
creates and deletes the cgroups; this module reads them and removes leftovers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["CGROUP_ROOT", "Cgroup", "cgroup_version", "moves_favored"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = (
    "memory",
    "pids",
    "cpu",
    "cpuacct",
    "cpuset",
    "blkio",
    "devices",
    "freezer",
    "hugetlb",
    "systemd",
)


def cgroup_version() -> str:
    """``"2"`` on a pure unified hierarchy, ``"1"`` otherwise."""
    return "2" if (CGROUP_ROOT / "cgroup.controllers").exists() else "1"


def moves_favored(mountinfo: Path = Path("/proc/self/mountinfo")) -> bool | None:
    """Whether the cgroup2 root is mounted with ``favordynmods``, which spares each move
    of a process into a cgroup an RCU grace period (ADR 0024); ``None`` without cgroup2."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, _, tail = line.partition(" - ")
        fields = tail.split()
        if len(fields) >= 3 and fields[0] == "cgroup2":
            return "favordynmods" in fields[2].split(",")
    return None


class Cgroup:
    """One cgroup path (``/dockyard/<tenant>/<id>``) across the host's hierarchies."""

    def __init__(self, path: str, *, root: Path = CGROUP_ROOT) -> None:
        self.path = path.strip("/")
        self._root = root
        self._v2 = (root / "cgroup.controllers").exists()

    @property
    def unified(self) -> bool:
        """Whether the host uses the cgroup v2 (unified) hierarchy."""
        return self._v2

    def _dir(self, controller: str) -> Path:
        return self._root / self.path if self._v2 else self._root / controller / self.path

    def _read(self, controller: str, name: str) -> str:
        try:
            return (self._dir(controller) / name).read_text()
        except OSError:
            return ""

    def exists(self) -> bool:
        return self._dir("memory").is_dir()

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup."""
        text = self._read("memory", "memory.events" if self._v2 else "memory.oom_control")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def pids(self) -> list[int]:
        """Every process in the cgroup (and, on v1, its descendants' cgroups)."""
        found: list[int] = []
        base = self._dir("pids") if not self._v2 else self._dir("")
        if not base.is_dir():
            return found
        for dirpath, _dirs, files in os.walk(base):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    text = (Path(dirpath) / "cgroup.procs").read_text()
                    found.extend(int(x) for x in text.split())
        return sorted(set(found))

    def read(self, controller: str, name: str) -> str:
        """Raw content of a control file ("" if absent), for tests and stats."""
        return self._read(controller, name)

    def remove(self) -> None:
        """Remove the cgroup dirs (deepest first) in every hierarchy; ignore busy or absent."""
        targets = [self._dir("")] if self._v2 else [self._dir(c) for c in _V1_CONTROLLERS]
        for top in targets:
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda e: -len(e[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
