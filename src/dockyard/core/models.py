"""Records the controller keeps: containers, images, volumes, networks, public IPs and
hosts.

Field names follow Docker's where Docker has one (in snake_case); the Docker-compat API maps
them one to one. Times are integer nanoseconds since the Unix epoch, ``0`` meaning "never"
(Docker's zero time). Every record carries its ``tenant`` id.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dockyard.core.protocol import HealthState, MountSpec

__all__ = [
    "Container",
    "ContainerConfig",
    "ContainerState",
    "Endpoint",
    "ExecInstance",
    "Healthcheck",
    "Host",
    "HostConfig",
    "Image",
    "IpPool",
    "MountRequest",
    "Network",
    "PortBinding",
    "PublicIp",
    "RestartPolicy",
    "SecurityGroup",
    "SecurityGroupRule",
    "Status",
    "Volume",
]


class Status(enum.Enum):
    """A container's lifecycle state, with Docker's names."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Docker's restart policy: ``no``, ``always``, ``on-failure`` or ``unless-stopped``."""

    name: str = "no"
    maximum_retry_count: int = 0


@dataclass(frozen=True, slots=True)
class PortBinding:
    host_ip: str = ""
    host_port: str = ""


@dataclass(frozen=True, slots=True)
class MountRequest:
    """A mount asked for at create: a named volume or a tmpfs.

    ``source`` is the volume name for ``volume`` mounts and empty for ``tmpfs``.
    ``options`` holds tmpfs options (``size=64m``, ``mode=1777``) in mount(8) syntax.
    """

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    options: tuple[str, ...] = ()
    volume_nocopy: bool = False
    # Asked-for settings that admission checks (and refuses for what reaches the host).
    propagation: str = ""
    volume_driver: str = ""
    volume_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """Docker's healthcheck; durations in nanoseconds, 0 meaning "inherit the default"."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    retries: int = 0


@dataclass(slots=True)
class ContainerConfig:
    """The portable part of a container's configuration (Docker's ``Config``).

    After create this holds the effective values: the request merged with the image's
    defaults, as ``docker inspect`` shows them.
    """

    image: str
    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: tuple[str, ...] = ()
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    healthcheck: Healthcheck | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    network_disabled: bool = False
    mac_address: str = ""
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None
    args_escaped: bool = False


@dataclass(slots=True)
class HostConfig:
    """The host-dependent part (Docker's ``HostConfig``): limits, mounts, network, policy.

    Only what Dockyard honours is kept; the Docker API reports everything else with
    Docker's defaults, and create answers unsupported settings with a warning or a refusal.
    """

    binds: tuple[str, ...] = ()
    mounts: tuple[MountRequest, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)
    network_mode: str = "default"
    port_bindings: dict[str, tuple[PortBinding, ...]] = field(default_factory=dict)
    publish_all_ports: bool = False
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    readonly_rootfs: bool = False
    init: bool = False
    memory: int = 0
    memory_reservation: int = 0
    memory_swap: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    blkio_weight: int = 0
    shm_size: int = 0
    dns: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    oom_score_adj: int = 0
    log_type: str = "json-file"
    log_options: dict[str, str] = field(default_factory=dict)
    # Asked-for settings that admission refuses for tenants; kept so refusals can name them.
    privileged: bool = False
    pid_mode: str = ""
    ipc_mode: str = ""
    uts_mode: str = ""
    userns_mode: str = ""
    cgroupns_mode: str = ""
    devices: tuple[str, ...] = ()
    device_requests: tuple[str, ...] = ()  # --gpus: the capabilities asked for
    device_cgroup_rules: tuple[str, ...] = ()
    cgroup: str = ""  # Docker's HostConfig.Cgroup: another container's cgroup to join
    security_opt: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ContainerState:
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: int = 0
    finished_at: int = 0
    health: HealthState | None = None  # while running with a healthcheck


@dataclass(slots=True)
class Container:
    """A container record.

    ``host`` is the id of the agent that runs it. ``image`` is the image reference as the
    user wrote it and ``image_id`` what it resolved to at create. ``endpoints`` are its
    networks in the order its interfaces are made (the first one carries the default
    route and published ports); none for ``none`` and ``container:`` network modes.
    ``ports`` holds the published ports actually bound, ``"80/tcp" -> bindings``.
    ``manually_stopped`` records an explicit stop, which restart policies respect.
    ``mounts`` are the resolved volume and tmpfs mounts (anonymous volumes named).
    ``memory`` is the memory limit it was admitted with (what it reserves on its host);
    ``size`` names its size (``dockyard.core.sizes``; "" for records made before sizes).
    ``phase`` is "" at rest, or ``creating`` / ``removing`` while that operation runs, so
    the controller can finish or roll it back after a crash.
    ``security_groups`` are the ids of its tenant's security groups it is in (the tenant's
    ``default`` group unless its create named others): what may reach it from outside its
    networks.
    """

    id: str
    tenant: str
    name: str
    created: int
    image: str
    image_id: str
    config: ContainerConfig
    host_config: HostConfig
    host: str
    state: ContainerState = field(default_factory=ContainerState)
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: dict[str, tuple[PortBinding, ...]] = field(default_factory=dict)
    restart_count: int = 0
    manually_stopped: bool = False
    has_been_started: bool = False
    phase: str = ""
    memory: int = 0
    mounts: tuple[MountSpec, ...] = ()
    anonymous_volumes: tuple[str, ...] = ()
    size: str = ""
    security_groups: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Image:
    """An image a tenant holds.

    ``id`` is ``sha256:<hex>`` of the config blob, as Docker computes it. ``layers`` lists the
    layers' uncompressed digests (diff ids) bottom first; their blobs live in the content
    store under those digests. ``repo_tags`` are ``name:tag`` strings, ``repo_digests``
    ``name@sha256:...`` strings. ``size`` is the sum of the layers' sizes.
    """

    id: str
    tenant: str
    layers: tuple[str, ...]
    size: int
    created: int
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    parent: str = ""
    comment: str = ""
    loaded_at: int = 0


@dataclass(frozen=True, slots=True)
class ExecInstance:
    """Where an exec runs: a container of a tenant. Its request and state live with the
    container, on the container's agent; the store only answers "whose, and where"."""

    id: str
    tenant: str
    container_id: str
    created: int
    command: str = ""  # as Docker's exec events name it: the arguments, space-separated


