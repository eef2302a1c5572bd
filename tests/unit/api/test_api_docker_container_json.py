"""Docker's container JSON: create bodies in, inspect and list entries out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.api.docker import container_json
from dockyard.api.docker.container_json import (
    container_summary,
    inspect_container,
    parse_create,
    parse_endpoints,
    status_text,
)
from dockyard.controller.networks import EndpointRequest
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import (
    Container,
    ContainerConfig,
    ContainerState,
    Endpoint,
    HostConfig,
    MountRequest,
    Network,
    PortBinding,
    RestartPolicy,
    Status,
)
from dockyard.core.protocol import MountSpec

SECOND = 1_000_000_000
NOW = 1_700_000_000.0
CID = "0123456789ab" + "c" * 52


def create(body: dict[str, Any]) -> tuple[ContainerConfig, HostConfig, list[str]]:
    config, host_config, _endpoints, warnings = parse_create({"Image": "busybox", **body})
    return config, host_config, warnings


def test_public_surface() -> None:
    assert set(container_json.__all__) == {
        "KNOWN_HOST_CONFIG",
        "config_json",
        "container_summary",
        "inspect_container",
        "Joined",
        "network_settings_json",
        "parse_config",
        "parse_create",
        "parse_endpoints",
        "parse_host_config",
        "unsupported_warnings",
    }


# parse_create ----------------------------------------------------------------------------


def test_minimal_body() -> None:
    config, host_config, endpoints, warnings = parse_create({"Image": "busybox"})
    assert config == ContainerConfig(image="busybox")
    assert host_config == HostConfig()
    assert host_config.network_mode == "default"
    assert endpoints == []
    assert warnings == []


@pytest.mark.parametrize("body", [{}, {"Image": ""}, {"Image": None}])
def test_image_is_required(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="Image is required"):
        parse_create(body)


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("echo hi", ("echo hi",)),
        (["echo", "hi"], ("echo", "hi")),
        ([], None),
        (None, None),
    ],
)
def test_cmd_as_string_or_list(cmd: Any, expected: tuple[str, ...] | None) -> None:
    assert create({"Cmd": cmd})[0].cmd == expected


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [
        ("", ()),
        ([""], ()),
        (None, None),
        ("/entry.sh", ("/entry.sh",)),
        (["sh", "-c"], ("sh", "-c")),
    ],
)
def test_entrypoint(entrypoint: Any, expected: tuple[str, ...] | None) -> None:
    assert create({"Entrypoint": entrypoint})[0].entrypoint == expected


def test_config_fields() -> None:
    config, _, _ = create(
        {
            "Hostname": "web",
            "Domainname": "example.com",
            "User": "1000:1000",
            "Env": ["A=1", "", "B=2"],
            "Tty": True,
            "OpenStdin": True,
            "StdinOnce": True,
            "AttachStdout": True,
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}},
            "WorkingDir": "/srv",
            "Labels": {"a": "b"},
            "StopSignal": "SIGQUIT",
            "StopTimeout": 3,
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5 * SECOND, "Retries": 2},
            "Shell": ["/bin/bash", "-c"],
        }
    )
    assert (config.hostname, config.domainname, config.user) == ("web", "example.com", "1000:1000")
    assert config.env == ("A=1", "B=2")
    assert config.tty and config.open_stdin and config.stdin_once and config.attach_stdout
    assert config.exposed_ports == ("80/tcp", "53/udp")
    assert config.volumes == ("/data",)
    assert (config.working_dir, config.stop_signal, config.stop_timeout) == ("/srv", "SIGQUIT", 3)
    assert config.labels == {"a": "b"}
    assert config.healthcheck is not None
    assert config.healthcheck.test == ("CMD", "true")
    assert (config.healthcheck.interval, config.healthcheck.retries) == (5 * SECOND, 2)
    assert config.shell == ("/bin/bash", "-c")


def test_empty_healthcheck_is_none() -> None:
    assert create({"Healthcheck": {}})[0].healthcheck is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"Tty": "yes"}, "Tty"),
        ({"Env": [1]}, "Env"),
        ({"Labels": {"a": 1}}, "Labels"),
        ({"StopTimeout": "10"}, "StopTimeout"),
        ({"HostConfig": {"Memory": "1g"}}, "HostConfig.Memory"),
        ({"HostConfig": {"Binds": [3]}}, "HostConfig.Binds"),
        ({"HostConfig": {"RestartPolicy": {"Name": 1}}}, "RestartPolicy.Name"),
        ({"HostConfig": []}, "HostConfig"),
    ],
)
def test_type_errors_name_the_field(body: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        create(body)
    assert where in info.value.message


def test_host_config_fields() -> None:
    _, hc, _ = create(
        {
            "HostConfig": {
                "Binds": ["data:/data:ro"],
                "Tmpfs": {"/run": "size=1m"},
                "NetworkMode": "none",
                "PublishAllPorts": True,
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "AutoRemove": True,
                "ReadonlyRootfs": True,
                "Init": True,
                "Memory": 64 << 20,
                "MemorySwap": -1,
                "NanoCpus": 500_000_000,
                "CpuShares": 512,
                "PidsLimit": 100,
                "BlkioWeight": 300,
                "ShmSize": 1 << 20,
                "Dns": ["1.1.1.1"],
                "DnsSearch": ["example.com"],
                "DnsOptions": ["ndots:2"],
                "ExtraHosts": ["db:10.0.0.5"],
                "GroupAdd": ["audio"],
                "CapAdd": ["NET_ADMIN"],
                "CapDrop": ["MKNOD"],
                "OomScoreAdj": 100,
                "LogConfig": {"Type": "local", "Config": {"max-size": "1m"}},
                "Privileged": True,
                "PidMode": "host",
                "IpcMode": "shareable",
                "UTSMode": "host",
                "UsernsMode": "host",
                "CgroupnsMode": "private",
                "SecurityOpt": ["seccomp=unconfined"],
                "Sysctls": {"net.core.somaxconn": "1024"},
            }
        }
    )
    assert hc.binds == ("data:/data:ro",)
    assert hc.tmpfs == {"/run": "size=1m"}
    assert hc.network_mode == "none"
    assert hc.publish_all_ports and hc.auto_remove and hc.readonly_rootfs and hc.init
    assert hc.restart_policy == RestartPolicy(name="on-failure", maximum_retry_count=3)
    assert (hc.memory, hc.memory_swap, hc.nano_cpus, hc.cpu_shares) == (
        64 << 20,
        -1,
        5 * 10**8,
        512,
    )
    assert (hc.pids_limit, hc.blkio_weight, hc.shm_size) == (100, 300, 1 << 20)
    assert (hc.dns, hc.dns_search, hc.dns_options) == (("1.1.1.1",), ("example.com",), ("ndots:2",))
    assert hc.extra_hosts == ("db:10.0.0.5",)
    assert hc.group_add == ("audio",)
    assert (hc.cap_add, hc.cap_drop) == (("NET_ADMIN",), ("MKNOD",))
    assert hc.oom_score_adj == 100
    assert (hc.log_type, hc.log_options) == ("local", {"max-size": "1m"})
    # Refused settings are kept so admission can name them.
    assert hc.privileged
    assert (hc.pid_mode, hc.ipc_mode, hc.uts_mode, hc.userns_mode) == (
        "host",
        "shareable",
        "host",
        "host",
    )
    assert hc.cgroupns_mode == "private"
    assert hc.security_opt == ("seccomp=unconfined",)
    assert hc.sysctls == {"net.core.somaxconn": "1024"}


def test_restart_policy_defaults_to_no() -> None:
    assert create({"HostConfig": {"RestartPolicy": {"Name": ""}}})[1].restart_policy.name == "no"
    assert create({"HostConfig": {"RestartPolicy": None}})[1].restart_policy == RestartPolicy()


def test_port_bindings_default_to_tcp() -> None:
    _, hc, _ = create(
        {
            "HostConfig": {
                "PortBindings": {
                    "80": [{"HostPort": "8080"}],
                    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                    "443/tcp": None,
                    "22/tcp": [],
                }
            }
        }
    )
    assert hc.port_bindings == {
        "80/tcp": (PortBinding(host_port="8080"),),
        "53/udp": (PortBinding(host_ip="127.0.0.1"),),
        "443/tcp": (),
        "22/tcp": (),
    }


@pytest.mark.parametrize("value", [{"HostPort": "80"}, "80", ["80"], [{"HostPort": 80}]])
def test_malformed_port_bindings(value: Any) -> None:
    with pytest.raises(InvalidArgument):
        create({"HostConfig": {"PortBindings": {"80/tcp": value}}})


def test_mounts() -> None:
    _, hc, _ = create(
        {
            "HostConfig": {
                "Mounts": [
                    {
                        "Type": "tmpfs",
                        "Target": "/run",
                        "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777},
                    },
                    {"Type": "tmpfs", "Target": "/tmp", "ReadOnly": True},
                    {
                        "Type": "volume",
                        "Source": "data",
                        "Target": "/data",
                        "VolumeOptions": {"NoCopy": True},
                    },
                    {"Source": "logs", "Target": "/logs"},
                    {"Type": "bind", "Source": "/etc", "Target": "/host-etc"},
                ]
            }
        }
    )
    assert hc.mounts == (
        MountRequest(type="tmpfs", target="/run", options=("size=1048576", "mode=1777")),
        MountRequest(type="tmpfs", target="/tmp", read_only=True),
        MountRequest(type="volume", target="/data", source="data", volume_nocopy=True),
        MountRequest(type="volume", target="/logs", source="logs"),
        MountRequest(type="bind", target="/host-etc", source="/etc"),
    )


@pytest.mark.parametrize("mounts", [{"Type": "tmpfs"}, "tmpfs", ["tmpfs"]])
def test_malformed_mounts(mounts: Any) -> None:
    with pytest.raises(InvalidArgument):
        create({"HostConfig": {"Mounts": mounts}})


def test_devices_and_device_requests_are_recorded_for_admission() -> None:
    _, hc, _ = create(
        {
            "HostConfig": {
                "Devices": [
                    {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse"},
                    "/dev/kvm",
                ],
                "DeviceRequests": [
                    {"Driver": "nvidia", "Count": -1},
                    {"Driver": "", "Count": -1, "Capabilities": [["gpu"]]},
                ],
                "DeviceCgroupRules": ["c 1:3 rwm"],
                "Cgroup": "container:web",
            }
        }
    )
    assert hc.devices == ("/dev/fuse", "/dev/kvm")
    assert hc.device_requests == ("nvidia", "gpu")
    assert hc.device_cgroup_rules == ("c 1:3 rwm",)
    assert hc.cgroup == "container:web"


@pytest.mark.parametrize(
    "paths", [{"MaskedPaths": [], "ReadonlyPaths": []}, {"MaskedPaths": []}, {"ReadonlyPaths": []}]
)
def test_empty_system_paths_are_systempaths_unconfined(paths: dict[str, Any]) -> None:
    """What the docker CLI sends for --security-opt systempaths=unconfined."""
    _, hc, _ = create({"HostConfig": {"SecurityOpt": ["label=disable"], **paths}})
    assert hc.security_opt == ("label=disable", "systempaths=unconfined")
    _, hc, _ = create({"HostConfig": {"MaskedPaths": None, "ReadonlyPaths": None}})
    assert hc.security_opt == ()


def test_mount_propagation_and_volume_driver_options_are_recorded_for_admission() -> None:
    _, hc, warnings = create(
        {
            "HostConfig": {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "x",
                        "Target": "/d",
                        "BindOptions": {"Propagation": "rshared"},
                        "VolumeOptions": {
                            "DriverConfig": {
                                "Name": "local",
                                "Options": {"type": "none", "o": "bind", "device": "/etc"},
                            }
                        },
                    }
                ]
            }
        }
    )
    (mount,) = hc.mounts
    assert mount.propagation == "rshared"
    assert mount.volume_driver == "local"
    assert mount.volume_options == {"type": "none", "o": "bind", "device": "/etc"}
    assert warnings == []


def test_network_disabled_means_no_network() -> None:
    assert create({"NetworkDisabled": True})[1].network_mode == "none"


def test_endpoints_give_networks_aliases_and_addresses() -> None:
    body = {
        "Image": "busybox",
        "HostConfig": {"NetworkMode": "front"},
        "NetworkingConfig": {
            "EndpointsConfig": {
                "front": {"Aliases": ["web", ""], "IPAMConfig": {"IPv4Address": "10.0.0.5"}},
                "back": None,
            }
        },
    }
    _config, host_config, endpoints, warnings = parse_create(body)
    assert host_config.network_mode == "front"
    assert endpoints == [
        EndpointRequest("front", aliases=("web",), ip="10.0.0.5"),
        EndpointRequest("back"),
    ]
    assert warnings == []
    with pytest.raises(InvalidArgument, match="IPv6"):
        parse_endpoints({"front": {"IPAMConfig": {"IPv6Address": "fd00::5"}}})


@pytest.mark.parametrize(
    ("host_config", "needle"),
    [
        ({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]}, "ulimits"),
        ({"MaskedPaths": ["/proc/kcore"]}, "masked paths"),
        ({"ReadonlyPaths": ["/proc/sys"]}, "read-only paths"),
        ({"MemorySwappiness": 60}, "swappiness"),
        ({"OomKillDisable": True}, "OOM killer"),
        ({"CgroupParent": "/mine"}, "cgroup parents"),
        ({"Links": ["db:db"]}, "links"),
        ({"VolumesFrom": ["other"]}, "volumes-from"),
        ({"VolumeDriver": "nfs"}, "volume driver"),
        ({"Runtime": "runsc"}, "'runsc'"),
        ({"Isolation": "hyperv"}, "'hyperv'"),
        ({"Annotations": {"io.crun.x": "1"}}, "annotations"),
        ({"SomethingNew": {"On": True}}, "HostConfig.SomethingNew"),
        (
            {"Mounts": [{"Target": "/d", "VolumeOptions": {"Labels": {"a": "b"}}}]},
            "volume labels",
        ),
    ],
)
def test_ignored_settings_earn_a_warning(host_config: dict[str, Any], needle: str) -> None:
    warnings = create({"HostConfig": host_config})[2]
    assert len(warnings) == 1
    assert needle in warnings[0]


@pytest.mark.parametrize(
    "host_config",
    [
        {"Ulimits": None},
        {"Ulimits": []},
        {"MaskedPaths": None},
        {"MemorySwappiness": -1},
        {"MemorySwappiness": None},
        {"OomKillDisable": False},
        {"CgroupParent": ""},
        {"Runtime": "runc"},
        {"Runtime": "crun"},
        {"Isolation": "default"},
        {"KernelMemory": 0},
        {"ConsoleSize": [0, 0]},
        {"SomethingNew": None},
        {"Annotations": {}},
    ],
)
def test_default_values_of_ignored_settings_earn_no_warning(host_config: dict[str, Any]) -> None:
    assert create({"HostConfig": host_config})[2] == []


# The HostConfig fields of Docker Engine API 1.44 (the newest Dockyard accepts), from
# /work/shared/specs/docker-engine-api-v1.44.yaml.
API_144_HOST_CONFIG = [
    "Annotations",
    "AutoRemove",
    "Binds",
    "BlkioDeviceReadBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceWriteIOps",
    "BlkioWeight",
    "BlkioWeightDevice",
    "CapAdd",
    "CapDrop",
    "Cgroup",
    "CgroupParent",
    "CgroupnsMode",
    "ConsoleSize",
    "ContainerIDFile",
    "CpuCount",
    "CpuPercent",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
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
    "IOMaximumBandwidth",
    "IOMaximumIOps",
    "Init",
    "IpcMode",
    "Isolation",
    "KernelMemoryTCP",
    "Links",
    "LogConfig",
    "MaskedPaths",
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "Mounts",
    "NanoCpus",
    "NetworkMode",
    "OomKillDisable",
    "OomScoreAdj",
    "PidMode",
    "PidsLimit",
    "PortBindings",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyPaths",
    "ReadonlyRootfs",
    "RestartPolicy",
    "Runtime",
    "SecurityOpt",
    "ShmSize",
    "StorageOpt",
    "Sysctls",
    "Tmpfs",
    "UTSMode",
    "Ulimits",
    "UsernsMode",
    "VolumeDriver",
    "VolumesFrom",
]


def test_every_host_config_field_of_the_api_is_known() -> None:
    """Read (applied or refused by admission) or ignored with a warning: none is dropped
    without a word, and none falls to the generic unknown-field warning."""
    assert set(API_144_HOST_CONFIG) <= container_json.KNOWN_HOST_CONFIG


@pytest.mark.parametrize(
    ("endpoint", "needle"),
    [
        ({"Links": ["a:b"]}, "links"),
        ({"MacAddress": "02:42:ac:11:00:02"}, "MacAddress"),
        ({"DriverOpts": {"a": "b"}}, "driver options"),
    ],
)
def test_ignored_endpoint_settings_earn_a_warning(endpoint: dict[str, Any], needle: str) -> None:
    warnings = create({"NetworkingConfig": {"EndpointsConfig": {"bridge": endpoint}}})[2]
    assert len(warnings) == 1
    assert needle in warnings[0]


def test_the_docker_clis_empty_endpoint_earns_no_warning() -> None:
    empty = {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "MacAddress": "",
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": "",
        "IPAddress": "",
        "DNSNames": None,
    }
    body = {"NetworkingConfig": {"EndpointsConfig": {"default": empty}}}
    assert create(body)[2] == []
    empty["IPAMConfig"] = {"IPv4Address": "", "IPv6Address": ""}
    assert create(body)[2] == []


def test_mac_address_earns_a_warning() -> None:
    assert any("MacAddress" in w for w in create({"MacAddress": "02:42:ac:11:00:02"})[2])


# rendering -------------------------------------------------------------------------------


def container(
    status: Status = Status.RUNNING,
    *,
    started: float = NOW - 300,
    finished: float = 0,
    exit_code: int = 0,
    init: bool = False,
) -> Container:
    return Container(
        id=CID,
        tenant="t",
        name="web",
        created=int((NOW - 3600) * SECOND),
        image="me/app:1",
        image_id="sha256:" + "d" * 64,
        config=ContainerConfig(
            image="me/app:1",
            env=("A=1",),
            entrypoint=("/entry.sh",),
            cmd=("serve", "--port", "80"),
            exposed_ports=("80/tcp", "443/tcp"),
            labels={"role": "web"},
        ),
        host_config=HostConfig(
            port_bindings={"80/tcp": (PortBinding(host_port="8080"),)},
            restart_policy=RestartPolicy(name="always"),
            init=init,
        ),
        host="h1",
        state=ContainerState(
            status=status,
            pid=4242 if status in (Status.RUNNING, Status.PAUSED) else 0,
            exit_code=exit_code,
            started_at=int(started * SECOND),
            finished_at=int(finished * SECOND),
        ),
        endpoints=[ENDPOINT],
        ports={"80/tcp": (PortBinding(host_ip="0.0.0.0", host_port="8080"),)},
        restart_count=1,
        mounts=(MountSpec(type="volume", target="/data", source="data"),),
    )


NETWORK = Network(
    id="n" * 64,
    tenant="t",
    name="default",
    driver="bridge",
    subnet="10.89.0.0/16",
    gateway="10.89.0.1",
    bridge="br-nnnnnnnnnnnn",
    created=1,
    builtin=True,
)
ENDPOINT = Endpoint(network_id="n" * 64, id="e" * 64, ip="10.89.0.7", aliases=("www",))
JOINED = [(NETWORK, ENDPOINT)]
MOUNTS = [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": True}]


def test_inspect_has_the_keys_docker_clients_read() -> None:
    out = inspect_container(container(), networks=JOINED, mounts=MOUNTS)
    json.dumps(out)  # plain JSON values only
    assert out["Id"] == CID
    assert out["Name"] == "/web"
    assert out["Image"] == "sha256:" + "d" * 64
    assert out["Path"] == "/entry.sh"
    assert out["Args"] == ["serve", "--port", "80"]
    assert out["RestartCount"] == 1
    assert out["Mounts"] == MOUNTS
    assert isinstance(out["Created"], str)
    assert out["Created"].endswith("Z")

    state = out["State"]
    assert state["Status"] == "running"
    assert state["Running"] is True
    assert state["Paused"] is False
    assert state["Restarting"] is False
    assert state["OOMKilled"] is False
    assert state["Dead"] is False
    assert state["Pid"] == 4242
    assert state["ExitCode"] == 0
    assert isinstance(state["StartedAt"], str)
    assert state["FinishedAt"] == "0001-01-01T00:00:00Z"

    config = out["Config"]
    assert config["Image"] == "me/app:1"
    assert config["Env"] == ["A=1"]
    assert config["Cmd"] == ["serve", "--port", "80"]
    assert config["Entrypoint"] == ["/entry.sh"]
    assert config["Labels"] == {"role": "web"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert isinstance(config["Tty"], bool)
    assert isinstance(config["OpenStdin"], bool)

    host_config = out["HostConfig"]
    assert host_config["NetworkMode"] == "default"
    assert host_config["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert host_config["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert host_config["AutoRemove"] is False
    assert isinstance(host_config["Memory"], int)
    assert host_config["LogConfig"]["Type"] == "json-file"

    settings = out["NetworkSettings"]
    assert settings["IPAddress"] == "10.89.0.7"
    assert settings["IPPrefixLen"] == 16
    assert settings["Gateway"] == "10.89.0.1"
    assert settings["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "443/tcp": None,
    }
    default = settings["Networks"]["default"]
    assert default["NetworkID"] == "n" * 64
    assert default["EndpointID"] == "e" * 64
    assert default["IPAddress"] == "10.89.0.7"
    assert default["Gateway"] == "10.89.0.1"
    assert default["IPPrefixLen"] == 16
    assert default["Aliases"] == ["www", CID[:12]]
    assert default["DNSNames"] == ["web", "www", CID[:12]]


def test_inspect_of_a_stopped_container_shows_no_address_or_bound_ports() -> None:
    out = inspect_container(
        container(Status.EXITED, finished=NOW - 3, exit_code=2), networks=JOINED, mounts=[]
    )
    state = out["State"]
    assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == (
        "exited",
        False,
        0,
        2,
    )
    assert state["FinishedAt"] != "0001-01-01T00:00:00Z"
    settings = out["NetworkSettings"]
    assert settings["IPAddress"] == ""
    assert all(bindings is None for bindings in settings["Ports"].values())
    assert settings["Networks"]["default"]["IPAddress"] == ""


def test_inspect_paused() -> None:
    state = inspect_container(container(Status.PAUSED), networks=JOINED, mounts=[])["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)


def test_inspect_with_size() -> None:
    out = inspect_container(container(), networks=JOINED, mounts=[], size=(10, 20))
    assert (out["SizeRw"], out["SizeRootFs"]) == (10, 20)
    assert "SizeRw" not in inspect_container(container(), networks=JOINED, mounts=[])


def test_inspect_of_a_container_without_entrypoint() -> None:
    plain = container()
    plain.config.entrypoint = ()
    out = inspect_container(plain, networks=JOINED, mounts=[])
    assert out["Path"] == "serve"
    assert out["Args"] == ["--port", "80"]
    assert out["Config"]["Entrypoint"] is None


def test_summary_has_the_keys_docker_ps_reads() -> None:
    out = container_summary(container(), networks=JOINED, mounts=MOUNTS)
    json.dumps(out)
    assert out["Id"] == CID
    assert out["Names"] == ["/web"]
    assert out["Image"] == "me/app:1"
    assert out["ImageID"] == "sha256:" + "d" * 64
    assert out["Command"] == "/entry.sh serve --port 80"
    assert out["Created"] == int(NOW - 3600)
    assert out["Labels"] == {"role": "web"}
    assert out["State"] == "running"
    assert out["Status"].startswith("Up ")
    assert out["HostConfig"] == {"NetworkMode": "default"}
    assert out["NetworkSettings"]["Networks"]["default"]["IPAddress"] == "10.89.0.7"
    assert out["Mounts"] == MOUNTS
    assert out["Ports"] == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
    ]


def test_summary_of_a_stopped_container_lists_only_exposed_ports() -> None:
    out = container_summary(container(Status.EXITED, finished=NOW - 3), networks=JOINED, mounts=[])
    assert out["State"] == "exited"
    assert out["Status"].startswith("Exited (0) ")
    assert out["Ports"] == [{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}]


@pytest.mark.parametrize(
    ("record", "text"),
    [
        (container(Status.RUNNING, started=NOW - 300), "Up 5 minutes"),
        (container(Status.RUNNING, started=NOW - 0.5), "Up Less than a second"),
        (container(Status.PAUSED, started=NOW - 7200), "Up 2 hours (Paused)"),
        (container(Status.EXITED, finished=NOW - 3), "Exited (0) 3 seconds ago"),
        (
            container(Status.EXITED, finished=NOW - 90, exit_code=137),
            "Exited (137) About a minute ago",
        ),
        (
            container(Status.RESTARTING, finished=NOW - 2, exit_code=1),
            "Restarting (1) 2 seconds ago",
        ),
        (container(Status.CREATED, started=0), "Created"),
        (container(Status.DEAD), "Dead"),
        (container(Status.REMOVING), "Removal In Progress"),
    ],
)
def test_status_text(record: Container, text: str) -> None:
    assert status_text(record, now=NOW) == text
