"""One stats sample of a container: its cgroup, its network namespace, and the host's CPU.

The agent reads when asked (``GET /v1/containers/{id}/stats``); there is no collector
running in the background, so a host with no one watching pays nothing. The host's CPU
time is read right after the container's, as Docker does, so the two deltas a client
divides cover the same interval.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.clock import now_ns
from dockyard.core.protocol import ContainerStats
from dockyard.network.counters import interface_counters
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.stats import cgroup_stats

__all__ = ["HostCpu", "mem_total", "parse_proc_stat", "sample"]

_NS_PER_S = 1_000_000_000
# The first seven columns of the "cpu" line (user nice system idle iowait irq softirq):
# what Docker sums. steal and guest are left out (guest is already counted in user).
_CPU_COLUMNS = 7


@dataclass(frozen=True, slots=True)
class HostCpu:
    """The host's CPU time over all CPUs (ns) and how many CPUs are online."""

    usage: int
    online: int


def parse_proc_stat(text: str, *, clock_ticks: int) -> HostCpu:
    """The ``cpu`` totals and the ``cpuN`` count of ``/proc/stat`` text; times are in
    ``clock_ticks`` per second (USER_HZ)."""
    usage = online = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu"):
            continue
        if fields[0] == "cpu":
            ticks = sum(int(v) for v in fields[1 : 1 + _CPU_COLUMNS])
            usage = ticks * _NS_PER_S // clock_ticks
        else:
            online += 1
    return HostCpu(usage=usage, online=online)


def mem_total(text: str) -> int:
    """``MemTotal`` of ``/proc/meminfo`` text, in bytes (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def sample(
    container_id: str,
    *,
    cgroup: Cgroup,
    pid: int,
    running: bool,
    proc: Path = Path("/proc"),
) -> ContainerStats:
    """Read one sample now (blocking file reads: run it in a thread). A container that is
    not running gives a zero sample, as Docker gives."""
    read = now_ns()
    if not running:
        return ContainerStats(id=container_id, read=read)
    host_memory = mem_total((proc / "meminfo").read_text())
    counters = cgroup_stats(cgroup, host_memory=host_memory)
    networks = interface_counters(pid, proc=proc)
    host = parse_proc_stat((proc / "stat").read_text(), clock_ticks=os.sysconf("SC_CLK_TCK"))
    counters.cpu.system_usage = host.usage
    counters.cpu.online_cpus = host.online
    return ContainerStats(
        id=container_id,
        read=read,
        running=True,
        cpu=counters.cpu,
        memory=counters.memory,
        pids_current=counters.pids_current,
        pids_limit=counters.pids_limit,
        blkio=counters.blkio,
        networks=networks,
    )
