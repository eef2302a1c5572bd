"""Fixtures for the registry tests: a real Dockyard instance whose controller runs the
registry process and serves the registry front on a free port of 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.cloud import TestCloud


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("docker-registry") is not None:
        return
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.skip(reason="docker-registry is not installed"))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    """A cloud of the module's own (tests here kill its daemons)."""
    instance = TestCloud.launch(tmp_path_factory.mktemp("cloud"))
    yield instance
    instance.purge(keep_logs=tmp_path_factory.getbasetemp() / "logs")
