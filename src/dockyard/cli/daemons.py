"""Starting, finding and stopping the embedded cloud's daemons from the CLI.

The CLI never imports the daemons: it starts them as processes (``python -m``), which keeps
``dockyard`` quick to start and the layers apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.errors import Unavailable
from dockyard.core.layout import Layout

__all__ = ["DEFAULT_TRANSIT_SUBNET", "Daemon", "daemons", "is_running", "ping", "start", "stop"]

DEFAULT_TRANSIT_SUBNET = "100.64.0.0/16"  # the agent's default (network.host)


@dataclass(frozen=True, slots=True)
class Daemon:
    name: str
    module: str
    pidfile: Path
    args: tuple[str, ...]


def daemons(
    layout: Layout,
    *,
    bridge_subnet: str,
    uid_range_start: int,
    tls_address: str = "",
    transit_subnet: str = DEFAULT_TRANSIT_SUBNET,
    registry_address: str = "",
) -> list[Daemon]:
    """The agent and the controller of ``layout``; ``tls_address``: the controller's TLS
    listener (``host:port``; empty: none); ``transit_subnet``: the agent's, for its
    tenants' router uplinks; ``registry_address``: the controller's registry front
    (``host:port``; empty: none)."""
    common = (
        "--state-dir",
        str(layout.state_dir),
        "--run-dir",
        str(layout.run_dir),
        "--instance",
        layout.instance,
    )
    internal = f"unix://{layout.controller_socket}"
    return [
        Daemon(
            "agent",
            "dockyard.daemon.agent",
            layout.agent_pidfile,
            (*common, "--controller", internal, "--transit-subnet", transit_subnet),
        ),
        Daemon(
            "controller",
            "dockyard.daemon.controller",
            layout.controller_pidfile,
            (
                *common,
                "--agent",
                f"unix://{layout.agent_socket}",
                "--seed-busybox",
                "--bridge-subnet",
                bridge_subnet,
                "--uid-range-start",
                str(uid_range_start),
                *(("--tls-address", tls_address) if tls_address else ()),
                *(("--registry-address", registry_address) if registry_address else ()),
            ),
        ),
    ]


def is_running(pidfile: Path) -> int:
    """The daemon's pid if it holds its pidfile lock, else 0."""
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode().strip()
            return int(text) if text.isdecimal() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return 0
    finally:
        os.close(fd)


def start(daemon: Daemon, layout: Layout) -> bool:
    """Start ``daemon`` in the background unless it runs; True if it was started."""
    if is_running(daemon.pidfile):
        return False
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(layout.log_dir / f"{daemon.name}.log", "ab")  # noqa: SIM115
    with log:
        subprocess.Popen(
            [sys.executable, "-m", daemon.module, *daemon.args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    return True


def ping(path: Path, timeout: float = 1.0) -> bool:
    """Whether a Docker API answers ``/_ping`` on the unix socket ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: dockyard\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _hosts_ready(path: Path) -> bool:
    """Whether the controller (its internal socket at ``path``) has every agent connected."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(
                b"GET /internal/v1/ready HTTP/1.1\r\nHost: dockyard\r\nConnection: close\r\n\r\n"
            )
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200")


def wait_ready(layout: Layout, *, timeout: float) -> None:
    """Wait until the API answers and every agent is connected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(layout.docker_socket) and _hosts_ready(layout.controller_socket):
            return
        started = time.monotonic() - (deadline - timeout)
        if started > 5 and not is_running(layout.controller_pidfile):
            break  # the controller died at start-up: its log says why
        time.sleep(0.1)
    raise Unavailable(
        f"Dockyard did not come up; see {layout.log_dir}/controller.log and agent.log"
    )


def stop(daemon: Daemon, *, timeout: float = 20.0) -> bool:
    """Ask ``daemon`` to stop (SIGTERM), waiting until it has; True if it was running."""
    pid = is_running(daemon.pidfile)
    if pid <= 0:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(daemon.pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_running(daemon.pidfile):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True
