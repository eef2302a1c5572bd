"""Where one container's files live: two directories per container.

``data`` holds what must last (the agent's record, the writable layer, the logs) on the
state disk; ``bundle`` is the OCI bundle with everything that lives only while the host
is up (config, rootfs mount point, conmon's and crun's files, the /etc files bind-mounted
into the container), on a tmpfs (ADR 0023). conmon and crun own some of these (pidfiles,
attach socket, ctl fifo); naming them here, once, keeps string concatenation out of the
driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BundlePaths", "ExecPaths"]


@dataclass(frozen=True, slots=True)
class BundlePaths:
    """Paths inside ``bundle`` (``<bundles_dir>/<id>``), ``data``
    (``<containers_dir>/<id>``) and the shared exits dir."""

    bundle: Path
    data: Path
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
        return self.data / "fs" / "upper"

    @property
    def work(self) -> Path:
        return self.data / "fs" / "work"

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
        return self.data / "ctr.log"

    @property
    def log_spare(self) -> Path:
        """The name conmon rotates through: it opens ``<log_file>.tmp`` and renames it over
        ``log_file`` (see runtime.logfiles)."""
        return self.data / "ctr.log.tmp"

    @property
    def log_dir(self) -> Path:
        """Every file of the container's log, rotated ones included (runtime.logfiles)."""
        return self.data / "logs"

    @property
    def winsz(self) -> Path:
        """conmon's window-size fifo."""
        return self.bundle / "winsz"

    @property
    def oci_log(self) -> Path:
        """crun's own log (JSON lines), read to explain a failed create."""
        return self.bundle / "oci-log"

    @property
    def state_file(self) -> Path:
        """The agent's record of this container (survives agent restarts)."""
        return self.data / "dockyard.json"

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

    @property
    def execs_dir(self) -> Path:
        return self.bundle / "exec"

    def exec_paths(self, exec_id: str) -> ExecPaths:
        return ExecPaths(directory=self.execs_dir / exec_id, container_id=self.container_id)


@dataclass(frozen=True, slots=True)
class ExecPaths:
    """One exec session's files, in its own directory (conmon needs one per monitor)."""

    directory: Path
    container_id: str

    @property
    def exec_id(self) -> str:
        return self.directory.name

    @property
    def record(self) -> Path:
        """The agent's record of the exec: its request, written at create."""
        return self.directory / "exec.json"

    @property
    def process(self) -> Path:
        """The OCI process spec ``crun exec --process`` reads."""
        return self.directory / "process.json"

    @property
    def pidfile(self) -> Path:
        """Written by crun once the process exists: the exec has started."""
        return self.directory / "pid"

    @property
    def conmon_pidfile(self) -> Path:
        return self.directory / "conmon.pid"

    @property
    def attach_socket(self) -> Path:
        return self.directory / "attach"

    @property
    def ctl_fifo(self) -> Path:
        return self.directory / "ctl"

    @property
    def exits_dir(self) -> Path:
        return self.directory / "exit"

    @property
    def exit_file(self) -> Path:
        """conmon names exit files after the container (``-c``), in a directory of the
        exec's own."""
        return self.exits_dir / self.container_id

    @property
    def oci_log(self) -> Path:
        return self.directory / "oci-log"
