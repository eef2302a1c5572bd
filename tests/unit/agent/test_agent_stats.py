"""One stats sample (agent.stats): the host's CPU facts and the composition of a sample."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.agent import stats
from dockyard.agent.stats import HostCpu, mem_total, parse_proc_stat, sample
from dockyard.runtime.cgroups import Cgroup

PROC_STAT = """\
cpu  304376 0 107165 2063812 12866 0 3693 11327 0 0
cpu0 96943 0 41830 1103087 2133 0 1274 5828 0 0
cpu1 207433 0 65335 960725 10732 0 2418 5498 0 0
intr 7955319 0 0 0
ctxt 17862974
btime 1764400000
"""
MEMINFO = "MemTotal:       24607844 kB\nMemFree:        1000 kB\n"


def test_public_surface() -> None:
    assert set(stats.__all__) == {"HostCpu", "mem_total", "parse_proc_stat", "sample"}


def test_parse_proc_stat_sums_seven_columns_and_counts_cpus() -> None:
    ticks = 304376 + 0 + 107165 + 2063812 + 12866 + 0 + 3693  # steal left out
    assert parse_proc_stat(PROC_STAT, clock_ticks=100) == HostCpu(
        usage=ticks * 10_000_000, online=2
    )
    assert parse_proc_stat("", clock_ticks=100) == HostCpu(usage=0, online=0)


def test_parse_proc_stat_of_this_host() -> None:
    host = parse_proc_stat(Path("/proc/stat").read_text(), clock_ticks=os.sysconf("SC_CLK_TCK"))
    assert host.online == os.sysconf("SC_NPROCESSORS_ONLN")
    assert host.usage > 0


def test_mem_total() -> None:
    assert mem_total(MEMINFO) == 24607844 * 1024
    assert mem_total("") == 0


def _fake_host(tmp_path: Path) -> tuple[Path, Cgroup]:
    proc = tmp_path / "proc"
    (proc / "7" / "net").mkdir(parents=True)
    (proc / "stat").write_text(PROC_STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "7" / "net" / "dev").write_text(
        "Inter-|\n face |\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"
        "  eth0: 100 2 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n"
    )
    root = tmp_path / "cgroup"
    for name, text in {
        "cpuacct/cpuacct.usage": "5000\n",
        "memory/memory.usage_in_bytes": "4096\n",
        "memory/memory.limit_in_bytes": "9223372036854771712\n",
        "pids/pids.current": "3\n",
        "pids/pids.max": "1024\n",
    }.items():
        controller, _, base = name.partition("/")
        path = root / controller / "dy" / "c1" / base
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return proc, Cgroup("dy/c1", root=root)


def test_sample_of_a_running_container(tmp_path: Path) -> None:
    proc, cgroup = _fake_host(tmp_path)
    got = sample("c1", cgroup=cgroup, pid=7, running=True, proc=proc)
    assert got.id == "c1" and got.running and got.read > 0
    assert got.cpu.usage == 5000
    assert got.cpu.online_cpus == 2
    assert (
        got.cpu.system_usage
        == parse_proc_stat(PROC_STAT, clock_ticks=os.sysconf("SC_CLK_TCK")).usage
    )
    assert got.memory.usage == 4096
    assert got.memory.limit == 24607844 * 1024  # no limit: the host's memory
    assert (got.pids_current, got.pids_limit) == (3, 1024)
    assert set(got.networks) == {"eth0"}
    assert (got.networks["eth0"].rx_bytes, got.networks["eth0"].tx_bytes) == (100, 50)


def test_sample_of_a_stopped_container_is_zero(tmp_path: Path) -> None:
    proc, cgroup = _fake_host(tmp_path)
    got = sample("c1", cgroup=cgroup, pid=0, running=False, proc=proc)
    assert got.id == "c1" and not got.running and got.read > 0
    assert got.cpu.usage == 0 and got.memory.usage == 0 and got.pids_current == 0
    assert got.networks == {}
