"""Docker's container JSON: create bodies in, inspect and list entries out."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any

from dockyard.api.docker.body import (
    get_bool,
    get_int,
    get_map,
    get_str,
    get_str_list,
    get_str_map,
)
from dockyard.controller.networks import EndpointRequest
from dockyard.core.clock import format_rfc3339
from dockyard.core.errors import InvalidArgument
from dockyard.core.humanize import human_duration
from dockyard.core.models import (
    Container,
    ContainerConfig,
    Endpoint,
    Healthcheck,
    HostConfig,
    MountRequest,
    Network,
    PortBinding,
    RestartPolicy,
    Status,
    Volume,
)
from dockyard.core.protocol import HealthState
from dockyard.core.sizes import SIZES

__all__ = [
    "KNOWN_HOST_CONFIG",
    "Joined",
    "config_json",
    "container_summary",
    "inspect_container",
    "network_settings_json",
    "parse_config",
    "parse_create",
    "parse_endpoints",
    "parse_host_config",
    "unsupported_warnings",
]

# HostConfig fields accepted without effect; a non-default value earns a warning.
_IGNORED = {
    "Ulimits": "ulimits are not supported yet; containers get the host's defaults",
    "MemorySwappiness": "memory swappiness is not supported; the setting was ignored",
    "OomKillDisable": "disabling the OOM killer is not allowed; the setting was ignored",
    "CgroupParent": "cgroup parents are chosen by Dockyard; the setting was ignored",
    "Links": "legacy links are not supported; use a network and container names",
    "VolumesFrom": "volumes-from is not supported yet; the setting was ignored",
    "StorageOpt": "storage options are not supported; the setting was ignored",
    "KernelMemory": "kernel memory limits are deprecated; the setting was ignored",
    "KernelMemoryTCP": "kernel memory limits are deprecated; the setting was ignored",
    "CpuRealtimePeriod": "realtime scheduling is not supported; the setting was ignored",
    "CpuRealtimeRuntime": "realtime scheduling is not supported; the setting was ignored",
    "BlkioWeightDevice": "per-device block I/O limits are not supported; ignored",
    "BlkioDeviceReadBps": "per-device block I/O limits are not supported; ignored",
    "BlkioDeviceWriteBps": "per-device block I/O limits are not supported; ignored",
    "BlkioDeviceReadIOps": "per-device block I/O limits are not supported; ignored",
    "BlkioDeviceWriteIOps": "per-device block I/O limits are not supported; ignored",
    "CpuCount": "CpuCount applies to Windows only; the setting was ignored",
    "CpuPercent": "CpuPercent applies to Windows only; the setting was ignored",
    "IOMaximumIOps": "IOMaximumIOps applies to Windows only; the setting was ignored",
    "IOMaximumBandwidth": "IOMaximumBandwidth applies to Windows only; ignored",
    "MaskedPaths": "masked paths are fixed by Dockyard; the setting was ignored",
    "ReadonlyPaths": "read-only paths are fixed by Dockyard; the setting was ignored",
    "VolumeDriver": "only the local volume driver exists; the setting was ignored",
    "Annotations": "OCI annotations are not passed to the runtime; the setting was ignored",
}

# HostConfig fields parse_host_config reads (applied, or kept for admission to refuse), and
# those that need nothing (client-side or fixed); any other with a non-default value is
# answered with a warning, so nothing a client sends is dropped without a word.
_READ = frozenset(
    {
        "AutoRemove",
        "Binds",
        "BlkioWeight",
        "CapAdd",
        "CapDrop",
        "Cgroup",
        "CgroupnsMode",
        "CpuPeriod",
        "CpuQuota",
        "CpuShares",
        "CpusetCpus",
        "CpusetMems",
        "DeviceCgroupRules",
        "DeviceRequests",
        "Devices",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ExtraHosts",
        "GroupAdd",
        "Init",
        "IpcMode",
        "LogConfig",
        "Memory",
        "MemoryReservation",
        "MemorySwap",
        "Mounts",
        "NanoCpus",
        "NetworkMode",
        "OomScoreAdj",
        "PidMode",
        "PidsLimit",
        "PortBindings",
        "Privileged",
        "PublishAllPorts",
        "ReadonlyRootfs",
        "RestartPolicy",
        "SecurityOpt",
        "ShmSize",
        "Sysctls",
        "Tmpfs",
        "UTSMode",
        "UsernsMode",
        "Runtime",
        "Isolation",
        # client-side or without meaning here
        "ContainerIDFile",
        "ConsoleSize",
    }
)
KNOWN_HOST_CONFIG = _READ | frozenset(_IGNORED)
"""Every HostConfig field Dockyard knows: read, or ignored with a warning."""

# EndpointsConfig settings Dockyard does not apply.
_IGNORED_ENDPOINT = {
    "Links": "legacy links are not supported; use a network and container names",
    "MacAddress": "MacAddress is chosen by Dockyard; the setting was ignored",
    "DriverOpts": "network driver options are not supported; the setting was ignored",
}


def _healthcheck(data: dict[str, Any]) -> Healthcheck | None:
    if not data:
        return None
    test = get_str_list(data, "Test", "Healthcheck") or ()
    return Healthcheck(
        test=test,
        interval=get_int(data, "Interval", "Healthcheck"),
        timeout=get_int(data, "Timeout", "Healthcheck"),
        start_period=get_int(data, "StartPeriod", "Healthcheck"),
        retries=get_int(data, "Retries", "Healthcheck"),
    )


def _entrypoint(body: dict[str, Any]) -> tuple[str, ...] | None:
    value = get_str_list(body, "Entrypoint", lone_string=True)
    if value is None or value == ():
        return None
    if value == ("",):
        return ()  # --entrypoint "": explicitly none
    return value


def parse_config(body: dict[str, Any]) -> ContainerConfig:
    """Docker's ``Config`` (the top level of a create body)."""
    image = get_str(body, "Image")
    if not image:
        raise InvalidArgument("Config.Image is required")
    cmd = get_str_list(body, "Cmd", lone_string=True)
    stop_timeout = body.get("StopTimeout")
    return ContainerConfig(
        image=image,
        hostname=get_str(body, "Hostname"),
        domainname=get_str(body, "Domainname"),
        user=get_str(body, "User"),
        attach_stdin=get_bool(body, "AttachStdin"),
        attach_stdout=get_bool(body, "AttachStdout"),
        attach_stderr=get_bool(body, "AttachStderr"),
        exposed_ports=tuple(get_map(body, "ExposedPorts")),
        tty=get_bool(body, "Tty"),
        open_stdin=get_bool(body, "OpenStdin"),
        stdin_once=get_bool(body, "StdinOnce"),
        env=tuple(e for e in get_str_list(body, "Env") or () if e),
        cmd=cmd if cmd else None,
        entrypoint=_entrypoint(body),
        healthcheck=_healthcheck(get_map(body, "Healthcheck")),
        volumes=tuple(get_map(body, "Volumes")),
        working_dir=get_str(body, "WorkingDir"),
        labels=get_str_map(body, "Labels"),
        stop_signal=get_str(body, "StopSignal"),
        stop_timeout=None if stop_timeout is None else get_int(body, "StopTimeout"),
        network_disabled=get_bool(body, "NetworkDisabled"),
        mac_address=get_str(body, "MacAddress"),
        on_build=get_str_list(body, "OnBuild"),
        shell=get_str_list(body, "Shell", lone_string=True),
        args_escaped=get_bool(body, "ArgsEscaped"),
    )


