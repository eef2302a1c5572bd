"""Tenant policy through docker-py and the stock docker CLI: what weakens isolation is
refused with 403 and a message saying what and why, and leaves nothing behind; what
Dockyard accepts without applying comes back in the create response's Warnings.

Both are tables (:data:`REFUSALS`, :data:`WARNINGS`): a new rule is a new row.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.testing.cloud import DockerCli


@dataclass(frozen=True)
class Refusal:
    """One refused request: docker-py's ``create_host_config`` arguments (plus raw
    HostConfig fields docker-py cannot set), the docker CLI's flags for the same (none if
    the CLI cannot say it), and the start of the 403 message."""

    name: str
    host_config: dict[str, Any]
    cli: tuple[str, ...]
    message: str
    raw: dict[str, Any] = field(default_factory=dict)


def _mount(**kwargs: Any) -> docker.types.Mount:
    return docker.types.Mount(**kwargs)


NO_HOST_NAMESPACES = "containers never share the host's namespaces"
NO_DEVICES = "host devices are never passed into containers"
CONFINED = "every container runs confined"
NO_HOST_PATHS = "containers only see their own files and volumes"
NO_PROPAGATION = "mounts never propagate between a container and the host"
NO_HOST_MOUNTS = "a volume is storage Dockyard provides, never a mount the host makes"

REFUSALS: tuple[Refusal, ...] = (
    Refusal(
        "privileged",
        {"privileged": True},
        ("--privileged",),
        "--privileged is not allowed on Dockyard: containers never get host-level privileges",
    ),
    Refusal(
        "network-host",
        {"network_mode": "host"},
        ("--network", "host"),
        "network mode 'host' is not allowed on Dockyard: containers never share the host's",
    ),
    Refusal(
        "pid-host",
        {"pid_mode": "host"},
        ("--pid", "host"),
        f"--pid=host is not allowed on Dockyard: {NO_HOST_NAMESPACES}",
    ),
    Refusal(
        "pid-container",
        {"pid_mode": "container:web"},
        ("--pid", "container:web"),
        "--pid=container:web is not allowed on Dockyard: containers never join another "
        "container's namespaces",
    ),
    Refusal(
        "ipc-host",
        {"ipc_mode": "host"},
        ("--ipc", "host"),
        f"--ipc=host is not allowed on Dockyard: {NO_HOST_NAMESPACES}",
    ),
    Refusal(
        "uts-host",
        {"uts_mode": "host"},
        ("--uts", "host"),
        f"--uts=host is not allowed on Dockyard: {NO_HOST_NAMESPACES}",
    ),
    Refusal(
        "userns-host",
        {"userns_mode": "host"},
        ("--userns", "host"),
        f"--userns=host is not allowed on Dockyard: {NO_HOST_NAMESPACES}",
    ),
    Refusal(
        "cgroupns-host",
        {"cgroupns": "host"},
        ("--cgroupns", "host"),
        f"--cgroupns=host is not allowed on Dockyard: {NO_HOST_NAMESPACES}",
    ),
    Refusal(
        "cgroup-of-another-container",
        {},
        (),
        "HostConfig.Cgroup=container:web is not allowed on Dockyard",
        raw={"Cgroup": "container:web"},
    ),
    Refusal(
        "bind-host-path",
        {"binds": ["/etc:/host-etc:ro"]},
        ("-v", "/etc:/host-etc:ro"),
        f"bind mount of host path '/etc' is not allowed on Dockyard: {NO_HOST_PATHS}",
    ),
    Refusal(
        "bind-host-root",
        {"binds": ["/:/host"]},
        ("-v", "/:/host"),
        "bind mount of host path '/' is not allowed on Dockyard",
    ),
    Refusal(
        "mount-type-bind",
        {"mounts": [_mount(target="/host-etc", source="/etc", type="bind")]},
        ("--mount", "type=bind,src=/etc,dst=/host-etc"),
        "bind mount of host path '/etc' is not allowed on Dockyard",
    ),
    Refusal(
        "mount-bind-rshared",
        {"mounts": [_mount(target="/x", source="/", type="bind", propagation="rshared")]},
        ("--mount", "type=bind,src=/,dst=/x,bind-propagation=rshared"),
        "bind mount of host path '/' is not allowed on Dockyard",
    ),
    Refusal(
        "volume-rshared",
        {"binds": ["policy-vol:/data:rshared"]},
        ("-v", "policy-vol:/data:rshared"),
        f"mount propagation 'rshared' is not allowed on Dockyard: {NO_PROPAGATION}",
    ),
    Refusal(
        "volume-shared",
        {"binds": ["policy-vol:/data:shared"]},
        ("-v", "policy-vol:/data:shared"),
        f"mount propagation 'shared' is not allowed on Dockyard: {NO_PROPAGATION}",
    ),
    Refusal(
        "mount-volume-propagation",
        {},
        (),  # docker-py and the CLI refuse bind options on a volume mount themselves
        "mount propagation 'rshared' is not allowed on Dockyard",
        raw={
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "policy-vol",
                    "Target": "/d",
                    "BindOptions": {"Propagation": "rshared"},
                }
            ]
        },
    ),
    Refusal(
        "mount-volume-opt-bind",
        {
            "mounts": [
                _mount(
                    target="/d",
                    source="policy-vol",
                    driver_config=docker.types.DriverConfig(
                        "local", {"type": "none", "o": "bind", "device": "/etc"}
                    ),
                )
            ]
        },
        (
            "--mount",
            "type=volume,src=policy-vol,dst=/d,volume-opt=type=none,volume-opt=o=bind,"
            "volume-opt=device=/etc",
        ),
        f"volume option type=none is not allowed on Dockyard: {NO_HOST_MOUNTS}",
    ),
    Refusal(
        "device",
        {"devices": ["/dev/sda:/dev/sda"]},
        ("--device", "/dev/null:/dev/xnull"),
        f"--device is not allowed on Dockyard: {NO_DEVICES}",
    ),
    Refusal(
        "gpus",
        {"device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]},
        ("--gpus", "all"),
        f"--gpus is not allowed on Dockyard: {NO_DEVICES}",
    ),
    Refusal(
        "device-cgroup-rule",
        {"device_cgroup_rules": ["c *:* rwm"]},
        ("--device-cgroup-rule", "c *:* rwm"),
        f"--device-cgroup-rule is not allowed on Dockyard: {NO_DEVICES}",
    ),
    Refusal(
        "cap-add-sys-admin",
        {"cap_add": ["SYS_ADMIN"]},
        ("--cap-add", "SYS_ADMIN"),
        "capability CAP_SYS_ADMIN is not allowed on Dockyard: containers never get "
        "host-level privileges",
    ),
    Refusal(
        "cap-add-beyond-the-allowlist",
        {"cap_add": ["NET_BROADCAST"]},
        ("--cap-add", "NET_BROADCAST"),
        "capability CAP_NET_BROADCAST is not allowed on Dockyard: beyond Docker's defaults "
        "only CAP_NET_ADMIN can be added",
    ),
    Refusal(
        "cap-add-all",
        {"cap_add": ["ALL"]},
        ("--cap-add", "ALL"),
        "capability CAP_DAC_READ_SEARCH (requested through ALL) is not allowed on Dockyard",
    ),
    Refusal(
        "cap-add-bpf",
        {"cap_add": ["BPF"]},
        ("--cap-add", "BPF"),
        "capability CAP_BPF is not allowed on Dockyard",
    ),
    Refusal(
        "seccomp-unconfined",
        {"security_opt": ["seccomp=unconfined"]},
        ("--security-opt", "seccomp=unconfined"),
        f"--security-opt seccomp=unconfined is not allowed on Dockyard: {CONFINED}",
    ),
    Refusal(
        "apparmor-unconfined",
        {"security_opt": ["apparmor=unconfined"]},
        ("--security-opt", "apparmor=unconfined"),
        f"--security-opt apparmor=unconfined is not allowed on Dockyard: {CONFINED}",
    ),
    Refusal(
        "label-disable",
        {"security_opt": ["label=disable"]},
        ("--security-opt", "label=disable"),
        f"--security-opt label=disable is not allowed on Dockyard: {CONFINED}",
    ),
    Refusal(
        "systempaths-unconfined",
        {"security_opt": ["systempaths=unconfined"]},
        ("--security-opt", "systempaths=unconfined"),
        "--security-opt systempaths=unconfined is not allowed on Dockyard: /proc and /sys "
        "stay masked",
    ),
    Refusal(
        "no-new-privileges-false",
        {"security_opt": ["no-new-privileges=false"]},
        ("--security-opt", "no-new-privileges=false"),
        "--security-opt no-new-privileges=false is not allowed on Dockyard",
    ),
    Refusal(
        "writable-cgroups",
        {"security_opt": ["writable-cgroups=true"]},
        ("--security-opt", "writable-cgroups=true"),
        "--security-opt writable-cgroups=true is not allowed on Dockyard: cgroups stay "
        "read-only in containers",
    ),
    Refusal(
        "sysctl",
        {"sysctls": {"net.ipv4.ip_forward": "1"}},
        ("--sysctl", "net.ipv4.ip_forward=1"),
        "--sysctl is not allowed on Dockyard",
    ),
)
"""Every create request policy refuses."""


def tenant_state(api: docker.APIClient) -> tuple[set[str], set[str]]:
    """The tenant's container ids and volume names."""
    containers = {c["Id"] for c in api.containers(all=True)}
    volumes = {v["Name"] for v in api.volumes()["Volumes"] or []}
    return containers, volumes


