"""Where one container's runtime files live: one bundle directory per container.

conmon and crun own some of these (pidfiles, attach socket, ctl fifo); naming them here,
once, keeps string concatenation out of the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BundlePaths"]


@dataclass(frozen=True, slots=True)
class BundlePaths:
    """Paths inside ``bundle`` (``<containers_dir>/<id>``) and the shared exits dir."""

    bundle: Path
    exits_dir: Path

    @property
    def container_id(self) -> str:
        return self.bundle.name

    @property
    def config(self) -> Path:
        return self.bundle / "config.json"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def upper(self) -> Path:
        return self.bundle / "fs" / "upper"

    @property
    def work(self) -> Path:
        return self.bundle / "fs" / "work"

    @property
    def pidfile(self) -> Path:
        return self.bundle / "pidfile"

    @property
    def conmon_pidfile(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def attach_socket(self) -> Path:
        """conmon's SOCK_SEQPACKET attach socket (``--full-attach`` puts it in the bundle)."""
        return self.bundle / "attach"

    @property
    def ctl_fifo(self) -> Path:
        """conmon's control fifo: ``"1 <rows> <cols>\\n"`` resizes the terminal."""
        return self.bundle / "ctl"

    @property
    def log_file(self) -> Path:
        """The container's output, in the k8s-file format conmon writes."""
        return self.bundle / "ctr.log"

    @property
    def oci_log(self) -> Path:
        """crun's own log (JSON lines), read to explain a failed create."""
        return self.bundle / "oci-log"

    @property
    def state_file(self) -> Path:
        """The agent's record of this container (survives agent restarts)."""
        return self.bundle / "dockyard.json"

    @property
    def hosts(self) -> Path:
        return self.bundle / "hosts"

    @property
    def hostname(self) -> Path:
        return self.bundle / "hostname"

    @property
    def resolv_conf(self) -> Path:
        return self.bundle / "resolv.conf"

    @property
    def exit_file(self) -> Path:
        """Written by conmon when the container exits: the exit code as text."""
        return self.exits_dir / self.container_id
