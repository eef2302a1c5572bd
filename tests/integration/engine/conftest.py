"""Fixtures for the engine tests: a real Dockyard instance (controller + agent processes,
crun, conmon, the kernel) reached through docker-py and the docker CLI."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import docker
import pytest

from dockyard.testing.cloud import DockerCli, TestCloud


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    """The shared cloud most engine tests use."""
    instance = TestCloud.launch(tmp_path_factory.mktemp("cloud"))
    yield instance
    instance.purge(keep_logs=tmp_path_factory.getbasetemp() / "logs")


@pytest.fixture(scope="session")
def client(cloud: TestCloud) -> Iterator[docker.DockerClient]:
    c = cloud.client()
    yield c
    c.close()


@pytest.fixture
def api(client: docker.DockerClient) -> docker.APIClient:
    """docker-py's low-level client, for exact Engine API calls."""
    return client.api


@pytest.fixture(scope="session")
def cli(cloud: TestCloud) -> DockerCli:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    return DockerCli(cloud)


@pytest.fixture
def cleanup(client: docker.DockerClient) -> Iterator[list[str]]:
    """Names or ids of containers the test made; removed afterwards, whatever happened."""
    made: list[str] = []
    yield made
    for ref in made:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(ref, force=True, v=True)


@pytest.fixture
def outside() -> Iterator[tuple[str, str, str]]:
    """A netns playing the outside world: (netns name, its address, the host's address)."""
    tag = secrets.token_hex(3)
    ns, host_if, peer_if = f"dyt-out-{tag}", f"dyto{tag}", f"dytp{tag}"
    third = secrets.randbelow(250)
    host_ip, peer_ip = f"198.18.{third}.1", f"198.18.{third}.2"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        run("ip", "link", "set", peer_if, "netns", ns)
        run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "-n", ns, "addr", "add", f"{peer_ip}/30", "dev", peer_if)
        run("ip", "-n", ns, "link", "set", peer_if, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns, peer_ip, host_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
