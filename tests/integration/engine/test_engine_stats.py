"""``docker stats``: Docker's stats JSON read from the container's cgroup and netns.

The containers under test run a shell server (busybox ``nc -ll -e sh``) on a port published
on 127.0.0.1, so a test makes the container allocate memory, start processes or send bytes
exactly when it wants, and compares samples taken before and after. Nothing here depends on
timing: waits have generous deadlines and only guard against hangs.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.core.identity import TOKEN_HEADER
from dockyard.testing.cloud import DockerCli, TestCloud

ZERO_TIME = "0001-01-01T00:00:00Z"
MIB = 1024 * 1024
SHELL_PORT = 7000
CGROUP_V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()


class Shell:
    """A shell inside a container, reached through its published port."""

    def __init__(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            self.sock = socket.socket()
            try:
                self.sock.settimeout(60)
                self.sock.connect(("127.0.0.1", port))
                self.run("true")  # nc is listening and sh answers
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return

    def run(self, command: str) -> bytes:
        """Run ``command`` and return its output once it has finished."""
        marker = f"end-{secrets.token_hex(4)}".encode()
        self.sock.sendall(command.encode() + b"; echo " + marker + b"\n")
        out = b""
        while marker not in out:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError(f"the shell closed the connection; output so far: {out[-200:]!r}")
            out += chunk
        return out[: out.index(marker)]

    def close(self) -> None:
        self.sock.close()


def _shell_container(
    client: docker.DockerClient, cleanup: list[str], **options: Any
) -> tuple[Any, Shell]:
    name = f"stats-{uuid.uuid4().hex[:8]}"
    container = client.containers.run(
        "busybox",
        ["nc", "-ll", "-p", str(SHELL_PORT), "-e", "sh"],
        name=name,
        detach=True,
        ports={f"{SHELL_PORT}/tcp": ("127.0.0.1", None)},
        **options,
    )
    cleanup.append(container.id)
    container.reload()
    port = int(container.attrs["NetworkSettings"]["Ports"][f"{SHELL_PORT}/tcp"][0]["HostPort"])
    return container, Shell(port)


@pytest.fixture
def target(client: docker.DockerClient, cleanup: list[str]) -> Iterator[tuple[Any, Shell]]:
    container, shell = _shell_container(
        client, cleanup, mem_limit="256m", tmpfs={"/fill": "size=128m"}
    )
    yield container, shell
    shell.close()


def _one_shot(api: docker.APIClient, cid: str) -> dict[str, Any]:
    result: dict[str, Any] = api.stats(cid, stream=False, one_shot=True)
    return result


def test_no_stream_sample_has_docker_shape(
    api: docker.APIClient, target: tuple[Any, Shell]
) -> None:
    container, shell = target
    shell.run("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")  # some CPU time
    stats = api.stats(container.id, stream=False)
    assert stats["id"] == container.id
    assert stats["name"] == f"/{container.name}"
    # Two samples a second apart: precpu is the first, so a client can compute CPU%.
    assert stats["read"] > stats["preread"] != ZERO_TIME
    cpu, precpu = stats["cpu_stats"], stats["precpu_stats"]
    memory = stats["memory_stats"]
    assert cpu["cpu_usage"]["total_usage"] >= precpu["cpu_usage"]["total_usage"] > 0
    assert cpu["system_cpu_usage"] > precpu["system_cpu_usage"] > 0
    assert cpu["online_cpus"] == os.sysconf("SC_NPROCESSORS_ONLN")
    if not CGROUP_V2:  # v2 keeps no per-CPU account, no peak before Linux 5.19
        assert len(cpu["cpu_usage"]["percpu_usage"]) >= cpu["online_cpus"]
        assert memory["usage"] <= memory["max_usage"] <= 256 * MIB
    usage = cpu["cpu_usage"]
    assert usage["usage_in_usermode"] + usage["usage_in_kernelmode"] > 0
    assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    assert memory["limit"] == 256 * MIB
    assert 0 < memory["usage"] <= 256 * MIB
    assert "inactive_file" in memory["stats"]
    # nc, and the sh that serves this test's connection.
    assert stats["pids_stats"]["current"] >= 2
    assert stats["pids_stats"]["limit"] > 0
    assert isinstance(stats["blkio_stats"]["io_service_bytes_recursive"], list)
    assert stats["num_procs"] == 0 and stats["storage_stats"] == {}
    eth0 = stats["networks"]["eth0"]
    assert set(eth0) == {
        "rx_bytes",
        "rx_packets",
        "rx_errors",
        "rx_dropped",
        "tx_bytes",
        "tx_packets",
        "tx_errors",
        "tx_dropped",
    }
    assert eth0["rx_bytes"] > 0 and eth0["tx_bytes"] > 0
    assert "lo" not in stats["networks"]


def test_one_shot_answers_one_sample_without_precpu(
    api: docker.APIClient, target: tuple[Any, Shell]
) -> None:
    container, _ = target
    stats = _one_shot(api, container.id)
    assert stats["read"] != ZERO_TIME and stats["preread"] == ZERO_TIME
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in stats["precpu_stats"]


def test_stream_yields_successive_samples(api: docker.APIClient, target: tuple[Any, Shell]) -> None:
    container, shell = target
    samples = []
    stream = api.stats(container.id, stream=True, decode=True)
    try:
        for sample in stream:
            samples.append(sample)
            shell.run("i=0; while [ $i -lt 5000 ]; do i=$((i+1)); done")
            if len(samples) == 3:
                break
    finally:
        stream.close()
    assert samples[0]["preread"] == ZERO_TIME
    assert samples[0]["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    for before, after in itertools.pairwise(samples):
        assert after["read"] > before["read"]
        assert after["preread"] == before["read"]
        assert after["precpu_stats"] == before["cpu_stats"]
        assert (
            after["cpu_stats"]["cpu_usage"]["total_usage"]
            >= before["cpu_stats"]["cpu_usage"]["total_usage"]
        )


def test_counters_follow_what_the_container_does(
    api: docker.APIClient, target: tuple[Any, Shell]
) -> None:
    container, shell = target
    before = _one_shot(api, container.id)

    shell.run("dd if=/dev/zero of=/fill/blob bs=1M count=64 2>/dev/null")
    shell.run("for n in 1 2 3; do sleep 3600 >/dev/null 2>&1 & done")
    received = shell.run("dd if=/dev/zero bs=1024 count=512 2>/dev/null")
    assert len(received) == 512 * 1024
    after = _one_shot(api, container.id)

    # tmpfs pages are charged to the container's memory cgroup.
    assert after["memory_stats"]["usage"] >= before["memory_stats"]["usage"] + 60 * MIB
    assert after["pids_stats"]["current"] >= before["pids_stats"]["current"] + 3
    net_before, net_after = before["networks"]["eth0"], after["networks"]["eth0"]
    assert net_after["tx_bytes"] >= net_before["tx_bytes"] + 512 * 1024
    assert net_after["tx_packets"] > net_before["tx_packets"]
    assert net_after["rx_bytes"] > net_before["rx_bytes"]
    assert net_after["rx_packets"] > net_before["rx_packets"]

    shell.run("rm /fill/blob; kill $(jobs -p); wait")
    freed = _one_shot(api, container.id)
    assert freed["memory_stats"]["usage"] <= after["memory_stats"]["usage"] - 60 * MIB
    assert freed["pids_stats"]["current"] <= after["pids_stats"]["current"] - 3


def test_paused_container_has_stats(api: docker.APIClient, target: tuple[Any, Shell]) -> None:
    container, _ = target
    api.pause(container.id)
    try:
        first, second = _one_shot(api, container.id), _one_shot(api, container.id)
    finally:
        api.unpause(container.id)
    assert first["read"] != ZERO_TIME and first["pids_stats"]["current"] >= 2
    # Frozen: no CPU time passes in the container.
    assert (
        second["cpu_stats"]["cpu_usage"]["total_usage"]
        == first["cpu_stats"]["cpu_usage"]["total_usage"]
    )


def test_network_none_has_no_networks(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run("busybox", ["sleep", "600"], network_mode="none", detach=True)
    cleanup.append(container.id)
    stats = _one_shot(client.api, container.id)
    assert stats["read"] != ZERO_TIME
    assert "networks" not in stats
    assert stats["pids_stats"]["current"] == 1


def test_container_that_is_not_running(client: docker.DockerClient, cleanup: list[str]) -> None:
    created = client.containers.create("busybox", ["true"])
    cleanup.append(created.id)
    for stats in (
        client.api.stats(created.id, stream=False),
        client.api.stats(created.id, stream=False, one_shot=True),
    ):
        assert stats["id"] == created.id and stats["name"] == f"/{created.name}"
        assert stats["read"] == stats["preread"] == ZERO_TIME
        assert stats["memory_stats"] == {} and stats["pids_stats"] == {}
        assert stats["cpu_stats"]["cpu_usage"]["total_usage"] == 0
        assert "networks" not in stats
    created.start()
    assert created.wait(timeout=60)["StatusCode"] == 0
    # A stream of an exited container goes on with zero samples, as Docker's does.
    stream = client.api.stats(created.id, stream=True, decode=True)
    try:
        first, second = next(stream), next(stream)
    finally:
        stream.close()
    for sample in (first, second):
        assert sample["read"] == ZERO_TIME and sample["id"] == created.id


def test_stream_ends_when_the_container_is_removed(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run("busybox", ["sleep", "600"], detach=True)
    cleanup.append(container.id)
    stream = client.api.stats(container.id, stream=True, decode=True)
    first = next(stream)
    assert first["read"] != ZERO_TIME
    container.remove(force=True)
    rest = list(stream)  # ends (docker-py's timeout would fail the test on a hang)
    assert all(sample["id"] == container.id for sample in rest)


def test_unknown_container_is_404(api: docker.APIClient) -> None:
    for stream in (False, True):
        with pytest.raises(docker.errors.NotFound, match="No such container"):
            result = api.stats("no-such-container-" + secrets.token_hex(4), stream=stream)
            if stream:
                next(result)


def _new_log(cloud: TestCloud, name: str, offset: int) -> str:
    return cloud.log(name)[offset:]


def test_a_client_killed_mid_stream_leaves_everything_healthy(
    cloud: TestCloud, cli: DockerCli, api: docker.APIClient, target: tuple[Any, Shell]
) -> None:
    container, shell = target
    logs = {name: len(cloud.log(name)) for name in ("controller", "agent")}
    # A raw client that reads one document and vanishes.
    path = cloud.layout.docker_socket
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(
            f"GET /v1.41/containers/{container.id}/stats HTTP/1.1\r\nHost: docker\r\n"
            f"{TOKEN_HEADER}: {cloud.token}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head or b"}\n" not in head:
            chunk = sock.recv(65536)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 200")
    # The docker CLI, streaming, killed with SIGKILL.
    process = subprocess.Popen(
        [cli.binary, "stats", "--format", "{{.Name}} {{.MemUsage}}", container.name],
        env=cloud.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the CLI got at least one sample
        assert container.name.encode() in line
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    time.sleep(2 * 1.0)  # two stream intervals: the server notices the clients are gone
    assert api.ping()
    container.reload()
    assert container.status == "running"
    assert shell.run("echo alive") == b"alive\n"
    stats = api.stats(container.id, stream=False)
    assert stats["read"] != ZERO_TIME
    for name, offset in logs.items():
        tail = _new_log(cloud, name, offset)
        assert "Traceback" not in tail and "unhandled" not in tail, tail


def test_cli_no_stream(cli: DockerCli, target: tuple[Any, Shell]) -> None:
    container, _ = target
    out = cli.run("stats", "--no-stream", "--format", "{{json .}}", container.name).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["Name"] == container.name
    assert container.id.startswith(row["ID"])
    assert row["CPUPerc"].endswith("%")
    used, _, limit = row["MemUsage"].partition(" / ")
    assert limit == "256MiB" and used.endswith("B")
    assert float(row["MemPerc"].rstrip("%")) > 0
    assert int(row["PIDs"]) >= 2
    rx, _, tx = row["NetIO"].partition(" / ")
    assert rx.endswith("B") and tx.endswith("B") and rx != "0B"
    assert " / " in row["BlockIO"]
    # Without names: every running container, this one included.
    listing = cli.run("stats", "--no-stream", "--format", "{{.Name}}").stdout.split()
    assert container.name in listing
    # A stopped container is shown with zeros.
    stopped = cli.run("create", "busybox", "true").stdout.strip()
    try:
        zero = cli.run("stats", "--no-stream", "--format", "{{json .}}", stopped).stdout
        row = json.loads(zero)
        assert row["CPUPerc"] == "0.00%" and row["PIDs"] == "0"
    finally:
        cli.run("rm", "-f", stopped, check=False)
