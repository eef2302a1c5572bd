"""Admission: what a tenant's container may ask for, and the limits it gets.

Policy refusals are PermissionDenied naming what and why; malformed values are
InvalidArgument with Docker's wording. Settings Dockyard accepts but does not apply come
back as warnings, never silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.controller.config import ControllerConfig
from dockyard.controller.logconfig import LogSettings, log_settings
from dockyard.core.capabilities import DEFAULT_CAPABILITIES, effective
from dockyard.core.errors import InvalidArgument, PermissionDenied
from dockyard.core.models import HostConfig, RestartPolicy
from dockyard.core.protocol import Resources
from dockyard.core.sizes import Size, choose_size

__all__ = [
    "ALLOWED_CAPABILITY_ADDS",
    "Admitted",
    "admit",
    "check_mount_propagation",
    "check_policy",
    "check_volume_options",
    "container_size",
]

MIN_MEMORY = 6 * 1024 * 1024
ALLOWED_CAPABILITY_ADDS = frozenset({*DEFAULT_CAPABILITIES, "CAP_NET_ADMIN"})
_RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True, slots=True)
class Admitted:
    resources: Resources
    capabilities: tuple[str, ...]
    warnings: tuple[str, ...]
    logging: LogSettings
    """The log files' settings; their warnings are the create's, not the update's."""
    size: Size
    """The container's size: its memory, default CPU shares and writable-layer cap."""


def _refuse(what: str, why: str) -> PermissionDenied:
    return PermissionDenied(f"{what} is not allowed on Dockyard: {why}")


_HOST_NAMESPACES = "containers never share the host's namespaces"
_OTHER_NAMESPACES = "containers never join another container's namespaces"
_NO_DEVICES = "host devices are never passed into containers"
_PROPAGATION = "mounts never propagate between a container and the host"
_SHARED_PROPAGATION = frozenset({"shared", "rshared", "slave", "rslave"})
_PRIVATE_PROPAGATION = frozenset({"", "private", "rprivate"})
_HOST_MOUNT_OPTIONS = ("type", "o", "device")


def check_policy(hc: HostConfig) -> list[str]:
    """Refuse what would weaken tenant isolation (each with what and why); return a
    warning for each security option accepted without effect."""
    if hc.privileged:
        raise _refuse("--privileged", "containers never get host-level privileges")
    for flag, mode in (
        ("--pid", hc.pid_mode),
        ("--ipc", hc.ipc_mode),
        ("--uts", hc.uts_mode),
        ("--userns", hc.userns_mode),
    ):
        if mode and mode not in ("private", "shareable", "none"):
            shared = mode.startswith("container:")
            raise _refuse(f"{flag}={mode}", _OTHER_NAMESPACES if shared else _HOST_NAMESPACES)
    if hc.cgroupns_mode == "host":
        raise _refuse("--cgroupns=host", _HOST_NAMESPACES)
    if hc.cgroup:
        raise _refuse(f"HostConfig.Cgroup={hc.cgroup}", _OTHER_NAMESPACES)
    if hc.devices:
        raise _refuse("--device", _NO_DEVICES)
    if hc.device_requests:
        raise _refuse("--gpus", _NO_DEVICES)
    if hc.device_cgroup_rules:
        raise _refuse("--device-cgroup-rule", _NO_DEVICES)
    warnings = [w for w in (_security_opt(opt) for opt in hc.security_opt) if w]
    if hc.sysctls:
        raise _refuse("--sysctl", "kernel parameters cannot be changed by tenants yet")
    return warnings


def _security_opt(opt: str) -> str:
    """Check one ``--security-opt`` (``key=value``, or Docker's older ``key:value``);
    a warning if it is accepted without effect, "" if it is what Dockyard does anyway."""
    if opt == "no-new-privileges":
        return ""
    cut = min((i for i in (opt.find("="), opt.find(":")) if i > 0), default=-1)
    if cut < 0:
        raise InvalidArgument(f'invalid --security-opt: "{opt}"')
    key, value = opt[:cut], opt[cut + 1 :]
    if key in ("seccomp", "apparmor") and value == "unconfined":
        raise _refuse(f"--security-opt {opt}", "every container runs confined")
    if key == "seccomp":
        if value in ("", "builtin"):
            return ""
        return (
            "custom seccomp profiles are not applied: every container runs with Dockyard's "
            "profile (at least as strict as Docker's default)"
        )
    if key == "apparmor":
        return (
            f"AppArmor profile {value!r} was ignored: containers are confined by user "
            "namespaces, seccomp and capabilities"
        )
    if key == "label":
        if value == "disable":
            raise _refuse(f"--security-opt {opt}", "every container runs confined")
        return f"SELinux label {value!r} was ignored: this host does not use SELinux"
    if key == "systempaths":
        if value == "unconfined":
            raise _refuse(f"--security-opt {opt}", "/proc and /sys stay masked")
    elif key == "no-new-privileges":
        if value in ("false", "0"):
            raise _refuse(f"--security-opt {opt}", "no-new-privileges is always on")
        if value in ("true", "1"):
            return ""
    elif key == "writable-cgroups":
        if value in ("true", "1"):
            raise _refuse(f"--security-opt {opt}", "cgroups stay read-only in containers")
        if value in ("false", "0"):
            return ""
    raise InvalidArgument(f'invalid --security-opt: "{opt}"')


def check_mount_propagation(mode: str) -> None:
    """Refuse a mount propagation that would let mounts cross between container and host."""
    if mode in _SHARED_PROPAGATION:
        raise _refuse(f"mount propagation {mode!r}", _PROPAGATION)
    if mode not in _PRIVATE_PROPAGATION:
        raise InvalidArgument(f"invalid mount propagation: {mode!r}")


