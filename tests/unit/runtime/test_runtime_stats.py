"""A container's counters from its cgroup files (runtime.stats), on v1 and v2 layouts.

The fixture trees hold the files as the kernel writes them (v1 captured on the Debian 12 /
Linux 6.18 test host, v2 in the kernel's documented format).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.core.protocol import BlkioEntry
from dockyard.runtime import stats
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.stats import (
    cgroup_stats,
    parse_blkio_v1,
    parse_io_stat,
    parse_keyed,
    parse_limit,
)

PATH = "dockyard/t1/c1"
GIB = 1024**3
HZ = os.sysconf("SC_CLK_TCK")

MEMORY_STAT_V1 = """\
cache 299008
rss 147456
rss_huge 0
shmem 0
mapped_file 0
dirty 4096
pgfault 715
inactive_anon 36864
active_anon 0
inactive_file 172032
active_file 126976
hierarchical_memory_limit 9223372036854771712
total_cache 299008
total_rss 147456
total_inactive_file 172032
"""

BLKIO_V1 = """\
254:0 Read 8192
254:0 Write 8388608
254:0 Sync 8396800
254:0 Async 0
254:0 Discard 0
254:0 Total 8396800
Total 8396800
"""

V1_FILES = {
    "cpuacct/cpuacct.usage": "230220331\n",
    "cpuacct/cpuacct.usage_percpu": "91101016 139119315 \n",
    "cpuacct/cpuacct.stat": "user 6\nsystem 16\n",
    "cpu/cpu.stat": (
        "nr_periods 21\nnr_throttled 20\nthrottled_time 969369454\nnr_bursts 0\nburst_time 0\n"
    ),
    "memory/memory.usage_in_bytes": "1318912\n",
    "memory/memory.max_usage_in_bytes": "1826816\n",
    "memory/memory.limit_in_bytes": "209715200\n",
    "memory/memory.failcnt": "3\n",
    "memory/memory.stat": MEMORY_STAT_V1,
    "pids/pids.current": "2\n",
    "pids/pids.max": "1024\n",
    # A blk-mq host: no CFQ files, the throttle layer's twins count.
    "blkio/blkio.throttle.io_service_bytes_recursive": BLKIO_V1,
    "blkio/blkio.throttle.io_serviced_recursive": "254:0 Read 2\n254:0 Write 8\nTotal 10\n",
}

V2_FILES = {
    "cpu.stat": (
        "usage_usec 230220\nuser_usec 91101\nsystem_usec 139119\n"
        "nr_periods 21\nnr_throttled 20\nthrottled_usec 969369\n"
    ),
    "memory.current": "1318912\n",
    "memory.peak": "1826816\n",
    "memory.max": "max\n",
    "memory.stat": "anon 147456\nfile 299008\ninactive_file 172032\nactive_file 126976\n",
    "pids.current": "2\n",
    "pids.max": "max\n",
    "io.stat": "254:0 rbytes=8192 wbytes=8388608 rios=2 wios=8 dbytes=0 dios=0\n",
}


def _tree(root: Path, files: dict[str, str], *, v2: bool) -> Cgroup:
    if v2:
        (root / "cgroup.controllers").parent.mkdir(parents=True, exist_ok=True)
        (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    for name, text in files.items():
        if v2:
            path = root / PATH / name
        else:
            controller, _, base = name.partition("/")
            path = root / controller / PATH / base
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Cgroup(PATH, root=root)


def test_public_surface() -> None:
    assert set(stats.__all__) == {
        "CgroupStats",
        "cgroup_stats",
        "parse_blkio_v1",
        "parse_io_stat",
        "parse_keyed",
        "parse_limit",
    }


def test_parse_keyed() -> None:
    assert parse_keyed("user 6\nsystem 16\n\nbad line here\nword x\n") == {"user": 6, "system": 16}
    assert parse_keyed("") == {}


@pytest.mark.parametrize(
    ("text", "value"),
    [("1024\n", 1024), ("max\n", 0), ("", 0), ("9223372036854771712", 9223372036854771712)],
)
def test_parse_limit(text: str, value: int) -> None:
    assert parse_limit(text) == value


def test_parse_blkio_v1_keeps_device_lines() -> None:
    entries = parse_blkio_v1(BLKIO_V1)
    assert entries[0] == BlkioEntry(major=254, minor=0, op="Read", value=8192)
    assert [e.op for e in entries] == ["Read", "Write", "Sync", "Async", "Discard", "Total"]
    assert parse_blkio_v1("Total 0\n") == []
    # Counters without an operation (io_time, sectors): one value per device.
    assert parse_blkio_v1("8:16 1234\n") == [BlkioEntry(8, 16, "", 1234)]
    assert parse_blkio_v1("garbage\nx:y Read 1\n") == []


def test_parse_io_stat() -> None:
    text = "254:0 rbytes=8192 wbytes=4096 rios=2 wios=1\n\n8:0 rbytes=1 wbytes=2\n"
    assert parse_io_stat(text) == [
        BlkioEntry(254, 0, "read", 8192),
        BlkioEntry(254, 0, "write", 4096),
        BlkioEntry(8, 0, "read", 1),
        BlkioEntry(8, 0, "write", 2),
    ]
    assert parse_io_stat("") == []


def test_v1(tmp_path: Path) -> None:
    cgroup = _tree(tmp_path, V1_FILES, v2=False)
    assert not cgroup.unified
    got = cgroup_stats(cgroup, host_memory=24 * GIB)
    assert got.cpu.usage == 230220331
    assert got.cpu.percpu_usage == [91101016, 139119315]
    assert got.cpu.user_usage == 6 * 1_000_000_000 // HZ
    assert got.cpu.kernel_usage == 16 * 1_000_000_000 // HZ
    assert (got.cpu.periods, got.cpu.throttled_periods, got.cpu.throttled_time) == (
        21,
        20,
        969369454,
    )
    assert got.cpu.system_usage == 0 and got.cpu.online_cpus == 0  # the host's, not here
    assert got.memory.usage == 1318912
    assert got.memory.max_usage == 1826816
    assert got.memory.limit == 200 * 1024 * 1024
    assert got.memory.failcnt == 3
    assert got.memory.stats["total_inactive_file"] == 172032
    assert got.memory.stats["hierarchical_memory_limit"] == 9223372036854771712
    assert (got.pids_current, got.pids_limit) == (2, 1024)
    assert got.blkio.io_service_bytes_recursive is not None
    assert BlkioEntry(254, 0, "Write", 8388608) in got.blkio.io_service_bytes_recursive
    assert got.blkio.io_serviced_recursive == [
        BlkioEntry(254, 0, "Read", 2),
        BlkioEntry(254, 0, "Write", 8),
    ]
    # CFQ-only counters: present and empty, as Docker reports them on such hosts.
    assert got.blkio.io_queue_recursive == [] and got.blkio.sectors_recursive == []


def test_v1_prefers_cfq_counters_when_present(tmp_path: Path) -> None:
    files = dict(V1_FILES)
    files["blkio/blkio.io_service_bytes_recursive"] = "8:0 Read 1\n8:0 Write 2\nTotal 3\n"
    files["blkio/blkio.sectors_recursive"] = "8:0 7\n"
    got = cgroup_stats(_tree(tmp_path, files, v2=False), host_memory=GIB)
    assert got.blkio.io_service_bytes_recursive == [
        BlkioEntry(8, 0, "Read", 1),
        BlkioEntry(8, 0, "Write", 2),
    ]
    assert got.blkio.sectors_recursive == [BlkioEntry(8, 0, "", 7)]


def test_v1_without_a_memory_limit_reports_the_host_memory(tmp_path: Path) -> None:
    files = dict(V1_FILES)
    files["memory/memory.limit_in_bytes"] = "9223372036854771712\n"
    files["pids/pids.max"] = "max\n"
    got = cgroup_stats(_tree(tmp_path, files, v2=False), host_memory=24 * GIB)
    assert got.memory.limit == 24 * GIB
    assert got.pids_limit == 0


def test_v2(tmp_path: Path) -> None:
    cgroup = _tree(tmp_path, V2_FILES, v2=True)
    assert cgroup.unified
    got = cgroup_stats(cgroup, host_memory=24 * GIB)
    assert got.cpu.usage == 230220 * 1000
    assert got.cpu.user_usage == 91101 * 1000
    assert got.cpu.kernel_usage == 139119 * 1000
    assert got.cpu.percpu_usage == []
    assert (got.cpu.periods, got.cpu.throttled_periods, got.cpu.throttled_time) == (
        21,
        20,
        969369 * 1000,
    )
    assert got.memory.usage == 1318912
    assert got.memory.max_usage == 1826816
    assert got.memory.limit == 24 * GIB  # "max"
    assert got.memory.failcnt == 0
    assert got.memory.stats == {
        "anon": 147456,
        "file": 299008,
        "inactive_file": 172032,
        "active_file": 126976,
    }
    assert (got.pids_current, got.pids_limit) == (2, 0)
    assert got.blkio.io_service_bytes_recursive == [
        BlkioEntry(254, 0, "read", 8192),
        BlkioEntry(254, 0, "write", 8388608),
    ]
    # v2 keeps none of the other blkio lists (Docker sends null for them).
    assert got.blkio.io_serviced_recursive is None


def test_v2_limit_below_host_memory(tmp_path: Path) -> None:
    files = dict(V2_FILES)
    files["memory.max"] = "67108864\n"
    files["pids.max"] = "100\n"
    got = cgroup_stats(_tree(tmp_path, files, v2=True), host_memory=24 * GIB)
    assert got.memory.limit == 64 * 1024 * 1024
    assert got.pids_limit == 100


@pytest.mark.parametrize("v2", [False, True])
def test_a_vanished_cgroup_reads_as_zero(tmp_path: Path, v2: bool) -> None:
    if v2:
        (tmp_path / "cgroup.controllers").write_text("")
    got = cgroup_stats(Cgroup(PATH, root=tmp_path), host_memory=GIB)
    assert got.cpu.usage == 0 and got.memory.usage == 0 and got.pids_current == 0
    assert got.memory.stats == {}
