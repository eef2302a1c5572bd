"""A container's resource counters, read from its cgroup (v1 or v2), for ``docker stats``.

Which files feed which counter (all under the container's cgroup):

================  ==========================================  ===================================
counter           cgroup v1                                   cgroup v2
================  ==========================================  ===================================
CPU total         ``cpuacct.usage`` (ns)                      ``cpu.stat`` ``usage_usec``
CPU per CPU       ``cpuacct.usage_percpu``                    (not kept)
CPU user/kernel   ``cpuacct.stat`` (USER_HZ ticks)            ``cpu.stat`` ``user_usec``,
                                                              ``system_usec``
throttling        ``cpu.stat`` ``nr_periods``,                ``cpu.stat`` ``nr_periods``,
                  ``nr_throttled``, ``throttled_time`` (ns)   ``nr_throttled``, ``throttled_usec``
memory usage      ``memory.usage_in_bytes``                   ``memory.current``
memory peak       ``memory.max_usage_in_bytes``               ``memory.peak`` (Linux 5.19+)
memory limit      ``memory.limit_in_bytes``                   ``memory.max`` (``max``: none)
memory failcnt    ``memory.failcnt``                          (not kept)
memory details    ``memory.stat``                             ``memory.stat``
pids              ``pids.current``, ``pids.max``              the same
block I/O         ``blkio.io_*_recursive``; without CFQ       ``io.stat`` ``rbytes``/``wbytes``
                  (blk-mq kernels) ``blkio.throttle.*``
================  ==========================================  ===================================

A missing file reads as zero: a cgroup can vanish between two reads (the container exits),
and a controller may not be mounted. The parsers are pure functions over the files' text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dockyard.core.protocol import BlkioEntry, BlkioStats, CpuStats, MemoryStats
from dockyard.runtime.cgroups import Cgroup

__all__ = [
    "CgroupStats",
    "cgroup_stats",
    "parse_blkio_v1",
    "parse_io_stat",
    "parse_keyed",
    "parse_limit",
]

_USEC = 1_000
_NS_PER_S = 1_000_000_000
# Counters Docker reports from cgroup v1 blkio, by the file's suffix. The first two have a
# blk-throttle twin that counts on every kernel; the rest exist only with the CFQ
# scheduler (gone since Linux 5.0), so they are usually empty.
_BLKIO_V1 = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)
_BLKIO_THROTTLED = ("io_service_bytes_recursive", "io_serviced_recursive")


@dataclass(slots=True)
class CgroupStats:
    """What a cgroup tells about its processes (the host's share is added by the agent)."""

    cpu: CpuStats = field(default_factory=CpuStats)
    memory: MemoryStats = field(default_factory=MemoryStats)
    pids_current: int = 0
    pids_limit: int = 0
    blkio: BlkioStats = field(default_factory=BlkioStats)


def parse_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``, ``cpuacct.stat``); lines that are
    not a key and an integer are skipped."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def parse_limit(text: str) -> int:
    """A limit file (``pids.max``, ``memory.max``, ``memory.limit_in_bytes``): its value,
    or 0 for ``max`` (no limit), an empty or unreadable file."""
    value = text.strip()
    return int(value) if value.isdigit() else 0


def _parse_int(text: str) -> int:
    value = text.strip()
    return int(value) if value.isdigit() else 0


def parse_blkio_v1(text: str) -> list[BlkioEntry]:
    """A v1 blkio counter file: ``MAJ:MIN Op value`` lines; the ``Total N`` line is left out
    (it is the sum over devices)."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            entries.append(_entry(parts[0], parts[1], int(parts[2])))
        elif len(parts) == 2 and ":" in parts[0] and parts[1].isdigit():
            # Counters without an operation (io_time, sectors) have one value per device.
            entries.append(_entry(parts[0], "", int(parts[1])))
    return [e for e in entries if e is not None]


def parse_io_stat(text: str) -> list[BlkioEntry]:
    """cgroup v2 ``io.stat`` (``MAJ:MIN rbytes=N wbytes=N rios=N ...``) as Docker reports it:
    a ``read`` and a ``write`` byte count per device."""
    entries = []
    for line in text.splitlines():
        device, *pairs = line.split() or [""]
        values = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            values[key] = value
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            if values.get(key, "").isdigit():
                entries.append(_entry(device, op, int(values[key])))
    return [e for e in entries if e is not None]


def _entry(device: str, op: str, value: int) -> BlkioEntry | None:
    major, _, minor = device.partition(":")
    if not (major.isdigit() and minor.isdigit()):
        return None
    return BlkioEntry(major=int(major), minor=int(minor), op=op, value=value)


def _capped(limit: int, host_memory: int) -> int:
    """A memory limit as Docker reports it: no limit (0, or the v1 "unlimited" value near
    2^63) is the host's memory."""
    if host_memory > 0 and (limit <= 0 or limit > host_memory):
        return host_memory
    return limit


