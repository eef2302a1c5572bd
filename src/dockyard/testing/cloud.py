"""An isolated Dockyard instance for tests: its own dirs, sockets, routers, nft table, cgroups.

Started with the same code path as ``dockyard up``; :meth:`TestCloud.purge` removes every
container through the API, stops the daemons and then deletes, by name, everything the
instance made on the host, so tests never touch what they did not create.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.cli import daemons as d
from dockyard.cli.identity import login_local
from dockyard.client.dockerconfig import read_token
from dockyard.client.native import AdminClient
from dockyard.core.identity import TOKEN_HEADER
from dockyard.core.layout import Layout
from dockyard.network.names import router_prefix, uplink_name

__all__ = ["DockerCli", "TestCloud", "free_port"]

_CGROUP = Path("/sys/fs/cgroup")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TestCloud:
    """One test instance. ``instance`` names its kernel objects; ``subnet`` is its default
    bridge network's; ``transit`` the agent's transit subnet (its routers' uplinks), a
    /24 of 100.64.0.0/10 of its own."""

    root: Path
    instance: str = field(default_factory=lambda: "dyt" + secrets.token_hex(3))
    subnet: str = field(
        default_factory=lambda: f"10.{secrets.randbelow(60) + 180}.{secrets.randbelow(250)}.0/24"
    )
    transit: str = field(
        default_factory=lambda: f"100.{secrets.randbelow(64) + 64}.{secrets.randbelow(256)}.0/24"
    )
    uid_range_start: int = field(
        default_factory=lambda: 2_000_000_000 + secrets.randbelow(4000) * 65536 * 4
    )
    tls_port: int = field(default_factory=free_port)
    """The controller's TLS listener, on 127.0.0.1."""
    registry_port: int = field(default_factory=free_port)
    """The controller's registry front, on 127.0.0.1."""

    @property
    def layout(self) -> Layout:
        return Layout(
            state_dir=self.root / "state", run_dir=self.root / "run", instance=self.instance
        )

    @property
    def docker_host(self) -> str:
        return f"unix://{self.layout.docker_socket}"

    @property
    def registry(self) -> str:
        """``host:port`` of the registry front."""
        return f"127.0.0.1:{self.registry_port}"

    @property
    def tls_host(self) -> str:
        return f"tcp://127.0.0.1:{self.tls_port}"

    def tls_env(self, cert_dir: Path | None = None) -> dict[str, str]:
        """Environment for a ``docker --tlsverify`` process on the TLS listener, with the
        certificate in ``cert_dir`` (default: the first tenant's admin's) and no docker
        config of the cloud (so no token: the certificate alone authenticates)."""
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONFIG", "DOCKER_HOST")}
        cert_path = cert_dir or self.layout.docker_config_dir
        return {
            **env,
            "DOCKER_HOST": self.tls_host,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(cert_path),
        }

    @property
    def token(self) -> str:
        """The token of the first tenant's admin (``dockyard up`` logs it in)."""
        return read_token(self.layout.docker_config_dir)

    def env(self) -> dict[str, str]:
        """Environment for a ``docker`` CLI process that acts as the first tenant's admin."""
        config = self.layout.docker_config_dir
        return {**os.environ, "DOCKER_HOST": self.docker_host, "DOCKER_CONFIG": str(config)}

    def client(self, token: str | None = None, *, timeout: int = 60) -> Any:
        """A docker-py client acting with ``token`` (default: the first tenant's admin)."""
        import docker  # the reference client, a test dependency

        client = docker.DockerClient(base_url=self.docker_host, timeout=timeout)
        client.api.headers[TOKEN_HEADER] = self.token if token is None else token
        return client

    def admin(self) -> AdminClient:
        """The operator's client (the controller's internal socket)."""
        return AdminClient(f"unix://{self.layout.controller_socket}")

    def _daemons(self) -> list[d.Daemon]:
        return d.daemons(
            self.layout,
            bridge_subnet=self.subnet,
            uid_range_start=self.uid_range_start,
            tls_address=f"127.0.0.1:{self.tls_port}",
            transit_subnet=self.transit,
            registry_address=self.registry,
        )

    @classmethod
    def launch(cls, root: Path) -> TestCloud:
        """A started cloud under ``root``; on failure, print the logs and clean up."""
        cloud = cls(root=root)
        try:
            cloud.start()
        except BaseException:
            print(cloud.log("controller"), cloud.log("agent"))
            cloud.purge()
            raise
        return cloud

    def start(self, *, timeout: float = 60.0) -> None:
        """Start (or restart whichever daemon is down) and wait until the API answers."""
        for daemon in self._daemons():
            d.start(daemon, self.layout)
        d.wait_ready(self.layout, timeout=timeout)
        login_local(self.layout)

    def pid(self, name: str) -> int:
        """The pid of the ``agent`` or ``controller`` daemon (0 if it is not running)."""
        daemon = next(x for x in self._daemons() if x.name == name)
        return max(d.is_running(daemon.pidfile), 0)

    def kill(self, name: str) -> None:
        """SIGKILL one daemon and wait until its pidfile lock is free."""
        pid = self.pid(name)
        if pid:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pid(name) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        for daemon in reversed(self._daemons()):
            d.stop(daemon)

    def log(self, name: str) -> str:
        try:
            return (self.layout.log_dir / f"{name}.log").read_text()
        except OSError:
            return ""

    __test__ = False  # not a pytest test class

    def purge(self, *, keep_logs: Path | None = None) -> None:
        """Remove every container, stop the daemons, delete this instance's host objects.

        ``keep_logs``: a directory to copy the daemons' logs into first."""
        self._remove_containers()
        self.stop()
        layout = self.layout
        if keep_logs is not None and layout.log_dir.is_dir():
            shutil.copytree(layout.log_dir, keep_logs / self.instance, dirs_exist_ok=True)
        self._kill_monitors(layout)
        self._kill_registry(layout)
        subprocess.run(
            ["nft", "delete", "table", "inet", layout.nft_table], capture_output=True, check=False
        )
        self._remove_routers()
        links = subprocess.run(
            ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
        ).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(self.instance):
                subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        self._unmount_under(self.root)
        for controller_dir in _CGROUP.iterdir() if _CGROUP.is_dir() else []:
            target = controller_dir / layout.cgroup_root.strip("/")
            if target.is_dir():
                for dirpath, _dirs, _files in sorted(os.walk(target), key=lambda e: -len(e[0])):
                    with contextlib.suppress(OSError):
                        os.rmdir(dirpath)
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_routers(self) -> None:
        """The instance's tenant router namespaces (ADR 0016) and their uplinks, by name."""
        prefix = router_prefix(self.instance)
        run_dir = Path("/run/netns")
        for entry in sorted(run_dir.iterdir()) if run_dir.is_dir() else []:
            if entry.name.startswith(prefix):
                subprocess.run(
                    ["ip", "link", "del", uplink_name(entry.name)], capture_output=True, check=False
                )
                subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, check=False)

    def _remove_containers(self) -> None:
        """Every tenant's containers, through the API (each tenant through a user of its own)."""
        if not d.ping(self.layout.docker_socket):
            return
        admin = self.admin()
        with contextlib.suppress(Exception):
            for tenant in admin.tenants():
                users = admin.users(tenant["name"])
                if not users:
                    continue
                issued = admin.issue_token(tenant["name"], users[0]["name"], ttl=600)
                client = self.client(issued["token"])
                try:
                    for container in client.containers.list(all=True):
                        with contextlib.suppress(Exception):
                            container.remove(force=True, v=True)
                finally:
                    client.close()

    def _kill_registry(self, layout: Layout) -> None:
        """The registry process a SIGKILLed controller left running: ``* serve <config>``
        with this instance's config path (never found by name: other instances')."""
        config = str(layout.registry_config).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) >= 3 and argv[1] == b"serve" and argv[2] == config:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _kill_monitors(self, layout: Layout) -> None:
        marker = str(layout.containers_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"/usr/bin/conmon") and marker in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        crun_root = layout.crun_root
        if crun_root.is_dir():
            for state in crun_root.iterdir():
                subprocess.run(
                    ["crun", f"--root={crun_root}", "delete", "-f", state.name],
                    capture_output=True,
                    check=False,
                )

    @staticmethod
    def _unmount_under(root: Path) -> None:
        prefix = str(root)
        with open("/proc/self/mountinfo") as handle:
            points = [line.split()[4] for line in handle]
        for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


