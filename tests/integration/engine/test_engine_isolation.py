"""Isolation by default, checked against kernel truth read from the host."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import docker
import pytest

from dockyard.core.capabilities import DEFAULT_CAPABILITIES, bitmask
from dockyard.testing.cloud import TestCloud


def status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def running(client: docker.DockerClient, cleanup: list[str], *args: str, **kwargs: object) -> int:
    container = client.containers.run(
        "busybox", list(args) or ["sleep", "60"], detach=True, **kwargs
    )
    cleanup.append(container.id)
    container.reload()
    return int(container.attrs["State"]["Pid"])


def cgroup_dir(cloud: TestCloud, controller: str, container_id: str) -> Path:
    root = Path(f"/sys/fs/cgroup/{controller}{cloud.layout.cgroup_root}")
    found = list(root.glob(f"*/{container_id}"))
    assert len(found) == 1, found
    return found[0]


def test_capabilities_no_new_privs_seccomp(client: docker.DockerClient, cleanup: list[str]) -> None:
    fields = status_fields(running(client, cleanup))
    expected = f"{bitmask(DEFAULT_CAPABILITIES):016x}"
    assert fields["CapEff"] == expected
    assert fields["CapPrm"] == expected
    assert fields["CapBnd"] == expected
    assert fields["CapAmb"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


def test_cap_drop_and_refused_cap_add(client: docker.DockerClient, cleanup: list[str]) -> None:
    fields = status_fields(running(client, cleanup, cap_drop=["ALL"], cap_add=["CHOWN"]))
    assert fields["CapEff"] == f"{bitmask(['CAP_CHOWN']):016x}"
    with pytest.raises(docker.errors.APIError) as info:
        client.containers.create("busybox", ["true"], cap_add=["SYS_ADMIN"])
    assert info.value.status_code == 403
    assert "CAP_SYS_ADMIN" in str(info.value)


def test_user_namespace_maps_root_to_tenant_range(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    pid = running(client, cleanup)
    mapping = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert mapping[0] == "0"
    base = int(mapping[1])
    assert base >= cloud.uid_range_start and mapping[2] == "65536"
    assert Path(f"/proc/{pid}/gid_map").read_text().split() == mapping
    uids = status_fields(pid)["Uid"].split()
    assert uids == [str(base)] * 4  # container root is an unprivileged host uid
    # The image's files: root-owned inside, the tenant's base uid seen from the host.
    owner = Path(f"/proc/{pid}/root/bin/busybox").stat().st_uid
    assert owner == base


def test_layers_are_idmapped_not_copied(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    before = sorted(p.name for p in cloud.layout.layers_dir.iterdir())
    pids = [running(client, cleanup) for _ in range(3)]
    after = sorted(p.name for p in cloud.layout.layers_dir.iterdir())
    assert before == after  # no per-container copy of any layer
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    idmapped = str(cloud.layout.idmapped_dir)
    rootfs_mounts = [
        line for line in mountinfo if " overlay " in line and str(cloud.layout.bundles_dir) in line
    ]
    assert len(rootfs_mounts) >= 3
    for line in rootfs_mounts:
        assert f"lowerdir={idmapped}" in line
    for pid in pids:
        upper = Path(f"/proc/{pid}/root/bin")
        assert upper.is_dir()


def test_masked_and_readonly_proc_paths(client: docker.DockerClient) -> None:
    script = (
        "cat /proc/keys | wc -c; "
        "ls /sys/firmware | wc -l; "
        "(echo 1 > /proc/sys/kernel/panic) 2>/dev/null && echo wrote || echo ro; "
        "(echo c > /proc/sysrq-trigger) 2>/dev/null && echo wrote || echo ro; "
        "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo nomount; "
        "mknod /tmp/sda b 8 0 2>/dev/null && echo mknod || echo nomknod; "
        "ls /dev"
    )
    out = client.containers.run("busybox", ["sh", "-c", script], remove=True).decode().split("\n")
    assert Path("/proc/keys").read_bytes()  # the host has keys to hide
    assert out[0] == "0"  # /proc/keys masked: reads nothing
    assert out[1] == "0"  # /sys/firmware masked: empty
    assert out[2] == "ro" and out[3] == "ro"
    assert out[4] == "nomount" and out[5] == "nomknod"
    devices = set(" ".join(out[6:]).split())
    assert {"null", "zero", "urandom", "tty", "pts", "shm"} <= devices
    assert not devices & {"sda", "mem", "kmsg", "vda"}


def test_namespaces_are_unshared(client: docker.DockerClient, cleanup: list[str]) -> None:
    pid = running(client, cleanup)
    for ns in ("pid", "net", "mnt", "uts", "ipc", "user", "cgroup"):
        assert Path(f"/proc/{pid}/ns/{ns}").readlink() != Path(f"/proc/self/ns/{ns}").readlink()


def test_cgroup_limits_applied(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    container = client.containers.run(
        "busybox",
        ["sleep", "60"],
        detach=True,
        mem_limit="48m",
        pids_limit=77,
        nano_cpus=500_000_000,
        cpu_shares=512,
    )
    cleanup.append(container.id)
    memory = cgroup_dir(cloud, "memory", container.id)
    # 48m is rounded up to the smallest size, pico (64 MiB).
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
    pids = cgroup_dir(cloud, "pids", container.id)
    assert (pids / "pids.max").read_text().strip() == "77"
    cpu = cgroup_dir(cloud, "cpu", container.id)
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.shares").read_text().strip() == "512"
    devices = cgroup_dir(cloud, "devices", container.id)
    allowed = (devices / "devices.list").read_text().split("\n")
    assert "a *:* rwm" not in allowed and "c 1:3 rwm" in allowed


def test_default_limits_apply_without_flags(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True)
    cleanup.append(container.id)
    memory = cgroup_dir(cloud, "memory", container.id)
    assert int((memory / "memory.limit_in_bytes").read_text()) == 256 * 1024 * 1024
    pids = cgroup_dir(cloud, "pids", container.id)
    assert (pids / "pids.max").read_text().strip() == "1024"


def test_memory_hog_is_oom_killed_and_reported(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox",
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"],
        detach=True,
        mem_limit="64m",
        memswap_limit="64m",
    )
    cleanup.append(container.id)
    result = container.wait(timeout=60)
    assert result["StatusCode"] == 137
    container.reload()
    assert container.attrs["State"]["OOMKilled"] is True
    # The host and other containers are fine.
    assert client.containers.run("busybox", ["echo", "alive"], remove=True) == b"alive\n"


def test_fork_bomb_is_contained(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    bomb = client.containers.run(
        "busybox",
        ["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 60"],
        detach=True,
        pids_limit=200,
    )
    cleanup.append(bomb.id)
    pids = cgroup_dir(cloud, "pids", bomb.id)
    deadline = time.monotonic() + 10
    while int((pids / "pids.current").read_text()) < 150 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert int((pids / "pids.current").read_text()) <= 200
    assert int((pids / "pids.events").read_text().split()[1]) > 0  # forks were refused
    # Meanwhile the host forks and another container runs normally.
    assert subprocess.run(["true"], check=False, timeout=10).returncode == 0
    assert client.containers.run("busybox", ["echo", "fine"], remove=True) == b"fine\n"
    bomb.remove(force=True)
    cleanup.remove(bomb.id)
    deadline = time.monotonic() + 10  # the cgroup goes in the background, right after
    while pids.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pids.exists()


def test_privileged_and_host_modes_refused(client: docker.DockerClient) -> None:
    cases = [
        {"privileged": True},
        {"pid_mode": "host"},
        {"network_mode": "host"},
        {"ipc_mode": "host"},
        {"userns_mode": "host"},
        {"devices": ["/dev/sda:/dev/sda"]},
        {"security_opt": ["seccomp=unconfined"]},
        {"volumes": {"/etc": {"bind": "/host-etc", "mode": "ro"}}},
    ]
    before = len(client.containers.list(all=True))
    for kwargs in cases:
        with pytest.raises(docker.errors.APIError) as info:
            client.containers.create("busybox", ["true"], **kwargs)
        assert info.value.status_code == 403, kwargs
        assert "not allowed" in info.value.explanation, kwargs
    assert len(client.containers.list(all=True)) == before
