"""The stock docker CLI against Dockyard: what users type, with the exit codes they expect."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from dockyard.testing.cloud import DockerCli


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def names(cli: DockerCli) -> list[str]:
    made: list[str] = []
    yield made  # type: ignore[misc]
    if made:
        cli.run("rm", "-f", "-v", *made, check=False)


def test_run_output_and_exit_codes(cli: DockerCli) -> None:
    result = cli.run("run", "--rm", "busybox", "echo", "hello")
    assert result.stdout == "hello\n"
    result = cli.run("run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert result.returncode == 3 and "oops" in result.stderr
    result = cli.run("run", "--rm", "busybox", "no-such-binary", check=False)
    assert result.returncode == 127
    assert "executable file not found" in result.stderr
    result = cli.run("run", "--rm", "no-such-image:1", "true", check=False)
    assert result.returncode == 125


def test_run_options(cli: DockerCli, names: list[str]) -> None:
    n = name("opts")
    names.append(n)
    script = "id -u; pwd; hostname; echo $A; cat /proc/1/cmdline | tr '\\0' ' '"
    result = cli.run(
        "run",
        "--name",
        n,
        "-e",
        "A=b",
        "-w",
        "/work",
        "-u",
        "nobody",
        "--hostname",
        "h1",
        "--init",
        "-l",
        "k=v",
        "busybox",
        "sh",
        "-c",
        script,
    )
    lines = result.stdout.splitlines()
    assert lines[:4] == ["65534", "/work", "h1", "b"]
    assert lines[4].startswith("/sbin/docker-init -- sh -c")
    fmt = '{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Labels "k"}} {{.State.Status}}'
    assert cli.run("inspect", "-f", fmt, n).stdout.strip() == "nobody /work v exited"


def test_detached_lifecycle(cli: DockerCli, names: list[str]) -> None:
    n = name("life")
    names.append(n)
    cid = cli.run("run", "-d", "--name", n, "busybox", "sleep", "300").stdout.strip()
    assert len(cid) == 64
    assert n in cli.run("ps", "--format", "{{.Names}}").stdout.split()
    cli.run("pause", n)
    assert cli.run("inspect", "-f", "{{.State.Status}}", n).stdout.strip() == "paused"
    assert "(Paused)" in cli.run("ps", "--filter", f"name={n}", "--format", "{{.Status}}").stdout
    cli.run("unpause", n)
    cli.run("stop", "-t", "1", n)
    assert cli.run("inspect", "-f", "{{.State.Status}}", n).stdout.strip() == "exited"
    assert n not in cli.run("ps", "--format", "{{.Names}}").stdout.split()
    assert n in cli.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
    cli.run("start", n)
    cli.run("restart", "-t", "1", n)
    cli.run("kill", n)
    assert cli.run("wait", n).stdout.strip() == "137"
    renamed = name("renamed")
    cli.run("rename", n, renamed)
    names.append(renamed)
    cli.run("rm", renamed)
    assert cli.run("inspect", renamed, check=False).returncode == 1


def test_start_attach_and_logs(cli: DockerCli, names: list[str]) -> None:
    n = name("attach")
    names.append(n)
    cli.run("create", "--name", n, "busybox", "sh", "-c", "echo one; echo two >&2; exit 2")
    result = cli.run("start", "-a", n, check=False)
    assert result.returncode == 2
    assert result.stdout == "one\n" and result.stderr == "two\n"
    logs = cli.run("logs", n)
    assert logs.stdout == "one\n" and logs.stderr == "two\n"
    assert cli.run("logs", "--tail", "1", n).stderr == "two\n"
    stamped = cli.run("logs", "-t", n).stdout
    assert stamped.endswith(" one\n") and stamped[:4].isdigit()


def test_logs_follow(cli: DockerCli, names: list[str]) -> None:
    n = name("follow")
    names.append(n)
    cli.run(
        "run",
        "-d",
        "--name",
        n,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.3; done",
    )
    assert cli.run("logs", "-f", n, timeout=20).stdout == "1\n2\n3\n"


def test_ps_filters_and_format(cli: DockerCli, names: list[str]) -> None:
    a, b = name("psa"), name("psb")
    names.extend([a, b])
    cli.run("run", "-d", "--name", a, "-l", "group=ps", "busybox", "sleep", "300")
    cli.run("run", "--name", b, "-l", "group=ps", "busybox", "true")
    listed = cli.run("ps", "-a", "--filter", "label=group=ps", "--format", "{{.Names}}")
    assert sorted(listed.stdout.split()) == sorted([a, b])
    exited = cli.run(
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--filter",
        "label=group=ps",
        "--format",
        "{{.Names}} {{.Status}}",
    )
    assert exited.stdout.startswith(f"{b} Exited (0)")
    quiet = cli.run("ps", "-q", "--filter", f"name={a}").stdout.split()
    assert len(quiet) == 1 and len(quiet[0]) == 12
    sized = cli.run("ps", "-a", "-s", "--filter", f"name={b}", "--format", "{{.Size}}")
    assert "virtual" in sized.stdout


def test_top_port_update_and_inspect(cli: DockerCli, names: list[str]) -> None:
    n = name("web")
    names.append(n)
    cli.run(
        "run",
        "-d",
        "--name",
        n,
        "-p",
        "127.0.0.1::80",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    )
    top = cli.run("top", n).stdout
    assert "httpd -f -p 80" in top
    port = cli.run("port", n, "80/tcp").stdout.strip()
    assert port.startswith("127.0.0.1:")
    cli.run("update", "-m", "128m", "--memory-swap", "128m", n)
    data = json.loads(cli.run("inspect", n).stdout)[0]
    assert data["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert data["HostConfig"]["NanoCpus"] == 500_000_000
    assert data["HostConfig"]["PidsLimit"] == 50


def test_restart_policy_and_rm_f(cli: DockerCli, names: list[str]) -> None:
    n = name("always")
    names.append(n)
    cli.run("run", "-d", "--name", n, "--restart", "always", "busybox", "sh", "-c", "sleep 0.3")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        count = cli.run("inspect", "-f", "{{.RestartCount}}", n).stdout.strip()
        if int(count) >= 1:
            break
        time.sleep(0.2)
    assert int(count) >= 1
    assert (
        cli.run("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", n).stdout.strip() == "always"
    )
    cli.run("rm", "-f", n)
    names.remove(n)


def test_volumes(cli: DockerCli, names: list[str]) -> None:
    vol = name("vol")
    cli.run("volume", "create", vol)
    try:
        n = name("writer")
        names.append(n)
        cli.run(
            "run",
            "--name",
            n,
            "-v",
            f"{vol}:/data",
            "busybox",
            "sh",
            "-c",
            "echo persisted > /data/f",
        )
        out = cli.run("run", "--rm", "-v", f"{vol}:/data:ro", "busybox", "cat", "/data/f")
        assert out.stdout == "persisted\n"
        assert vol in cli.run("volume", "ls", "-q").stdout.split()
        info = json.loads(cli.run("volume", "inspect", vol).stdout)[0]
        assert info["Name"] == vol and info["Driver"] == "local"
        assert cli.run("volume", "rm", vol, check=False).returncode != 0  # in use
        cli.run("rm", n)
        names.remove(n)
    finally:
        cli.run("volume", "rm", "-f", vol, check=False)
    assert vol not in cli.run("volume", "ls", "-q").stdout.split()


def test_system_commands(cli: DockerCli) -> None:
    info = json.loads(cli.run("info", "--format", "{{json .}}").stdout)
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["CgroupDriver"] == "cgroupfs" and info["DefaultRuntime"] == "crun"
    assert any("seccomp" in s for s in info["SecurityOptions"])
    version = cli.run("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    assert version == "1.41"
    df = cli.run("system", "df").stdout
    assert "Images" in df and "Containers" in df and "Local Volumes" in df


def test_container_prune(cli: DockerCli) -> None:
    n = name("prunable")
    cli.run("run", "--name", n, "-l", "prune=cli", "busybox", "true")
    out = cli.run("container", "prune", "-f", "--filter", "label=prune=cli").stdout
    assert "Deleted Containers" in out
    assert cli.run("inspect", n, check=False).returncode == 1


def test_network_none(cli: DockerCli) -> None:
    out = cli.run("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
