"""Build a container's OCI runtime ``config.json``: the isolation every container gets.

Every container gets, whatever it asks for: all namespaces (user, pid, mount, uts, ipc,
net, cgroup) with the tenant's uid/gid range; the capability set it was admitted with (at
most Docker's default); the seccomp profile; no-new-privileges; Docker's masked and
read-only /proc and /sys paths; a device allowlist; bounded rlimits. The caller resolves
everything host-specific first (paths, ids); this module is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.core.protocol import Resources
from dockyard.runtime.seccomp_bpf import ANNOTATION as SECCOMP_ANNOTATION

__all__ = [
    "MASKED_PATHS",
    "READONLY_PATHS",
    "BundleSpec",
    "Mount",
    "build_config",
    "exec_process",
    "linux_resources",
]

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Character devices a container may use (Docker's default allowlist, minus fuse and tun).
_ALLOWED_DEVICES = (
    ("c", 1, 3),  # null
    ("c", 1, 5),  # zero
    ("c", 1, 7),  # full
    ("c", 1, 8),  # random
    ("c", 1, 9),  # urandom
    ("c", 5, 0),  # tty
    ("c", 5, 2),  # ptmx
    ("c", 136, None),  # pts
)
_DEFAULT_SHM = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Mount:
    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BundleSpec:
    """Everything ``config.json`` needs, resolved. Ids in ``uid``/``gid`` are container-side."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    hostname: str
    uid_base: int
    uid_size: int
    cgroups_path: str
    capabilities: tuple[str, ...]
    seccomp: dict[str, Any] | None
    """The profile as OCI JSON; ``seccomp_program`` (base64 BPF compiled from it) wins."""
    nofile: int
    additional_gids: tuple[int, ...] = ()
    terminal: bool = False
    domainname: str = ""
    readonly_rootfs: bool = False
    mounts: tuple[Mount, ...] = ()
    resources: Resources = field(default_factory=Resources)
    shm_size: int = 0
    oom_score_adj: int = 0
    memory_swap_supported: bool = True
    seccomp_program: str = ""
    join_pid: int = 0
    """Join the network and user namespaces of this process (Docker's ``--network
    container:``; the peer's user namespace owns its netns, and only a process inside
    it may mount a sysfs of that netns: otherwise crun bind-mounts the host's /sys).
    The uid mapping is then the peer's. 0: new namespaces."""


def _base_mounts(spec: BundleSpec) -> list[dict[str, Any]]:
    shm = spec.shm_size or _DEFAULT_SHM
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def _resources(spec: BundleSpec) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    devices += [
        {"allow": True, "type": kind, "major": major, "access": "rwm"}
        | ({} if minor is None else {"minor": minor})
        for kind, major, minor in _ALLOWED_DEVICES
    ]
    limits = linux_resources(spec.resources, memory_swap_supported=spec.memory_swap_supported)
    return {"devices": devices, **limits}


def linux_resources(res: Resources, *, memory_swap_supported: bool = True) -> dict[str, Any]:
    """The limits in ``linux.resources``: the spec's at create, ``crun update``'s input."""
    out: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if res.memory:
        memory["limit"] = res.memory
        if memory_swap_supported:
            # Docker: MemorySwap 0 means twice the limit, -1 unlimited; this host has no
            # swap, so "limit" is the honest ceiling either way.
            swap = res.memory_swap
            memory["swap"] = -1 if swap < 0 else max(swap, res.memory) if swap else res.memory * 2
    if res.memory_reservation:
        memory["reservation"] = res.memory_reservation
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
        cpu["period"] = res.cpu_period or 100_000
    elif res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit:
        out["pids"] = {"limit": res.pids_limit}
    if res.blkio_weight:
        out["blockIO"] = {"weight": res.blkio_weight}
    return out


def build_config(spec: BundleSpec) -> dict[str, Any]:
    """The OCI runtime config for ``spec`` (runtime-spec 1.0.2, as crun 1.8 reads it)."""
    caps = list(spec.capabilities)
    process: dict[str, Any] = {
        "terminal": spec.terminal,
        "user": {"uid": spec.uid, "gid": spec.gid},
        "args": list(spec.args),
        "env": list(spec.env),
        "cwd": spec.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": spec.nofile, "soft": spec.nofile}],
        "noNewPrivileges": True,
    }
    if spec.additional_gids:
        process["user"]["additionalGids"] = list(spec.additional_gids)
    if spec.oom_score_adj:
        process["oomScoreAdj"] = spec.oom_score_adj
    mapping = [{"containerID": 0, "hostID": spec.uid_base, "size": spec.uid_size}]
    linux: dict[str, Any] = {
        "uidMappings": mapping,
        "gidMappings": mapping,
        "namespaces": [
            {"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user", "cgroup")
        ],
        "cgroupsPath": spec.cgroups_path,
        "resources": _resources(spec),
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.join_pid:
        joined = {"network": "net", "user": "user"}
        for ns in linux["namespaces"]:
            if ns["type"] in joined:
                ns["path"] = f"/proc/{spec.join_pid}/ns/{joined[ns['type']]}"
        del linux["uidMappings"], linux["gidMappings"]  # the joined namespace's own
    annotations: dict[str, str] = {}
    if spec.seccomp_program:
        # The compiled profile: crun loads it as is instead of compiling linux.seccomp.
        annotations[SECCOMP_ANNOTATION] = spec.seccomp_program
    elif spec.seccomp is not None:
        linux["seccomp"] = spec.seccomp
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname,
        "mounts": _base_mounts(spec)
        + [
            {
                "destination": m.destination,
                "type": m.type,
                "source": m.source,
                "options": list(m.options),
            }
            for m in spec.mounts
        ],
        "linux": linux,
    }
    if spec.domainname:
        config["domainname"] = spec.domainname
    if annotations:
        config["annotations"] = annotations
    return config


def exec_process(
    base: dict[str, Any],
    *,
    args: tuple[str, ...],
    env: tuple[str, ...],
    cwd: str,
    user: tuple[int, int, tuple[int, ...]] | None,
    terminal: bool,
    console: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """The ``process`` of an exec in a container whose own process is ``base``.

    The exec keeps the container's confinement (capabilities, rlimits, no new privileges;
    crun applies the container's seccomp filter and namespaces itself) and replaces what
    the exec names: arguments, working directory, user (``(uid, gid, extra gids)``, None
    for the container's), and the environment, whose entries override the container's by
    name, as Docker merges them.
    """
    process = {k: v for k, v in base.items() if k not in ("args", "env", "consoleSize")}
    process["args"] = list(args)
    process["env"] = _merge_env(list(base.get("env", [])), env)
    process["cwd"] = cwd or base.get("cwd") or "/"
    process["terminal"] = terminal
    if user is not None:
        uid, gid, extra = user
        process["user"] = {"uid": uid, "gid": gid} | (
            {"additionalGids": list(extra)} if extra else {}
        )
    if terminal and all(console):
        process["consoleSize"] = {"height": console[0], "width": console[1]}
    return process


def _merge_env(base: list[str], extra: tuple[str, ...]) -> list[str]:
    """``base`` with the entries of ``extra`` replacing those of the same name."""
    names = {entry.partition("=")[0]: i for i, entry in enumerate(base)}
    merged = list(base)
    for entry in extra:
        name = entry.partition("=")[0]
        if name in names:
            merged[names[name]] = entry
        else:
            names[name] = len(merged)
            merged.append(entry)
    return merged