def _port_bindings(data: dict[str, Any]) -> dict[str, tuple[PortBinding, ...]]:
    out: dict[str, tuple[PortBinding, ...]] = {}
    for key, bindings in data.items():
        if bindings is None:
            out[key] = ()
            continue
        if not isinstance(bindings, list):
            raise InvalidArgument(f"invalid type for PortBindings[{key}]: expected a list")
        items = []
        for binding in bindings:
            if not isinstance(binding, dict):
                raise InvalidArgument(f"invalid port binding for {key}")
            items.append(
                PortBinding(
                    host_ip=get_str(binding, "HostIp", "PortBindings"),
                    host_port=get_str(binding, "HostPort", "PortBindings"),
                )
            )
        out[key if "/" in key else f"{key}/tcp"] = tuple(items)
    return out


def _mounts(data: Any) -> tuple[MountRequest, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise InvalidArgument("invalid type for HostConfig.Mounts: expected a list")
    out = []
    for item in data:
        if not isinstance(item, dict):
            raise InvalidArgument("invalid mount: expected an object")
        kind = get_str(item, "Type", "Mounts") or "volume"
        options: list[str] = []
        tmpfs = get_map(item, "TmpfsOptions", "Mounts")
        if tmpfs.get("SizeBytes"):
            options.append(f"size={get_int(tmpfs, 'SizeBytes', 'TmpfsOptions')}")
        if tmpfs.get("Mode"):
            options.append(f"mode={get_int(tmpfs, 'Mode', 'TmpfsOptions'):o}")
        volume_options = get_map(item, "VolumeOptions", "Mounts")
        driver_config = get_map(volume_options, "DriverConfig", "VolumeOptions")
        bind_options = get_map(item, "BindOptions", "Mounts")
        out.append(
            MountRequest(
                type=kind,
                target=get_str(item, "Target", "Mounts"),
                source=get_str(item, "Source", "Mounts"),
                read_only=get_bool(item, "ReadOnly", "Mounts"),
                options=tuple(options),
                volume_nocopy=get_bool(volume_options, "NoCopy", "VolumeOptions"),
                propagation=get_str(bind_options, "Propagation", "BindOptions"),
                volume_driver=get_str(driver_config, "Name", "DriverConfig"),
                volume_options=get_str_map(driver_config, "Options", "DriverConfig"),
            )
        )
    return tuple(out)


def _mount_warnings(data: Any) -> list[str]:
    """Mount settings accepted without effect (labels for a volume made on the fly)."""
    if not isinstance(data, list):
        return []
    for item in data:
        if isinstance(item, dict) and get_map(get_map(item, "VolumeOptions"), "Labels"):
            return [
                "volume labels in Mounts are not applied; label the volume with "
                "docker volume create --label"
            ]
    return []


def parse_host_config(hc: dict[str, Any]) -> HostConfig:
    restart = get_map(hc, "RestartPolicy", "HostConfig")
    log_config = get_map(hc, "LogConfig", "HostConfig")
    return HostConfig(
        binds=get_str_list(hc, "Binds", "HostConfig") or (),
        mounts=_mounts(hc.get("Mounts")),
        tmpfs=get_str_map(hc, "Tmpfs", "HostConfig"),
        network_mode=get_str(hc, "NetworkMode", "HostConfig") or "default",
        port_bindings=_port_bindings(get_map(hc, "PortBindings", "HostConfig")),
        publish_all_ports=get_bool(hc, "PublishAllPorts", "HostConfig"),
        restart_policy=RestartPolicy(
            name=get_str(restart, "Name", "RestartPolicy") or "no",
            maximum_retry_count=get_int(restart, "MaximumRetryCount", "RestartPolicy"),
        ),
        auto_remove=get_bool(hc, "AutoRemove", "HostConfig"),
        readonly_rootfs=get_bool(hc, "ReadonlyRootfs", "HostConfig"),
        init=bool(hc.get("Init")),
        memory=get_int(hc, "Memory", "HostConfig"),
        memory_reservation=get_int(hc, "MemoryReservation", "HostConfig"),
        memory_swap=get_int(hc, "MemorySwap", "HostConfig"),
        nano_cpus=get_int(hc, "NanoCpus", "HostConfig"),
        cpu_shares=get_int(hc, "CpuShares", "HostConfig"),
        cpu_period=get_int(hc, "CpuPeriod", "HostConfig"),
        cpu_quota=get_int(hc, "CpuQuota", "HostConfig"),
        cpuset_cpus=get_str(hc, "CpusetCpus", "HostConfig"),
        cpuset_mems=get_str(hc, "CpusetMems", "HostConfig"),
        pids_limit=get_int(hc, "PidsLimit", "HostConfig"),
        blkio_weight=get_int(hc, "BlkioWeight", "HostConfig"),
        shm_size=get_int(hc, "ShmSize", "HostConfig"),
        dns=get_str_list(hc, "Dns", "HostConfig") or (),
        dns_options=get_str_list(hc, "DnsOptions", "HostConfig") or (),
        dns_search=get_str_list(hc, "DnsSearch", "HostConfig") or (),
        extra_hosts=get_str_list(hc, "ExtraHosts", "HostConfig") or (),
        group_add=get_str_list(hc, "GroupAdd", "HostConfig") or (),
        cap_add=get_str_list(hc, "CapAdd", "HostConfig") or (),
        cap_drop=get_str_list(hc, "CapDrop", "HostConfig") or (),
        oom_score_adj=get_int(hc, "OomScoreAdj", "HostConfig"),
        log_type=get_str(log_config, "Type", "LogConfig") or "json-file",
        log_options=get_str_map(log_config, "Config", "LogConfig"),
        privileged=get_bool(hc, "Privileged", "HostConfig"),
        pid_mode=get_str(hc, "PidMode", "HostConfig"),
        ipc_mode=get_str(hc, "IpcMode", "HostConfig"),
        uts_mode=get_str(hc, "UTSMode", "HostConfig"),
        userns_mode=get_str(hc, "UsernsMode", "HostConfig"),
        cgroupns_mode=get_str(hc, "CgroupnsMode", "HostConfig"),
        devices=tuple(
            str(d.get("PathOnHost", d)) if isinstance(d, dict) else str(d)
            for d in hc.get("Devices") or ()
        ),
        device_requests=tuple(_device_request(r) for r in hc.get("DeviceRequests") or ()),
        device_cgroup_rules=get_str_list(hc, "DeviceCgroupRules", "HostConfig") or (),
        cgroup=get_str(hc, "Cgroup", "HostConfig"),
        security_opt=(get_str_list(hc, "SecurityOpt", "HostConfig") or ()) + _unmasked(hc),
        sysctls=get_str_map(hc, "Sysctls", "HostConfig"),
    )


def _unmasked(hc: dict[str, Any]) -> tuple[str, ...]:
    """The docker CLI turns ``--security-opt systempaths=unconfined`` into empty
    ``MaskedPaths`` and ``ReadonlyPaths`` (null means the defaults): admission sees the
    option it came from. Lists with paths are ignored with a warning (``_IGNORED``)."""
    if hc.get("MaskedPaths") == [] or hc.get("ReadonlyPaths") == []:
        return ("systempaths=unconfined",)
    return ()


def _device_request(request: Any) -> str:
    """A DeviceRequest (``--gpus``) named for the refusal: its driver or capabilities."""
    if not isinstance(request, dict):
        return str(request)
    capabilities = request.get("Capabilities") or []
    names = [str(c) for group in capabilities if isinstance(group, list) for c in group]
    return str(request.get("Driver") or ",".join(names) or "device")


def _is_default(value: Any) -> bool:
    return value in (None, 0, -1, "", False, [], {})


def _given(value: Any) -> bool:
    """Whether a setting holds anything but defaults (``{"IPv4Address": ""}`` does not)."""
    if isinstance(value, dict):
        return any(_given(v) for v in value.values())
    return not _is_default(value)


def unsupported_warnings(hc: dict[str, Any]) -> list[str]:
    """Warnings for HostConfig settings given with a value Dockyard does not apply."""
    warnings = [msg for key, msg in _IGNORED.items() if not _is_default(hc.get(key))]
    warnings += [
        f"HostConfig.{key} is not supported by Dockyard; the setting was ignored"
        for key, value in sorted(hc.items())
        if key not in KNOWN_HOST_CONFIG and not _is_default(value)
    ]
    warnings += _mount_warnings(hc.get("Mounts"))
    runtime = hc.get("Runtime")
    if runtime not in (None, "", "runc", "crun"):
        warnings.append(f"runtime {runtime!r} is not available; containers run with crun")
    isolation = hc.get("Isolation")
    if isolation not in (None, "", "default"):
        warnings.append(f"isolation {isolation!r} is not supported; ignored")
    return warnings


def parse_endpoints(endpoints: dict[str, Any]) -> tuple[list[EndpointRequest], list[str]]:
    """EndpointsConfig (create) or one EndpointConfig per network: what to join, warnings."""
    requests: list[EndpointRequest] = []
    warnings: list[str] = []
    for network, raw in endpoints.items():
        endpoint = raw if isinstance(raw, dict) else {}
        ipam = get_map(endpoint, "IPAMConfig")
        if ipam.get("IPv6Address"):
            raise InvalidArgument("IPv6 addresses are not supported")
        aliases = get_str_list(endpoint, "Aliases", "EndpointConfig") or ()
        warnings += [msg for key, msg in _IGNORED_ENDPOINT.items() if _given(endpoint.get(key))]
        requests.append(
            EndpointRequest(
                network=network,
                aliases=tuple(a for a in aliases if a),
                ip=get_str(ipam, "IPv4Address", "IPAMConfig"),
            )
        )
    return requests, warnings


def parse_create(
    body: dict[str, Any],
) -> tuple[ContainerConfig, HostConfig, list[EndpointRequest], list[str]]:
    """A create request: (Config, HostConfig, the networks to join, warnings for what will
    not be applied)."""
    config = parse_config(body)
    hc_body = get_map(body, "HostConfig")
    host_config = parse_host_config(hc_body)
    networking = get_map(get_map(body, "NetworkingConfig"), "EndpointsConfig")
    warnings = unsupported_warnings(hc_body)
    if config.network_disabled:
        host_config.network_mode = "none"
    endpoints, endpoint_warnings = parse_endpoints(networking)
    warnings += endpoint_warnings
    if config.mac_address:
        warnings.append("MacAddress is chosen by Dockyard; the setting was ignored")
    return config, host_config, endpoints, list(dict.fromkeys(warnings))


# rendering ------------------------------------------------------------------------------


def _state_json(container: Container) -> dict[str, Any]:
    state = container.state
    status = state.status
    health = {} if state.health is None else {"Health": _health_json(state.health)}
    return health | {
        "Status": status.value,
        "Running": status in (Status.RUNNING, Status.PAUSED),
        "Paused": status == Status.PAUSED,
        "Restarting": status == Status.RESTARTING,
        "OOMKilled": state.oom_killed,
        "Dead": status == Status.DEAD,
        "Pid": state.pid,
        "ExitCode": state.exit_code,
        "Error": state.error,
        "StartedAt": format_rfc3339(state.started_at),
        "FinishedAt": format_rfc3339(state.finished_at),
    }


def _health_json(health: HealthState) -> dict[str, Any]:
    return {
        "Status": health.status,
        "FailingStreak": health.failing_streak,
        "Log": [
            {
                "Start": format_rfc3339(entry.start),
                "End": format_rfc3339(entry.end),
                "ExitCode": entry.exit_code,
                "Output": entry.output,
            }
            for entry in health.log
        ],
    }


def _healthcheck_json(hc: Healthcheck | None) -> dict[str, Any] | None:
    if hc is None:
        return None
    out: dict[str, Any] = {"Test": list(hc.test)}
    for key, value in (
        ("Interval", hc.interval),
        ("Timeout", hc.timeout),
        ("StartPeriod", hc.start_period),
        ("Retries", hc.retries),
    ):
        if value:
            out[key] = value
    return out


def config_json(config: ContainerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Hostname": config.hostname,
        "Domainname": config.domainname,
        "User": config.user,
        "AttachStdin": config.attach_stdin,
        "AttachStdout": config.attach_stdout,
        "AttachStderr": config.attach_stderr,
        "Tty": config.tty,
        "OpenStdin": config.open_stdin,
        "StdinOnce": config.stdin_once,
        "Env": list(config.env),
        "Cmd": list(config.cmd) if config.cmd is not None else None,
        "Image": config.image,
        "Volumes": {v: {} for v in config.volumes} or None,
        "WorkingDir": config.working_dir,
        "Entrypoint": list(config.entrypoint) if config.entrypoint else None,
        "OnBuild": list(config.on_build) if config.on_build is not None else None,
        "Labels": dict(config.labels),
    }
    if config.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in config.exposed_ports}
    if config.healthcheck is not None:
        out["Healthcheck"] = _healthcheck_json(config.healthcheck)
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.stop_timeout is not None:
        out["StopTimeout"] = config.stop_timeout
    if config.args_escaped:
        out["ArgsEscaped"] = True
    if config.shell is not None:
        out["Shell"] = list(config.shell)
    return out