def check_volume_options(driver: str, options: Mapping[str, str]) -> None:
    """What ``docker volume create -d DRIVER -o KEY=VALUE`` (or ``--mount volume-opt=``)
    may ask for. The local driver's ``type``, ``o`` and ``device`` have the host mount a
    path, a device or a network filesystem for the tenant (``-o type=none -o o=bind -o
    device=/etc``): refused. Other options do not exist."""
    if driver not in ("", "local"):
        raise InvalidArgument(f"volume driver {driver!r} is not supported (only local)")
    for key in _HOST_MOUNT_OPTIONS:
        if key in options:
            raise _refuse(
                f"volume option {key}={options[key]}",
                "a volume is storage Dockyard provides, never a mount the host makes for a "
                "tenant (a host path, a device or a network filesystem)",
            )
    if options:
        raise InvalidArgument(
            f"the local volume driver takes no options (got {', '.join(sorted(options))})"
        )


def _restart_policy(policy: RestartPolicy, auto_remove: bool) -> None:
    if policy.name not in _RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{policy.name}'")
    if policy.maximum_retry_count < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if policy.maximum_retry_count and policy.name != "on-failure":
        raise InvalidArgument(
            f"maximum retry count cannot be used with restart policy '{policy.name}'"
        )
    if auto_remove and policy.name not in ("", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")


def container_size(hc: HostConfig, config: ControllerConfig, *, label: str = "") -> Size:
    """The size a container gets: the one its ``dockyard.size`` ``label`` names, else the
    smallest holding its memory request, else the default; InvalidArgument beyond the
    largest, for an unknown name, or for a request larger than the named size."""
    if hc.memory < 0 or hc.memory_reservation < 0 or hc.shm_size < 0:
        raise InvalidArgument("memory values cannot be negative")
    if hc.memory and hc.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    return choose_size(label=label, memory=hc.memory, default=config.default_size)


def resources_for(hc: HostConfig, config: ControllerConfig, size: Size | None = None) -> Resources:
    """Validate the limits and apply the defaults every container gets: the memory, CPU
    shares (unless asked for) and writable-layer cap of its ``size`` (by default the one
    :func:`container_size` picks without a label)."""
    ncpu = os.cpu_count() or 1
    if size is None:
        size = container_size(hc, config)
    # Docker's checks are on what was asked; the size only ever rounds memory up.
    requested = hc.memory or size.memory
    if hc.memory_swap > 0 and hc.memory_swap < requested:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if hc.memory_reservation and hc.memory_reservation > requested:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    if hc.nano_cpus and hc.cpu_quota:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if hc.nano_cpus and hc.cpu_period:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if (
        hc.nano_cpus < 0
        or hc.nano_cpus > ncpu * 1_000_000_000
        or (hc.nano_cpus and hc.nano_cpus < 10_000_000)
    ):
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    if hc.cpu_shares < 0:
        raise InvalidArgument("CPU shares cannot be negative")
    if hc.cpu_quota and hc.cpu_quota < 1000 and hc.cpu_quota != -1:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc.cpu_period and not 1000 <= hc.cpu_period <= 1_000_000:
        raise InvalidArgument(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if hc.blkio_weight and not 10 <= hc.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    quota, period = hc.cpu_quota if hc.cpu_quota > 0 else 0, hc.cpu_period
    if hc.nano_cpus:
        period = 100_000
        quota = hc.nano_cpus * period // 1_000_000_000
    pids = hc.pids_limit if hc.pids_limit > 0 else config.default_pids
    swap = max(hc.memory_swap, size.memory) if hc.memory_swap > 0 else min(hc.memory_swap, 0)
    return Resources(
        memory=size.memory,
        memory_swap=-1 if swap < 0 else swap,
        memory_reservation=hc.memory_reservation,
        cpu_shares=hc.cpu_shares or size.cpu_shares,
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=hc.cpuset_cpus,
        cpuset_mems=hc.cpuset_mems,
        pids_limit=pids,
        blkio_weight=hc.blkio_weight,
        writable=size.writable,
    )


def admit(hc: HostConfig, config: ControllerConfig, *, size_label: str = "") -> Admitted:
    """Check ``hc`` against policy and return what the container will get;
    ``size_label`` is the value of its ``dockyard.size`` label, if any."""
    warnings = check_policy(hc)
    _restart_policy(hc.restart_policy, hc.auto_remove)
    logging = log_settings(hc.log_type, hc.log_options, config)
    size = container_size(hc, config, label=size_label)
    resources = resources_for(hc, config, size)
    capabilities = effective(
        add=list(hc.cap_add), drop=list(hc.cap_drop), allowed_add=ALLOWED_CAPABILITY_ADDS
    )
    if hc.pids_limit < 0:
        warnings.append(
            f"PidsLimit {hc.pids_limit} (unlimited) is not allowed: the container gets at "
            f"most {config.default_pids} processes"
        )
    if hc.oom_score_adj < -1000 or hc.oom_score_adj > 1000:
        raise InvalidArgument(
            f"Invalid value {hc.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    if hc.oom_score_adj < 0:
        warnings.append(
            "OomScoreAdj below 0 is ignored: containers cannot lower their "
            "OOM priority below the host's"
        )
    if hc.memory_swap > 0:
        warnings.append("this host has no swap: MemorySwap limits memory+swap as given")
    return Admitted(
        resources=resources,
        capabilities=capabilities,
        warnings=tuple(warnings),
        logging=logging,
        size=size,
    )