@pytest.fixture
def unchanged(api: docker.APIClient) -> Iterator[None]:
    """A refused request leaves no container and no volume behind."""
    before = tenant_state(api)
    yield
    assert tenant_state(api) == before


@pytest.mark.parametrize("rule", REFUSALS, ids=lambda r: r.name)
def test_refused_through_docker_py(api: docker.APIClient, unchanged: None, rule: Refusal) -> None:
    host_config = {**api.create_host_config(**rule.host_config), **rule.raw}
    with pytest.raises(docker.errors.APIError) as refused:
        api.create_container("busybox", ["true"], host_config=host_config)
    assert refused.value.status_code == 403, refused.value.explanation
    assert str(refused.value.explanation).startswith(rule.message)


@pytest.mark.parametrize("rule", [r for r in REFUSALS if r.cli], ids=lambda r: r.name)
def test_refused_through_the_docker_cli(cli: DockerCli, unchanged: None, rule: Refusal) -> None:
    for command in ("create", "run"):
        result = cli.run(command, *rule.cli, "busybox", "true", check=False)
        assert result.returncode != 0
        assert f"Error response from daemon: {rule.message}" in result.stderr, result.stderr


def test_the_cli_refuses_a_privileged_exec(
    api: docker.APIClient, cli: DockerCli, cleanup: list[str]
) -> None:
    box = api.create_container("busybox", ["sleep", "60"])["Id"]
    cleanup.append(box)
    api.start(box)
    message = (
        "--privileged is not allowed on Dockyard: exec processes never get host-level privileges"
    )
    with pytest.raises(docker.errors.APIError) as refused:
        api.exec_create(box, ["true"], privileged=True)
    assert refused.value.status_code == 403 and refused.value.explanation == message
    result = cli.run("exec", "--privileged", box, "true", check=False)
    assert result.returncode != 0 and message in result.stderr