def host_config_json(hc: HostConfig) -> dict[str, Any]:
    return {
        "Binds": list(hc.binds) or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": hc.log_type, "Config": dict(hc.log_options)},
        "NetworkMode": hc.network_mode,
        "PortBindings": {
            k: [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in v]
            for k, v in hc.port_bindings.items()
        },
        "RestartPolicy": {
            "Name": hc.restart_policy.name,
            "MaximumRetryCount": hc.restart_policy.maximum_retry_count,
        },
        "AutoRemove": hc.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": list(hc.cap_add) or None,
        "CapDrop": list(hc.cap_drop) or None,
        "CgroupnsMode": hc.cgroupns_mode or "private",
        "Dns": list(hc.dns),
        "DnsOptions": list(hc.dns_options),
        "DnsSearch": list(hc.dns_search),
        "ExtraHosts": list(hc.extra_hosts) or None,
        "GroupAdd": list(hc.group_add) or None,
        "IpcMode": hc.ipc_mode or "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": hc.oom_score_adj,
        "PidMode": hc.pid_mode,
        "Privileged": hc.privileged,
        "PublishAllPorts": hc.publish_all_ports,
        "ReadonlyRootfs": hc.readonly_rootfs,
        "SecurityOpt": list(hc.security_opt) or None,
        "Tmpfs": dict(hc.tmpfs) or None,
        "UTSMode": hc.uts_mode,
        "UsernsMode": hc.userns_mode,
        "ShmSize": hc.shm_size or 67108864,
        "Runtime": "crun",
        "Isolation": "",
        "CpuShares": hc.cpu_shares,
        "Memory": hc.memory,
        "NanoCpus": hc.nano_cpus,
        "CgroupParent": "",
        "BlkioWeight": hc.blkio_weight,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": hc.cpu_period,
        "CpuQuota": hc.cpu_quota,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": hc.cpuset_cpus,
        "CpusetMems": hc.cpuset_mems,
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "MemoryReservation": hc.memory_reservation,
        "MemorySwap": hc.memory_swap,
        "MemorySwappiness": None,
        "OomKillDisable": False,
        "PidsLimit": hc.pids_limit or None,
        "Ulimits": None,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "Mounts": [
            {"Type": m.type, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
            for m in hc.mounts
        ]
        or None,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
        "Init": hc.init or None,
    }


def _sized_host_config_json(container: Container) -> dict[str, Any]:
    """HostConfig as the container runs with it: the memory, CPU shares (unless asked
    for) and writable-layer cap (``StorageOpt.size``) of its size."""
    out = host_config_json(container.host_config)
    size = next((s for s in SIZES if s.name == container.size), None)
    if size is not None:
        out["Memory"] = container.memory
        out["CpuShares"] = container.host_config.cpu_shares or size.cpu_shares
        out["StorageOpt"] = {"size": f"{size.writable >> 30}G"}
    return out


def _ports_json(container: Container, running: bool) -> dict[str, Any]:
    ports: dict[str, Any] = dict.fromkeys(container.config.exposed_ports)
    if running:
        for key, bindings in container.ports.items():
            ports[key] = [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in bindings]
    return ports


Joined = Sequence[tuple[Network, Endpoint]]
"""A container's networks with its endpoint on each, in interface order."""


def network_settings_json(container: Container, joined: Joined) -> dict[str, Any]:
    running = container.state.status in (Status.RUNNING, Status.PAUSED)
    networks: dict[str, Any] = {}
    for network, endpoint in joined:
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        names = [container.name, *endpoint.aliases, container.id[:12]]
        networks[network.name] = {
            "IPAMConfig": {"IPv4Address": endpoint.requested_ip} if endpoint.requested_ip else None,
            "Links": None,
            "Aliases": None if network.isolated else [*endpoint.aliases, container.id[:12]],
            "NetworkID": network.id,
            "EndpointID": endpoint.id if running else "",
            "Gateway": network.gateway if running else "",
            "IPAddress": endpoint.ip if running else "",
            "IPPrefixLen": prefix if running else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": "",
            "DriverOpts": None,
            "DNSNames": None if network.isolated else list(dict.fromkeys(names)),
        }
    # Docker fills the top-level fields for its default network only; here that is the
    # first network of a container in the default modes, so tools reading
    # .NetworkSettings.IPAddress find the address.
    primary: dict[str, Any] = {}
    if joined and container.host_config.network_mode in ("", "default", "bridge"):
        primary = networks[joined[0][0].name]
    return {
        "Bridge": "",
        "SandboxID": container.id if running else "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": _ports_json(container, running),
        "SandboxKey": "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": primary.get("EndpointID", ""),
        "Gateway": primary.get("Gateway", ""),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": primary.get("IPAddress", ""),
        "IPPrefixLen": primary.get("IPPrefixLen", 0),
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks,
    }


def mounts_json(container: Container, volumes: dict[str, Volume]) -> list[dict[str, Any]]:
    """The Mounts array; ``volumes`` maps the tenant's volume names to their records."""
    out = []
    for mount in container.mounts:
        if mount.type == "volume":
            volume = volumes.get(mount.source)
            out.append(
                {
                    "Type": "volume",
                    "Name": mount.source,
                    "Source": volume.mountpoint if volume else "",
                    "Destination": mount.target,
                    "Driver": "local",
                    "Mode": "ro" if mount.read_only else "z",
                    "RW": not mount.read_only,
                    "Propagation": "",
                }
            )
        else:
            out.append(
                {
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": mount.target,
                    "Mode": "",
                    "RW": not mount.read_only,
                    "Propagation": "",
                }
            )
    return out


def _command_parts(config: ContainerConfig) -> list[str]:
    return [*(config.entrypoint or ()), *(config.cmd or ())]


def inspect_container(
    container: Container,
    *,
    networks: Joined,
    mounts: list[dict[str, Any]],
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    parts = _command_parts(container.config)
    if container.host_config.init:
        parts = ["/sbin/docker-init", "--", *parts]
    out: dict[str, Any] = {
        "Id": container.id,
        "Created": format_rfc3339(container.created),
        "Path": parts[0] if parts else "",
        "Args": parts[1:],
        "State": _state_json(container),
        "Image": container.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": f"/{container.name}",
        "RestartCount": container.restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _sized_host_config_json(container),
        "GraphDriver": {"Data": None, "Name": "overlayfs"},
        "Mounts": mounts,
        "Config": config_json(container.config),
        "NetworkSettings": network_settings_json(container, networks),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def status_text(container: Container, now: float | None = None) -> str:
    """The human ``Status`` column of ``docker ps``."""
    current = time.time() if now is None else now
    state = container.state
    if state.status in (Status.RUNNING, Status.PAUSED):
        text = f"Up {human_duration(current - state.started_at / 1e9)}"
        if state.status == Status.PAUSED:
            return text + " (Paused)"
        if state.health is not None:
            health = state.health.status
            return text + (" (health: starting)" if health == "starting" else f" ({health})")
        return text
    if state.status == Status.RESTARTING:
        return (
            f"Restarting ({state.exit_code}) "
            f"{human_duration(current - state.finished_at / 1e9)} ago"
        )
    if state.status == Status.EXITED and state.finished_at:
        return f"Exited ({state.exit_code}) {human_duration(current - state.finished_at / 1e9)} ago"
    if state.status == Status.DEAD:
        return "Dead"
    if state.status == Status.REMOVING:
        return "Removal In Progress"
    return "Created"


def _summary_ports(container: Container) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    running = container.state.status in (Status.RUNNING, Status.PAUSED)
    published = set()
    if running:
        for key, bindings in container.ports.items():
            port, _, proto = key.partition("/")
            published.add(key)
            for b in bindings:
                out.append(
                    {
                        "IP": b.host_ip or "0.0.0.0",  # noqa: S104
                        "PrivatePort": int(port),
                        "PublicPort": int(b.host_port),
                        "Type": proto,
                    }
                )
    for key in container.config.exposed_ports:
        if key not in published:
            port, _, proto = key.partition("/")
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def container_summary(
    container: Container,
    *,
    networks: Joined,
    mounts: list[dict[str, Any]],
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    parts = _command_parts(container.config)
    settings = network_settings_json(container, networks)
    out: dict[str, Any] = {
        "Id": container.id,
        "Names": [f"/{container.name}"],
        "Image": container.image,
        "ImageID": container.image_id,
        "Command": " ".join(parts),
        "Created": container.created // 1_000_000_000,
        "Ports": _summary_ports(container),
        "Labels": dict(container.config.labels),
        "State": container.state.status.value,
        "Status": status_text(container),
        "HostConfig": {"NetworkMode": container.host_config.network_mode},
        "NetworkSettings": {"Networks": settings["Networks"]},
        "Mounts": mounts,
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out
