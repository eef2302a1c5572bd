"""Facts about the agent's host, read once at start."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
from pathlib import Path

from dockyard.core.protocol import PROTOCOL_VERSION, AgentInfo
from dockyard.runtime.cgroups import cgroup_version

__all__ = ["host_info"]


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "Linux"
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return match.group(1) if match else "Linux"


def _mem_total() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _crun_version(crun: str) -> str:
    try:
        out = subprocess.run([crun, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return ""
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.removeprefix("crun version ").strip()


def host_info(*, agent_id: str, boot_id: str, root_dir: Path, crun: str) -> AgentInfo:
    arch = platform.machine()
    return AgentInfo(
        id=agent_id,
        boot_id=boot_id,
        hostname=socket.gethostname(),
        kernel_version=platform.release(),
        operating_system=_os_name(),
        os_type="linux",
        architecture={"x86_64": "x86_64", "aarch64": "aarch64"}.get(arch, arch),
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_driver="cgroupfs",
        cgroup_version=cgroup_version(),
        runtime="crun",
        runtime_version=_crun_version(crun),
        storage_driver="overlayfs",
        root_dir=str(root_dir),
        protocol_version=PROTOCOL_VERSION,
    )