class DockerCli:
    """The stock ``docker`` CLI pointed at a cloud."""

    def __init__(self, cloud: TestCloud) -> None:
        self.cloud = cloud
        self.binary = shutil.which("docker") or "docker"

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            env=self.cloud.env(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def run_in_terminal(
        self,
        *args: str,
        size: tuple[int, int] = (24, 80),
        keys: tuple[tuple[float, bytes], ...] = (),
        timeout: float = 60,
    ) -> tuple[int, bytes]:
        """Run the CLI with a pseudo-terminal (``size`` rows and columns) as its
        controlling terminal, as a user at a shell would; type each of ``keys``
        (``(delay_seconds, bytes)``) after its delay. Returns the exit status and
        everything the terminal showed."""
        master, slave = pty.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            [self.binary, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self.cloud.env(),
            preexec_fn=controlling_terminal,  # noqa: PLW1509  (tests only, no threads)
        )
        os.close(slave)
        output = bytearray()
        deadline = time.monotonic() + timeout
        pending = list(keys)
        typed_at = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise AssertionError(f"docker {' '.join(args)} timed out: {bytes(output)!r}")
                if pending and now - typed_at >= pending[0][0]:
                    os.write(master, pending.pop(0)[1])
                    typed_at = now
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    if proc.poll() is not None and not pending:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal's other side is gone
                    break
                if not chunk:
                    break
                output += chunk
            return proc.wait(timeout=max(1.0, deadline - time.monotonic())), bytes(output)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