def cgroup_stats(cgroup: Cgroup, *, host_memory: int) -> CgroupStats:
    """Read every counter of ``cgroup`` now. ``host_memory`` (bytes) stands in for "no
    memory limit"."""
    if cgroup.unified:
        return _v2(cgroup, host_memory)
    return _v1(cgroup, host_memory)


def _v1(cgroup: Cgroup, host_memory: int) -> CgroupStats:
    # cpuacct.stat, not cpuacct.usage_user/usage_sys: the kernel scales its split to the
    # precise total (cputime_adjust), where the raw tick counts can add up to more.
    acct = parse_keyed(cgroup.read("cpuacct", "cpuacct.stat"))
    hz = os.sysconf("SC_CLK_TCK")
    throttling = parse_keyed(cgroup.read("cpu", "cpu.stat"))
    cpu = CpuStats(
        usage=_parse_int(cgroup.read("cpuacct", "cpuacct.usage")),
        percpu_usage=[int(x) for x in cgroup.read("cpuacct", "cpuacct.usage_percpu").split()],
        kernel_usage=acct.get("system", 0) * _NS_PER_S // hz,
        user_usage=acct.get("user", 0) * _NS_PER_S // hz,
        periods=throttling.get("nr_periods", 0),
        throttled_periods=throttling.get("nr_throttled", 0),
        throttled_time=throttling.get("throttled_time", 0),
    )
    memory = MemoryStats(
        usage=_parse_int(cgroup.read("memory", "memory.usage_in_bytes")),
        max_usage=_parse_int(cgroup.read("memory", "memory.max_usage_in_bytes")),
        failcnt=_parse_int(cgroup.read("memory", "memory.failcnt")),
        limit=_capped(parse_limit(cgroup.read("memory", "memory.limit_in_bytes")), host_memory),
        stats=parse_keyed(cgroup.read("memory", "memory.stat")),
    )
    blkio = BlkioStats()
    for name in _BLKIO_V1:
        text = cgroup.read("blkio", f"blkio.{name}")
        if not text and name in _BLKIO_THROTTLED:
            text = cgroup.read("blkio", f"blkio.throttle.{name}")
        setattr(blkio, name, parse_blkio_v1(text))
    return CgroupStats(
        cpu=cpu,
        memory=memory,
        pids_current=_parse_int(cgroup.read("pids", "pids.current")),
        pids_limit=parse_limit(cgroup.read("pids", "pids.max")),
        blkio=blkio,
    )


def _v2(cgroup: Cgroup, host_memory: int) -> CgroupStats:
    stat = parse_keyed(cgroup.read("cpu", "cpu.stat"))
    cpu = CpuStats(
        usage=stat.get("usage_usec", 0) * _USEC,
        kernel_usage=stat.get("system_usec", 0) * _USEC,
        user_usage=stat.get("user_usec", 0) * _USEC,
        periods=stat.get("nr_periods", 0),
        throttled_periods=stat.get("nr_throttled", 0),
        throttled_time=stat.get("throttled_usec", 0) * _USEC,
    )
    memory = MemoryStats(
        usage=_parse_int(cgroup.read("memory", "memory.current")),
        max_usage=_parse_int(cgroup.read("memory", "memory.peak")),
        limit=_capped(parse_limit(cgroup.read("memory", "memory.max")), host_memory),
        stats=parse_keyed(cgroup.read("memory", "memory.stat")),
    )
    return CgroupStats(
        cpu=cpu,
        memory=memory,
        pids_current=_parse_int(cgroup.read("pids", "pids.current")),
        pids_limit=parse_limit(cgroup.read("pids", "pids.max")),
        blkio=BlkioStats(io_service_bytes_recursive=parse_io_stat(cgroup.read("io", "io.stat"))),
    )
