"""The OCI config.json every container gets (runtime.spec.build_config)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.core.protocol import Resources
from dockyard.runtime import spec as spec_module
from dockyard.runtime.spec import (
    MASKED_PATHS,
    READONLY_PATHS,
    BundleSpec,
    Mount,
    build_config,
    exec_process,
)

MIB = 1024 * 1024
CAPS = ("CAP_CHOWN", "CAP_KILL")


def bundle(**fields: Any) -> BundleSpec:
    values: dict[str, Any] = {
        "args": ("sleep", "60"),
        "env": ("PATH=/bin", "HOSTNAME=web"),
        "cwd": "/srv",
        "uid": 1000,
        "gid": 100,
        "hostname": "web",
        "uid_base": 1_000_000_000,
        "uid_size": 65536,
        "cgroups_path": "/dockyard/t1/abc",
        "capabilities": CAPS,
        "seccomp": None,
        "nofile": 1024,
    }
    values.update(fields)
    return BundleSpec(**values)


def by_destination(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in config["mounts"]}


def test_public_surface() -> None:
    assert set(spec_module.__all__) == {
        "MASKED_PATHS",
        "READONLY_PATHS",
        "BundleSpec",
        "Mount",
        "build_config",
        "exec_process",
        "linux_resources",
    }


def test_config_is_plain_json() -> None:
    config = build_config(bundle(seccomp={"defaultAction": "SCMP_ACT_ERRNO"}))
    assert json.loads(json.dumps(config)) == config
    assert config["ociVersion"] == "1.0.2"


def test_process() -> None:
    process = build_config(bundle(terminal=True, additional_gids=(5, 27)))["process"]
    assert process["args"] == ["sleep", "60"]
    assert process["env"] == ["PATH=/bin", "HOSTNAME=web"]
    assert process["cwd"] == "/srv"
    assert process["terminal"] is True
    assert process["user"] == {"uid": 1000, "gid": 100, "additionalGids": [5, 27]}
    assert process["noNewPrivileges"] is True
    assert "oomScoreAdj" not in process


def test_no_additional_gids_key_without_groups_and_default_cwd() -> None:
    process = build_config(bundle(cwd=""))["process"]
    assert process["user"] == {"uid": 1000, "gid": 100}
    assert process["cwd"] == "/"


def test_oom_score_adj() -> None:
    assert build_config(bundle(oom_score_adj=500))["process"]["oomScoreAdj"] == 500


def test_capabilities_in_every_set_that_matters() -> None:
    caps = build_config(bundle())["process"]["capabilities"]
    assert caps == {"bounding": list(CAPS), "effective": list(CAPS), "permitted": list(CAPS)}
    assert "inheritable" not in caps
    assert "ambient" not in caps


def test_no_capabilities() -> None:
    caps = build_config(bundle(capabilities=()))["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == []


def test_rlimits() -> None:
    assert build_config(bundle(nofile=4096))["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}
    ]


def test_every_namespace_including_user_with_the_tenants_range() -> None:
    linux = build_config(bundle(uid_base=2_000_000, uid_size=65536))["linux"]
    assert {ns["type"] for ns in linux["namespaces"]} == {
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
        "user",
        "cgroup",
    }
    assert all("path" not in ns for ns in linux["namespaces"]), "never join a host namespace"
    mapping = [{"containerID": 0, "hostID": 2_000_000, "size": 65536}]
    assert linux["uidMappings"] == mapping
    assert linux["gidMappings"] == mapping
    assert linux["cgroupsPath"] == "/dockyard/t1/abc"


def test_joining_a_peers_network_joins_its_user_namespace_too() -> None:
    linux = build_config(bundle(join_pid=4242))["linux"]
    paths = {ns["type"]: ns.get("path") for ns in linux["namespaces"]}
    assert paths == {
        "pid": None,
        "network": "/proc/4242/ns/net",
        "ipc": None,
        "uts": None,
        "mount": None,
        "user": "/proc/4242/ns/user",
        "cgroup": None,
    }
    assert "uidMappings" not in linux
    assert "gidMappings" not in linux


def test_masked_and_readonly_paths_are_dockers() -> None:
    linux = build_config(bundle())["linux"]
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"):
        assert path in MASKED_PATHS
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/irq"):
        assert path in READONLY_PATHS


def test_seccomp_only_when_given() -> None:
    assert "seccomp" not in build_config(bundle())["linux"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    assert build_config(bundle(seccomp=profile))["linux"]["seccomp"] == profile


def test_devices_default_deny_then_the_allowlist() -> None:
    devices = build_config(bundle())["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d["type"], d["major"], d.get("minor")) for d in devices[1:]}
    assert all(d["allow"] for d in devices[1:])
    assert allowed == {
        ("c", 1, 3),
        ("c", 1, 5),
        ("c", 1, 7),
        ("c", 1, 8),
        ("c", 1, 9),
        ("c", 5, 0),
        ("c", 5, 2),
        ("c", 136, None),
    }
    assert not any(d["type"] == "b" for d in devices[1:]), "no block device is ever allowed"


def test_no_limits_means_only_the_device_rules() -> None:
    assert set(build_config(bundle())["linux"]["resources"]) == {"devices"}


def test_memory_limits() -> None:
    memory = build_config(bundle(resources=Resources(memory=64 * MIB)))["linux"]["resources"][
        "memory"
    ]
    assert memory == {"limit": 64 * MIB, "swap": 128 * MIB}


@pytest.mark.parametrize(
    ("swap", "expected"),
    [(-1, -1), (0, 128 * MIB), (96 * MIB, 96 * MIB), (32 * MIB, 64 * MIB)],
)
def test_swap(swap: int, expected: int) -> None:
    resources = Resources(memory=64 * MIB, memory_swap=swap)
    memory = build_config(bundle(resources=resources))["linux"]["resources"]["memory"]
    assert memory["swap"] == expected
    assert memory["swap"] == -1 or memory["swap"] >= memory["limit"]


def test_no_swap_key_where_swap_accounting_is_missing() -> None:
    config = build_config(bundle(resources=Resources(memory=64 * MIB), memory_swap_supported=False))
    assert config["linux"]["resources"]["memory"] == {"limit": 64 * MIB}


def test_memory_reservation() -> None:
    resources = Resources(memory=64 * MIB, memory_reservation=32 * MIB)
    memory = build_config(bundle(resources=resources))["linux"]["resources"]["memory"]
    assert memory["reservation"] == 32 * MIB


def test_cpu_limits() -> None:
    resources = Resources(
        cpu_shares=512, cpu_quota=50_000, cpu_period=100_000, cpuset_cpus="0-1", cpuset_mems="0"
    )
    cpu = build_config(bundle(resources=resources))["linux"]["resources"]["cpu"]
    assert cpu == {"shares": 512, "quota": 50_000, "period": 100_000, "cpus": "0-1", "mems": "0"}


def test_cpu_quota_without_period_uses_the_kernel_default_period() -> None:
    cpu = build_config(bundle(resources=Resources(cpu_quota=50_000)))["linux"]["resources"]["cpu"]
    assert cpu == {"quota": 50_000, "period": 100_000}
    alone = build_config(bundle(resources=Resources(cpu_period=50_000)))["linux"]["resources"]
    assert alone["cpu"] == {"period": 50_000}


def test_pids_and_blkio() -> None:
    resources = build_config(bundle(resources=Resources(pids_limit=100, blkio_weight=300)))[
        "linux"
    ]["resources"]
    assert resources["pids"] == {"limit": 100}
    assert resources["blockIO"] == {"weight": 300}


@pytest.mark.parametrize("readonly", [True, False])
def test_readonly_root(readonly: bool) -> None:
    assert build_config(bundle(readonly_rootfs=readonly))["root"] == {
        "path": "rootfs",
        "readonly": readonly,
    }


def test_hostname_and_domainname() -> None:
    config = build_config(bundle())
    assert config["hostname"] == "web"
    assert "domainname" not in config
    assert build_config(bundle(domainname="example.com"))["domainname"] == "example.com"


def test_base_mounts_are_locked_down() -> None:
    mounts = by_destination(build_config(bundle()))
    for destination in (
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ):
        assert "nosuid" in mounts[destination]["options"], destination
    assert "ro" in mounts["/sys"]["options"]
    assert "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert "noexec" in mounts["/proc"]["options"]
    assert "size=67108864" in mounts["/dev/shm"]["options"]


def test_shm_size() -> None:
    mounts = by_destination(build_config(bundle(shm_size=16 * MIB)))
    assert f"size={16 * MIB}" in mounts["/dev/shm"]["options"]


def test_extra_mounts_follow_the_base_mounts_in_order() -> None:
    extra = (
        Mount("/data", "bind", "/var/lib/v/data", ("rbind", "rw")),
        Mount("/run", "tmpfs", "tmpfs", ("nosuid", "size=1m")),
    )
    mounts = build_config(bundle(mounts=extra))["mounts"]
    assert mounts[-2:] == [
        {
            "destination": "/data",
            "type": "bind",
            "source": "/var/lib/v/data",
            "options": ["rbind", "rw"],
        },
        {
            "destination": "/run",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "size=1m"],
        },
    ]
    assert [m["destination"] for m in mounts].index("/proc") == 0


CONTAINER_PROCESS: dict[str, Any] = {
    "terminal": False,
    "user": {"uid": 0, "gid": 0},
    "args": ["/sbin/tini", "--", "sleep", "600"],
    "env": ["PATH=/bin", "HOME=/root", "A=1"],
    "cwd": "/srv",
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": True,
    "consoleSize": {"height": 1, "width": 1},
}


def test_exec_process_keeps_the_confinement_and_replaces_what_it_names() -> None:
    process = exec_process(
        CONTAINER_PROCESS,
        args=("sh", "-c", "id"),
        env=("A=2", "B=3"),
        cwd="/tmp",
        user=(1000, 1001, (5, 6)),
        terminal=True,
        console=(40, 120),
    )
    assert process["args"] == ["sh", "-c", "id"]
    assert process["env"] == ["PATH=/bin", "HOME=/root", "A=2", "B=3"]
    assert process["cwd"] == "/tmp"
    assert process["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [5, 6]}
    assert process["terminal"] is True
    assert process["consoleSize"] == {"height": 40, "width": 120}
    for kept in ("capabilities", "rlimits", "noNewPrivileges"):
        assert process[kept] == CONTAINER_PROCESS[kept]
    assert CONTAINER_PROCESS["env"] == ["PATH=/bin", "HOME=/root", "A=1"], "base untouched"


def test_exec_process_defaults_to_the_containers_user_and_cwd() -> None:
    process = exec_process(
        CONTAINER_PROCESS, args=("true",), env=(), cwd="", user=None, terminal=False
    )
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["cwd"] == "/srv"
    assert process["env"] == CONTAINER_PROCESS["env"]
    assert "consoleSize" not in process, "no console without a terminal"