@dataclass(slots=True)
class Volume:
    name: str
    tenant: str
    created: int
    host: str
    driver: str = "local"
    mountpoint: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False


@dataclass(slots=True)
class Network:
    """A tenant's network (ADR 0016).

    ``bridge`` names its Linux bridge inside the tenant's router namespace on each host
    with members. ``builtin`` marks the two networks every tenant has (``default``, the
    private network containers join unless told otherwise, and ``bridge``, NAT only):
    they cannot be removed. ``isolated``: the network's members cannot reach each other
    (the NAT-only ``bridge``). ``ip_range`` (within ``subnet``) is where dynamic addresses
    come from, the whole subnet when empty.
    """

    id: str
    tenant: str
    name: str
    driver: str
    subnet: str
    gateway: str
    bridge: str
    created: int
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    ip_range: str = ""
    attachable: bool = False
    options: dict[str, str] = field(default_factory=dict)
    builtin: bool = False
    isolated: bool = False


@dataclass(frozen=True, slots=True)
class SecurityGroupRule:
    """One ingress rule of a security group (ADR 0016): traffic with ``protocol``
    (``tcp``, ``udp``, ``icmp`` or ``all``) to a member, for tcp and udp to a port in
    ``port_min..port_max`` (both 0 for icmp and all), is let in from the IPv4 prefix
    ``source`` or, when ``source_group`` (a group id of the same tenant) is set instead,
    from any member of that group. ``id`` is random; rules have no order."""

    id: str
    protocol: str
    port_min: int = 0
    port_max: int = 0
    source: str = ""
    source_group: str = ""
    created: int = 0


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    """A tenant's security group: what may come into its members from outside their own
    networks (ADR 0016). Names are unique per tenant. ``builtin`` marks the tenant's
    ``default`` group, made on first use, which containers join when they name none and
    which cannot be removed. Changed by replacing the whole record."""

    id: str
    tenant: str
    name: str
    created: int
    description: str = ""
    rules: tuple[SecurityGroupRule, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    builtin: bool = False


@dataclass(slots=True)
class Endpoint:
    """A container's place on one network: its reserved address (kept while the container
    exists, as Docker keeps a user network's address across restarts), the aliases other
    containers on the network resolve to it, the address the user asked for (``--ip``),
    and ``id``, random, which names its interface on the host.
    """

    network_id: str
    id: str
    ip: str
    aliases: tuple[str, ...] = ()
    requested_ip: str = ""


@dataclass(frozen=True, slots=True)
class IpPool:
    """A range of public addresses the operator gave the cloud to hand out as floating IPs
    (``cidr``, an IPv4 network). Its network and broadcast addresses are never handed out
    when it is larger than a /31."""

    cidr: str
    created: int


@dataclass(frozen=True, slots=True)
class PublicIp:
    """A public (floating) IP a tenant holds, from an :class:`IpPool` (ADR 0018).

    It is the tenant's until released: ``container`` is the id of the container it is
    bound to, ``""`` while unbound (also after that container was removed), and a
    container has at most one.
    """

    address: str
    tenant: str
    created: int
    container: str = ""


@dataclass(slots=True)
class Host:
    """An agent the controller can place containers on."""

    id: str
    name: str
    address: str
    created: int
