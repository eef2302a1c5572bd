"""Admission: what a tenant's container may ask for and the limits it gets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.controller import admission
from dockyard.controller.admission import (
    ALLOWED_CAPABILITY_ADDS,
    admit,
    check_policy,
    container_size,
    resources_for,
)
from dockyard.controller.config import ControllerConfig
from dockyard.core.capabilities import DEFAULT_CAPABILITIES
from dockyard.core.errors import InvalidArgument, PermissionDenied
from dockyard.core.layout import Layout
from dockyard.core.models import HostConfig, RestartPolicy
from dockyard.core.protocol import Resources
from dockyard.core.sizes import LARGEST, size_named

MIB = 1024 * 1024
CONFIG = ControllerConfig(layout=Layout(state_dir=Path("/s"), run_dir=Path("/r")))
NCPU = os.cpu_count() or 1


def hc(**fields: Any) -> HostConfig:
    return HostConfig(**fields)


def refusal(host_config: HostConfig) -> str:
    with pytest.raises(PermissionDenied) as info:
        admit(host_config, CONFIG)
    return info.value.message


def invalid(host_config: HostConfig) -> str:
    with pytest.raises(InvalidArgument) as info:
        admit(host_config, CONFIG)
    return info.value.message


def test_public_surface() -> None:
    assert set(admission.__all__) == {
        "ALLOWED_CAPABILITY_ADDS",
        "Admitted",
        "admit",
        "check_mount_propagation",
        "check_policy",
        "check_volume_options",
        "container_size",
    }
    assert set(DEFAULT_CAPABILITIES) | {"CAP_NET_ADMIN"} == ALLOWED_CAPABILITY_ADDS


def test_a_plain_container_gets_the_defaults() -> None:
    admitted = admit(hc(), CONFIG)
    micro = size_named("micro")
    assert admitted.size == micro
    assert admitted.resources == Resources(
        memory=256 * MIB,
        cpu_shares=micro.cpu_shares,
        pids_limit=CONFIG.default_pids,
        writable=micro.writable,
    )
    assert admitted.capabilities == DEFAULT_CAPABILITIES
    assert admitted.warnings == ()


# policy ----------------------------------------------------------------------------------


def test_privileged_is_refused() -> None:
    assert refusal(hc(privileged=True)) == (
        "--privileged is not allowed on Dockyard: containers never get host-level privileges"
    )


@pytest.mark.parametrize("field", ["pid_mode", "ipc_mode", "uts_mode", "userns_mode"])
def test_host_namespaces_are_refused(field: str) -> None:
    flag = "--" + field.removesuffix("_mode")
    assert refusal(hc(**{field: "host"})) == (
        f"{flag}=host is not allowed on Dockyard: containers never share the host's namespaces"
    )


def test_cgroupns_host_is_refused() -> None:
    assert refusal(hc(cgroupns_mode="host")).startswith("--cgroupns=host is not allowed")
    check_policy(hc(cgroupns_mode="private"))


@pytest.mark.parametrize(
    "fields", [{"ipc_mode": "private"}, {"ipc_mode": "shareable"}, {"pid_mode": ""}]
)
def test_private_namespaces_are_fine(fields: dict[str, str]) -> None:
    check_policy(hc(**fields))


def test_devices_are_refused() -> None:
    assert refusal(hc(devices=("/dev/sda",))) == (
        "--device is not allowed on Dockyard: host devices are never passed into containers"
    )


@pytest.mark.parametrize(
    ("opt", "why"),
    [
        ("seccomp=unconfined", "every container runs confined"),
        ("seccomp:unconfined", "every container runs confined"),
        ("apparmor=unconfined", "every container runs confined"),
        ("label=disable", "every container runs confined"),
        ("label:disable", "every container runs confined"),
        ("systempaths=unconfined", "/proc and /sys stay masked"),
        ("no-new-privileges=false", "no-new-privileges is always on"),
        ("no-new-privileges:false", "no-new-privileges is always on"),
    ],
)
def test_security_opts_that_weaken_confinement_are_refused(opt: str, why: str) -> None:
    assert refusal(hc(security_opt=(opt,))) == (
        f"--security-opt {opt} is not allowed on Dockyard: {why}"
    )


@pytest.mark.parametrize("opt", ["no-new-privileges", "no-new-privileges=true", "label=level:s0"])
def test_harmless_security_opts_pass(opt: str) -> None:
    check_policy(hc(security_opt=(opt,)))


@pytest.mark.parametrize("field", ["pid_mode", "ipc_mode", "uts_mode", "userns_mode"])
def test_another_containers_namespaces_are_refused(field: str) -> None:
    """The same answer whatever the container is (or whose): nothing to learn from it."""
    flag = "--" + field.removesuffix("_mode")
    assert refusal(hc(**{field: "container:web"})) == (
        f"{flag}=container:web is not allowed on Dockyard: containers never join another "
        "container's namespaces"
    )


def test_joining_another_containers_cgroup_is_refused() -> None:
    assert refusal(hc(cgroup="container:web")) == (
        "HostConfig.Cgroup=container:web is not allowed on Dockyard: containers never join "
        "another container's namespaces"
    )


def test_gpus_and_device_cgroup_rules_are_refused() -> None:
    assert refusal(hc(device_requests=("gpu",))) == (
        "--gpus is not allowed on Dockyard: host devices are never passed into containers"
    )
    assert refusal(hc(device_cgroup_rules=("c *:* rwm",))) == (
        "--device-cgroup-rule is not allowed on Dockyard: host devices are never passed "
        "into containers"
    )


@pytest.mark.parametrize(
    ("opt", "needle"),
    [
        ('seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "custom seccomp profiles"),
        ("apparmor=docker-default", "AppArmor profile 'docker-default' was ignored"),
        ("label=level:s0", "SELinux label 'level:s0' was ignored"),
        ("label:user:system_u", "SELinux label 'user:system_u' was ignored"),
    ],
)
def test_security_opts_without_effect_earn_a_warning(opt: str, needle: str) -> None:
    warnings = admit(hc(security_opt=(opt,)), CONFIG).warnings
    assert len(warnings) == 1 and needle in warnings[0]


@pytest.mark.parametrize(
    "opt", ["seccomp=builtin", "no-new-privileges:true", "writable-cgroups=false"]
)
def test_security_opts_that_change_nothing_earn_no_warning(opt: str) -> None:
    assert admit(hc(security_opt=(opt,)), CONFIG).warnings == ()


def test_writable_cgroups_are_refused() -> None:
    assert refusal(hc(security_opt=("writable-cgroups=true",))) == (
        "--security-opt writable-cgroups=true is not allowed on Dockyard: cgroups stay "
        "read-only in containers"
    )


@pytest.mark.parametrize(
    "opt", ["bogus", "bogus=1", "no-new-privileges=maybe", "systempaths=x", "=x"]
)
def test_unknown_security_opts_are_invalid(opt: str) -> None:
    assert invalid(hc(security_opt=(opt,))) == f'invalid --security-opt: "{opt}"'


def test_unlimited_pids_get_the_default_limit_and_a_warning() -> None:
    admitted = admit(hc(pids_limit=-1), CONFIG)
    assert admitted.resources.pids_limit == CONFIG.default_pids
    assert admitted.warnings == (
        f"PidsLimit -1 (unlimited) is not allowed: the container gets at most "
        f"{CONFIG.default_pids} processes",
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"type": "none", "o": "bind", "device": "/etc"}, "type"),
        ({"o": "bind", "device": "/home"}, "o"),
        ({"device": "/dev/sda1"}, "device"),
        ({"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}, "type"),
    ],
)
def test_volume_options_that_mount_host_things_are_refused(
    options: dict[str, str], key: str
) -> None:
    with pytest.raises(PermissionDenied) as info:
        admission.check_volume_options("local", options)
    assert info.value.message == (
        f"volume option {key}={options[key]} is not allowed on Dockyard: a volume is storage "
        "Dockyard provides, never a mount the host makes for a tenant (a host path, a device "
        "or a network filesystem)"
    )


def test_volume_drivers_and_other_options() -> None:
    admission.check_volume_options("local", {})
    admission.check_volume_options("", {})
    with pytest.raises(InvalidArgument, match="volume driver 'nfs' is not supported"):
        admission.check_volume_options("nfs", {})
    with pytest.raises(InvalidArgument, match="takes no options"):
        admission.check_volume_options("local", {"size": "10G"})


def test_sysctls_are_refused() -> None:
    assert refusal(hc(sysctls={"net.ipv4.ip_forward": "1"})).startswith(
        "--sysctl is not allowed on Dockyard"
    )


def test_capabilities() -> None:
    admitted = admit(hc(cap_add=("NET_ADMIN",), cap_drop=("MKNOD",)), CONFIG)
    assert "CAP_NET_ADMIN" in admitted.capabilities
    assert "CAP_MKNOD" not in admitted.capabilities
    assert "CAP_SYS_ADMIN" in refusal(hc(cap_add=("SYS_ADMIN",)))
    assert "(requested through ALL)" in refusal(hc(cap_add=("ALL",), cap_drop=("SYS_ADMIN",)))


# limits ----------------------------------------------------------------------------------


def test_memory_below_six_megabytes() -> None:
    assert invalid(hc(memory=6 * MIB - 1)) == "Minimum memory limit allowed is 6MB"
    assert resources_for(hc(memory=6 * MIB), CONFIG).memory == 64 * MIB  # pico


@pytest.mark.parametrize("field", ["memory", "memory_reservation", "shm_size"])
def test_negative_memory_values(field: str) -> None:
    assert "cannot be negative" in invalid(hc(**{field: -1}))


def test_memory_above_the_largest_container() -> None:
    message = invalid(hc(memory=LARGEST.memory + 1))
    assert "exceeds the largest container size, 2xlarge (16 GiB)" in message
    assert resources_for(hc(memory=LARGEST.memory), CONFIG).memory == LARGEST.memory


@pytest.mark.parametrize(
    ("memory", "size"),
    [(100 * MIB, "nano"), (64 * MIB, "pico"), (65 * MIB, "nano"), (3 << 30, "large")],
)
def test_memory_is_rounded_up_to_a_size(memory: int, size: str) -> None:
    admitted = admit(hc(memory=memory), CONFIG)
    assert admitted.size.name == size
    assert admitted.resources.memory == size_named(size).memory
    assert admitted.resources.cpu_shares == size_named(size).cpu_shares
    assert admitted.resources.writable == size_named(size).writable


def test_the_size_label_chooses_the_size() -> None:
    admitted = admit(hc(), CONFIG, size_label="small")
    assert (admitted.size.name, admitted.resources.memory) == ("small", 1 << 30)
    # A smaller -m gets the labelled size; a larger one does not fit it.
    assert admit(hc(memory=100 * MIB), CONFIG, size_label="small").resources.memory == 1 << 30
    assert "does not fit size small (1 GiB)" in invalid_labelled(hc(memory=2 << 30), "small")
    assert "unknown container size 'huge'" in invalid_labelled(hc(), "huge")


def invalid_labelled(host_config: HostConfig, label: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        admit(host_config, CONFIG, size_label=label)
    return info.value.message


def test_asked_for_cpu_shares_win_over_the_size() -> None:
    assert admit(hc(memory=100 * MIB, cpu_shares=2048), CONFIG).resources.cpu_shares == 2048


def test_container_size_checks_memory_before_sizing() -> None:
    assert container_size(hc(memory=100 * MIB), CONFIG).name == "nano"
    with pytest.raises(InvalidArgument, match="negative"):
        container_size(hc(memory=-5), CONFIG)
    with pytest.raises(InvalidArgument, match="6MB"):
        container_size(hc(memory=1024), CONFIG)


def test_swap_below_memory() -> None:
    message = invalid(hc(memory=64 * MIB, memory_swap=32 * MIB))
    assert message.startswith("Minimum memoryswap limit should be larger than memory limit")


def test_swap_values() -> None:
    assert resources_for(hc(memory=64 * MIB, memory_swap=-1), CONFIG).memory_swap == -1
    assert resources_for(hc(memory=64 * MIB), CONFIG).memory_swap == 0
    equal = admit(hc(memory=64 * MIB, memory_swap=64 * MIB), CONFIG)
    assert equal.resources.memory_swap == 64 * MIB
    assert any("swap" in w for w in equal.warnings)
    # "No swap" (-m 96m --memory-swap 96m) stays no swap once memory is rounded up.
    rounded = admit(hc(memory=96 * MIB, memory_swap=96 * MIB), CONFIG).resources
    assert (rounded.memory, rounded.memory_swap) == (128 * MIB, 128 * MIB)
    more = admit(hc(memory=96 * MIB, memory_swap=200 * MIB), CONFIG).resources
    assert (more.memory, more.memory_swap) == (128 * MIB, 200 * MIB)


def test_reservation_above_memory() -> None:
    message = invalid(hc(memory=64 * MIB, memory_reservation=65 * MIB))
    assert message.startswith("Minimum memory limit can not be less than memory reservation")
    fine = resources_for(hc(memory=64 * MIB, memory_reservation=32 * MIB), CONFIG)
    assert fine.memory_reservation == 32 * MIB


def test_nano_cpus_and_cpu_period_conflict() -> None:
    assert invalid(hc(nano_cpus=10**9, cpu_period=100_000)) == (
        "Conflicting options: Nano CPUs and CPU Period cannot both be set"
    )


def test_nano_cpus_and_cpu_quota_conflict() -> None:
    # Docker names the option that conflicts (daemon/daemon_unix.go).
    assert invalid(hc(nano_cpus=10**9, cpu_quota=50_000)) == (
        "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
    )


def test_nano_cpus_above_the_cpu_count() -> None:
    assert invalid(hc(nano_cpus=(NCPU + 1) * 10**9)) == (
        f"Range of CPUs is from 0.01 to {NCPU}.00, as there are only {NCPU} CPUs available"
    )
    assert invalid(hc(nano_cpus=-1)).startswith("Range of CPUs is from 0.01 to")


def test_nano_cpus_below_a_hundredth_names_the_range() -> None:
    message = invalid(hc(nano_cpus=1_000_000))
    assert message.startswith(f"Range of CPUs is from 0.01 to {NCPU}.00"), message


def test_nano_cpus_become_quota_and_period() -> None:
    res = resources_for(hc(nano_cpus=NCPU * 10**9 // 2 or 10**7), CONFIG)
    assert res.cpu_period == 100_000
    assert res.cpu_quota == (NCPU * 10**9 // 2 or 10**7) * 100_000 // 10**9
    assert resources_for(hc(nano_cpus=10**7), CONFIG).cpu_quota == 1000


def test_cpu_quota_and_period_pass_through() -> None:
    res = resources_for(hc(cpu_quota=50_000, cpu_period=100_000, cpu_shares=512), CONFIG)
    assert (res.cpu_quota, res.cpu_period, res.cpu_shares) == (50_000, 100_000, 512)
    assert resources_for(hc(cpu_quota=-1), CONFIG).cpu_quota == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cpu_shares": -1}, "CPU shares cannot be negative"),
        ({"cpu_quota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"cpu_period": 999}, "CPU cfs period can not be less than 1ms"),
        ({"cpu_period": 1_000_001}, "CPU cfs period can not be less than 1ms"),
        ({"blkio_weight": 9}, "Range of blkio weight is from 10 to 1000"),
        ({"blkio_weight": 1001}, "Range of blkio weight is from 10 to 1000"),
    ],
)
def test_out_of_range_limits(fields: dict[str, int], message: str) -> None:
    assert invalid(hc(**fields)).startswith(message)


@pytest.mark.parametrize(
    "fields",
    [{"cpu_period": 1000}, {"cpu_period": 1_000_000}, {"blkio_weight": 10}, {"blkio_weight": 1000}],
)
def test_limits_at_the_edges_of_their_range(fields: dict[str, int]) -> None:
    res = resources_for(hc(**fields), CONFIG)
    for key, value in fields.items():
        assert getattr(res, key) == value


def test_pids_default_applies_unless_a_positive_limit_is_given() -> None:
    assert resources_for(hc(pids_limit=50), CONFIG).pids_limit == 50
    for unlimited in (0, -1):
        assert resources_for(hc(pids_limit=unlimited), CONFIG).pids_limit == CONFIG.default_pids


def test_defaults_come_from_the_controller_config() -> None:
    config = dataclasses.replace(CONFIG, default_size="nano", default_pids=77)
    res = admit(hc(), config).resources
    assert (res.memory, res.pids_limit) == (128 * MIB, 77)


def test_cpusets_pass_through() -> None:
    res = resources_for(hc(cpuset_cpus="0-1", cpuset_mems="0"), CONFIG)
    assert (res.cpuset_cpus, res.cpuset_mems) == ("0-1", "0")


# restart policy, logging, oom score ------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        RestartPolicy(),
        RestartPolicy(name=""),
        RestartPolicy(name="always"),
        RestartPolicy(name="unless-stopped"),
        RestartPolicy(name="on-failure"),
        RestartPolicy(name="on-failure", maximum_retry_count=5),
    ],
)
def test_valid_restart_policies(policy: RestartPolicy) -> None:
    admit(hc(restart_policy=policy), CONFIG)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (RestartPolicy(name="sometimes"), "invalid restart policy 'sometimes'"),
        (RestartPolicy(name="on-failure", maximum_retry_count=-1), "cannot be negative"),
        (RestartPolicy(name="always", maximum_retry_count=3), "maximum retry count"),
        (RestartPolicy(name="no", maximum_retry_count=1), "maximum retry count"),
    ],
)
def test_invalid_restart_policies(policy: RestartPolicy, message: str) -> None:
    assert message in invalid(hc(restart_policy=policy))


@pytest.mark.parametrize("name", ["always", "unless-stopped", "on-failure"])
def test_auto_remove_with_a_restart_policy(name: str) -> None:
    assert invalid(hc(auto_remove=True, restart_policy=RestartPolicy(name=name))) == (
        "can't create 'AutoRemove' container with restart policy"
    )


def test_auto_remove_without_a_restart_policy() -> None:
    admit(hc(auto_remove=True, restart_policy=RestartPolicy(name="no")), CONFIG)


@pytest.mark.parametrize("driver", ["json-file", "local", "k8s-file", ""])
def test_supported_log_drivers(driver: str) -> None:
    admit(hc(log_type=driver), CONFIG)


@pytest.mark.parametrize("driver", ["syslog", "journald", "none", "fluentd"])
def test_unsupported_log_drivers(driver: str) -> None:
    assert f"logging driver {driver!r} is not supported" in invalid(hc(log_type=driver))


def test_oom_score_adj() -> None:
    assert admit(hc(oom_score_adj=500), CONFIG).warnings == ()
    lowered = admit(hc(oom_score_adj=-500), CONFIG)
    assert any("OomScoreAdj" in w for w in lowered.warnings)
    for bad in (-1001, 1001):
        assert invalid(hc(oom_score_adj=bad)) == (
            f"Invalid value {bad}, range for oom score adj is [-1000, 1000]"
        )
