"""Messages of the agent protocol: what the controller asks of an agent and what it reports.

The protocol is HTTP+JSON (see ``docs/agent-protocol.md``); each body is one of these
dataclasses converted with :mod:`dockyard.core.serde`. Errors travel as
``{"error": {"kind": ..., "message": ...}}`` (:mod:`dockyard.core.errors`).

The controller decides everything that needs the cluster view or policy (ids, addresses,
effective capabilities, limits); the agent decides what is host-local (host ports it
binds, paths) and reports it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "PROTOCOL_VERSION",
    "AgentEvent",
    "AgentInfo",
    "BlkioEntry",
    "BlkioStats",
    "ContainerListing",
    "ContainerSize",
    "ContainerStats",
    "ContainerStatus",
    "CpuStats",
    "CreateRequest",
    "EndpointSpec",
    "ExecRequest",
    "ExecStatus",
    "FileChange",
    "HealthResult",
    "HealthState",
    "HealthcheckSpec",
    "IngressRule",
    "InterfaceStats",
    "MemoryStats",
    "MountSpec",
    "NetworkSpec",
    "PathStat",
    "PortMapping",
    "ProcessSpec",
    "Resources",
    "StopRequest",
    "TenantUsage",
    "TopResult",
    "VolumeRequest",
]

PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """The container's main process. ``user`` is as the user wrote it (``name``, ``uid``,
    ``uid:gid``); the agent resolves names against the image's /etc/passwd and /etc/group.
    """

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    group_add: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """cgroup limits; 0 means "no limit" (or the kernel default).

    ``writable`` is no cgroup limit: it caps the bytes the container's writable layer may
    hold (its size's cap). No filesystem quota can enforce it on the hosts we run on, so
    the agent measures the layer periodically and kills a container past it (ADR 0013).
    """

    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    blkio_weight: int = 0
    writable: int = 0


@dataclass(frozen=True, slots=True)
class MountSpec:
    """A mount in the container. ``type`` is ``volume`` (``source`` = volume name, data kept
    on this host) or ``tmpfs`` (``options`` in mount(8) syntax). ``copy_up`` asks the agent
    to seed an empty volume with the image's content at ``target``, as Docker does.
    """

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    options: tuple[str, ...] = ()
    copy_up: bool = True


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A published port. ``host_port`` 0 asks the agent to pick a free ephemeral port."""

    protocol: str
    container_port: int
    host_ip: str = ""
    host_port: int = 0


@dataclass(frozen=True, slots=True)
class IngressRule:
    """One rule of a security group: traffic to the endpoint with ``protocol`` (``tcp``,
    ``udp``, ``icmp`` or ``all``) and, for tcp/udp, a destination port in
    ``port_min..port_max`` is let in from ``source`` (an IPv4 CIDR) or, when
    ``source_group`` is set, from any member of that group (ADR 0016)."""

    protocol: str
    port_min: int = 0
    port_max: int = 0
    source: str = ""
    source_group: str = ""


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One interface of a container on one tenant network (ADR 0016).

    The agent plugs a veth into ``bridge`` inside the tenant's router namespace (host
    side named from ``endpoint_id``) and names the container side ``interface`` with
    address ``ip`` in ``subnet``. ``gateway`` is the bridge's address (the container's
    default route goes through the gateway of its first endpoint). ``internal``: no
    traffic leaves the tenant's router. ``isolated``: the NAT-only ``bridge`` network,
    whose ports cannot reach each other. ``names`` are what the network's DNS answers
    with ``ip`` (container name, aliases, short id).
    """

    endpoint_id: str
    network_id: str
    bridge: str
    subnet: str
    gateway: str
    ip: str
    interface: str = "eth0"
    internal: bool = False
    isolated: bool = False
    names: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """Ids of the security groups the container is in (its address is a member of each)."""
    ingress: tuple[IngressRule, ...] = ()
    """What may come in from outside the network: the rules of all its groups."""


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """How to plumb the container's network namespace.

    ``mode`` is ``none`` (loopback only), ``tenant`` (one interface per endpoint, in the
    order given, on bridges in the router namespace of tenant ``router``; published
    ``ports`` are DNATed to the first endpoint's address) or ``container`` (the netns of
    running container ``peer`` is joined; nothing is plumbed).
    """

    mode: str = "none"
    router: str = ""
    endpoints: tuple[EndpointSpec, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    peer: str = ""
    public_ip: str = ""
    """The floating IP bound to the container: the first endpoint's egress leaves from it
    (SNAT) and ``public_ports`` arriving at it are DNATed to the first endpoint."""
    public_ports: tuple[PortMapping, ...] = ()
    """``host_port`` on ``public_ip`` -> ``container_port`` (exposed ports keep their
    number; ``-p 10022:22`` maps 10022 to 22)."""


@dataclass(frozen=True, slots=True)
class HealthcheckSpec:
    """A container's health probe with Docker's defaults applied: ``args`` run in the
    container (``CMD-SHELL`` already turned into ``/bin/sh -c``); durations in ns."""

    args: tuple[str, ...]
    interval: int
    timeout: int
    start_period: int
    retries: int


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One probe: when it ran (ns), its exit code (-1: timed out or could not run) and
    the start of its output."""

    start: int
    end: int
    exit_code: int
    output: str