VOLUME_OPTIONS: tuple[tuple[dict[str, str], str], ...] = (
    ({"type": "none", "o": "bind", "device": "/etc"}, "volume option type=none"),
    ({"o": "bind", "device": "/root"}, "volume option o=bind"),
    ({"device": "/dev/sda"}, "volume option device=/dev/sda"),
    ({"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"}, "volume option type=nfs"),
    ({"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}, "volume option type=tmpfs"),
)


@pytest.mark.parametrize(("options", "what"), VOLUME_OPTIONS, ids=[w for _, w in VOLUME_OPTIONS])
def test_volume_options_that_mount_host_things_are_refused(
    api: docker.APIClient, cli: DockerCli, unchanged: None, options: dict[str, str], what: str
) -> None:
    message = f"{what} is not allowed on Dockyard: {NO_HOST_MOUNTS}"
    with pytest.raises(docker.errors.APIError) as refused:
        api.create_volume("policy-host-mount", driver="local", driver_opts=options)
    assert refused.value.status_code == 403
    assert str(refused.value.explanation).startswith(message)
    flags = [item for key, value in options.items() for item in ("-o", f"{key}={value}")]
    result = cli.run("volume", "create", *flags, "policy-host-mount", check=False)
    assert result.returncode != 0 and message in result.stderr


# Accepted without effect: Warnings --------------------------------------------------------


@dataclass(frozen=True)
class Ignored:
    """A setting accepted without effect: docker-py arguments (and raw HostConfig / a
    networking config), CLI flags, and a fragment of the warning."""

    name: str
    host_config: dict[str, Any]
    cli: tuple[str, ...]
    warning: str
    networking: dict[str, Any] = field(default_factory=dict)


WARNINGS: tuple[Ignored, ...] = (
    Ignored("cgroup-parent", {"cgroup_parent": "mine"}, ("--cgroup-parent", "mine"), "cgroup"),
    Ignored("oom-kill-disable", {"oom_kill_disable": True}, ("--oom-kill-disable",), "OOM"),
    Ignored(
        "ulimit",
        {"ulimits": [docker.types.Ulimit(name="nofile", soft=1024, hard=2048)]},
        ("--ulimit", "nofile=1024:2048"),
        "ulimits",
    ),
    Ignored("pids-unlimited", {"pids_limit": -1}, ("--pids-limit", "-1"), "PidsLimit -1"),
    Ignored(
        "apparmor-profile",
        {"security_opt": ["apparmor=docker-default"]},
        ("--security-opt", "apparmor=docker-default"),
        "AppArmor profile",
    ),
    Ignored(
        "selinux-label",
        {"security_opt": ["label=level:s0:c100,c200"]},
        ("--security-opt", "label=level:s0:c100,c200"),
        "SELinux label",
    ),
    Ignored(
        "seccomp-profile",
        {"security_opt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']},
        (),  # the CLI reads a file: test_a_seccomp_profile_file_earns_a_warning
        "custom seccomp profiles are not applied",
    ),
    Ignored("volumes-from", {"volumes_from": ["other"]}, ("--volumes-from", "other"), "volumes"),
    Ignored("links", {"links": {"other": "alias"}}, ("--link", "other:alias"), "links"),
    Ignored(
        "memory-swappiness", {"mem_swappiness": 10}, ("--memory-swappiness", "10"), "swappiness"
    ),
    Ignored("storage-opt", {"storage_opt": {"size": "1G"}}, ("--storage-opt", "size=1G"), "stor"),
    Ignored("runtime", {"runtime": "runsc"}, ("--runtime", "runsc"), "runtime 'runsc'"),
    Ignored(
        "device-read-bps",
        {"device_read_bps": [{"Path": "/dev/sda", "Rate": 1024}]},
        ("--device-read-bps", "/dev/sda:1mb"),
        "block I/O",
    ),
    Ignored(
        "endpoint-links",
        {},
        (),
        "legacy links",
        networking={"EndpointsConfig": {"default": {"Links": ["other:alias"]}}},
    ),
)
"""Every setting accepted with a warning."""


@pytest.mark.parametrize("setting", WARNINGS, ids=lambda s: s.name)
def test_ignored_settings_come_back_as_warnings(
    api: docker.APIClient, cleanup: list[str], setting: Ignored
) -> None:
    created = api.create_container(
        "busybox",
        ["true"],
        host_config=api.create_host_config(**setting.host_config),
        networking_config=setting.networking or None,
    )
    cleanup.append(created["Id"])
    warnings = created["Warnings"] or []
    assert any(setting.warning in w for w in warnings), warnings


@pytest.mark.parametrize("setting", [s for s in WARNINGS if s.cli], ids=lambda s: s.name)
def test_the_cli_shows_the_warnings(cli: DockerCli, cleanup: list[str], setting: Ignored) -> None:
    result = cli.run("create", *setting.cli, "busybox", "true")
    cleanup.append(result.stdout.strip())
    assert "WARNING" in result.stderr and setting.warning in result.stderr, result.stderr


def test_a_seccomp_profile_file_earns_a_warning(
    cli: DockerCli, cleanup: list[str], tmp_path: Path
) -> None:
    """The CLI sends the file's content; allowing everything is not what the container gets."""
    profile = tmp_path / "allow-all.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    result = cli.run("run", "-d", "--security-opt", f"seccomp={profile}", "busybox", "sleep", "30")
    cid = result.stdout.strip()
    cleanup.append(cid)
    assert "custom seccomp profiles are not applied" in result.stderr
    status = cli.run("exec", cid, "grep", "Seccomp:", "/proc/self/status").stdout.split()
    assert status == ["Seccomp:", "2"], "the platform's filter is still on"


def test_settings_that_are_applied_earn_no_warning(
    api: docker.APIClient, cleanup: list[str]
) -> None:
    """The warnings above are not noise: a plain create, and one with the allowed
    capability, a named volume and tmpfs, has none."""
    created = api.create_container(
        "busybox",
        ["true"],
        host_config=api.create_host_config(
            cap_add=["NET_ADMIN"],
            cap_drop=["MKNOD"],
            binds=["policy-fine:/data:ro"],
            tmpfs={"/run": "size=1m"},
            security_opt=["no-new-privileges", "seccomp=builtin"],
            pids_limit=100,
        ),
    )
    cleanup.append(created["Id"])
    assert not created["Warnings"]
    with contextlib.suppress(docker.errors.APIError):
        api.remove_container(created["Id"])
        cleanup.remove(created["Id"])
    api.remove_volume("policy-fine")
