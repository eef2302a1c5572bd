"""Fixtures for the engine tests: a real Dockyard instance (controller + agent processes,
crun, conmon, the kernel) reached through docker-py and the docker CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockyard.testing.cloud import DockerCli, TestCloud


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root"))


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