@dataclass(slots=True)
class HealthState:
    """``status``: ``starting``, ``healthy`` or ``unhealthy``; the newest probes last."""

    status: str = "starting"
    failing_streak: int = 0
    log: list[HealthResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """Prepare a container: layers present, rootfs and bundle ready, nothing running yet."""

    id: str
    tenant: str
    name: str
    uid_base: int
    uid_size: int
    layers: tuple[str, ...]
    process: ProcessSpec
    hostname: str
    domainname: str = ""
    resources: Resources = field(default_factory=Resources)
    mounts: tuple[MountSpec, ...] = ()
    readonly_rootfs: bool = False
    init: bool = False
    capabilities: tuple[str, ...] = ()
    network: NetworkSpec = field(default_factory=NetworkSpec)
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()
    shm_size: int = 0
    oom_score_adj: int = 0
    log_max_size: int = 0
    """Bytes per log file (0: no cap); at most ``log_max_files`` files are kept."""
    log_max_files: int = 1
    log_compress: bool = False
    """gzip rotated log files."""
    auto_remove: bool = False
    """``--rm``: the agent deletes the container as soon as it has reported its exit."""
    healthcheck: HealthcheckSpec | None = None


@dataclass(frozen=True, slots=True)
class StopRequest:
    """Send ``signal``; if still running after ``timeout`` seconds, SIGKILL (-1: wait forever)."""

    signal: str = "SIGTERM"
    timeout: int = 10


@dataclass(slots=True)
class ContainerStatus:
    """What an agent knows of one container.

    ``status`` is ``created``, ``running``, ``paused`` or ``exited``. ``ports`` maps
    ``"80/tcp"`` to the host ``[ip, port]`` pairs actually bound.
    """

    id: str
    status: str
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    started_at: int = 0
    finished_at: int = 0
    error: str = ""
    ports: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    health: HealthState | None = None


@dataclass(slots=True)
class AgentEvent:
    """A change an agent observed: ``start``, ``exit``, ``oom``, ``pause``, ``unpause``,
    ``health`` (a probe ran; ``container.health`` holds the result), ``exec_die`` (an exec
    ended; ``exec`` says which and how).

    ``seq`` increases by one per event within one ``boot_id`` (one agent process life). A
    controller that sees a new boot id or a gap resynchronises with a full state listing.
    """

    seq: int
    boot_id: str
    kind: str
    container: ContainerStatus
    time: int
    exec: ExecStatus | None = None  # ``exec_die``: the exec that ended


@dataclass(slots=True)
class ContainerListing:
    """Every container on the agent, and the event position the listing reflects: events
    with ``seq`` greater than ``seq`` (same ``boot_id``) happened after it."""

    boot_id: str
    seq: int
    containers: list[ContainerStatus]


@dataclass(slots=True)
class ContainerSize:
    size_rw: int
    size_root_fs: int


@dataclass(slots=True)
class TopResult:
    titles: list[str]
    processes: list[list[str]]


@dataclass(slots=True)
class PathStat:
    """A path in a container as ``docker cp`` sees it (a final symlink not followed).

    ``name`` is the last element of the path as requested; ``mode`` is the Unix
    ``st_mode``; ``mtime`` in nanoseconds; ``link_target`` is the symlink fully resolved
    inside the container (empty when not a symlink).
    """

    name: str
    size: int
    mode: int
    mtime: int
    link_target: str = ""


@dataclass(slots=True)
class FileChange:
    """One entry of ``docker diff``: ``kind`` is ``modified``, ``added`` or ``deleted``."""

    path: str
    kind: str


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """What one tenant uses on one host. ``memory`` (bytes in use, page cache included)
    and ``cpu`` (ns of CPU time since the tenant's first container there started) come
    from the tenant's parent cgroup; ``writable`` and ``volumes`` (bytes allocated on
    disk) from the agent's last disk measurement, taken at ``measured`` (ns, 0: not yet)."""

    tenant: str
    memory: int = 0
    cpu: int = 0
    containers_running: int = 0
    writable: int = 0
    volumes: int = 0
    measured: int = 0


@dataclass(frozen=True, slots=True)
class VolumeRequest:
    name: str
    tenant: str
    uid_base: int
    options: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AgentInfo:
    """Facts about the agent's host, for /info, scheduling and health."""

    id: str
    boot_id: str
    hostname: str
    kernel_version: str
    operating_system: str
    os_type: str
    architecture: str
    ncpu: int
    mem_total: int
    cgroup_driver: str
    cgroup_version: str
    runtime: str
    runtime_version: str
    storage_driver: str
    root_dir: str
    protocol_version: int = 1


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """A process to run in a running container (``docker exec``). ``user`` and ``cwd``
    empty mean the container's own; ``env`` entries override the container's by name."""

    id: str
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = ""
    user: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    console_height: int = 0
    console_width: int = 0
    detach_keys: str = ""  # Docker's syntax; empty: ctrl-p,ctrl-q


@dataclass(slots=True)
class ExecStatus:
    """What an agent knows of an exec: its request and how far it has got. ``exit_code``
    is None until it has run and exited."""

    request: ExecRequest
    container_id: str
    running: bool = False
    pid: int = 0
    exit_code: int | None = None


# stats -----------------------------------------------------------------------------------


@dataclass(slots=True)
class CpuStats:
    """CPU time of a container's cgroup and of its host, in ns (``GET .../stats``).

    ``percpu_usage`` is empty on cgroup v2 (the kernel keeps no per-CPU account there).
    ``system_usage`` is the host's busy plus idle time over all CPUs (/proc/stat), so
    ``Δusage / Δsystem_usage * online_cpus`` is the share of the host the container used.
    """

    usage: int = 0
    percpu_usage: list[int] = field(default_factory=list)
    kernel_usage: int = 0
    user_usage: int = 0
    system_usage: int = 0
    online_cpus: int = 0
    periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0


@dataclass(slots=True)
class MemoryStats:
    """Memory of a container's cgroup in bytes. ``limit`` is the cgroup's limit, or the
    host's memory when that is lower (no limit). ``stats`` is ``memory.stat`` as the kernel
    names it (v1 and v2 keys differ). ``max_usage`` and ``failcnt`` are 0 where the kernel
    does not keep them (v2 without ``memory.peak``)."""

    usage: int = 0
    max_usage: int = 0
    failcnt: int = 0
    limit: int = 0
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BlkioEntry:
    """One line of a blkio counter: device, operation (``Read``, ``Write``, ``Total``...)."""

    major: int
    minor: int
    op: str
    value: int


@dataclass(slots=True)
class BlkioStats:
    """Block I/O counters; a list is None where the host's cgroup does not keep it."""

    io_service_bytes_recursive: list[BlkioEntry] | None = None
    io_serviced_recursive: list[BlkioEntry] | None = None
    io_queue_recursive: list[BlkioEntry] | None = None
    io_service_time_recursive: list[BlkioEntry] | None = None
    io_wait_time_recursive: list[BlkioEntry] | None = None
    io_merged_recursive: list[BlkioEntry] | None = None
    io_time_recursive: list[BlkioEntry] | None = None
    sectors_recursive: list[BlkioEntry] | None = None


@dataclass(slots=True)
class InterfaceStats:
    """Counters of one network interface in the container's namespace."""

    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass(slots=True)
class ContainerStats:
    """One sample of a container's resource use, read when asked (``read``: ns since the
    epoch). A container that is not running has ``running`` false and every counter zero.
    ``pids_limit`` 0 means no limit; ``networks`` is keyed by interface name, loopback
    left out."""

    id: str
    read: int
    running: bool = False
    cpu: CpuStats = field(default_factory=CpuStats)
    memory: MemoryStats = field(default_factory=MemoryStats)
    pids_current: int = 0
    pids_limit: int = 0
    blkio: BlkioStats = field(default_factory=BlkioStats)
    networks: dict[str, InterfaceStats] = field(default_factory=dict)
