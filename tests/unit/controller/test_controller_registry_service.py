"""RegistryService's logic that needs no registry: references, the write gate, sizes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.controller.registry_service import RegistryService, WriteGate, _manifest_size
from dockyard.core.errors import InvalidArgument
from dockyard.core.reference import parse_reference


def _service(address: str) -> RegistryService:
    none: Any = None
    return RegistryService(
        images=none,
        namespaces=none,
        tokens=none,
        authorizer=none,
        socket_path=Path("/nonexistent"),
        storage_dir=Path("/nonexistent"),
        config_path=Path("/nonexistent"),
        address=address,
    )


@pytest.mark.parametrize(
    ("text", "repo", "familiar"),
    [
        ("busybox", "library/busybox", "busybox"),
        ("alpine:3.10", "library/alpine", "alpine"),
        ("docker.io/library/busybox", "library/busybox", "busybox"),
        ("acmeco/app:1", "acmeco/app", "acmeco/app"),
        ("127.0.0.1:5000/acmeco/app", "acmeco/app", "127.0.0.1:5000/acmeco/app"),
        ("localhost:5000/acmeco/app", "acmeco/app", "localhost:5000/acmeco/app"),
    ],
)
def test_references_map_to_this_registry(text: str, repo: str, familiar: str) -> None:
    target = _service("127.0.0.1:5000").target(parse_reference(text))
    assert (target.repo, target.familiar) == (repo, familiar)


@pytest.mark.parametrize("text", ["quay.io/me/app", "127.0.0.1:5001/acmeco/app"])
def test_other_registries_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="not reachable from this cloud"):
        _service("127.0.0.1:5000").target(parse_reference(text))


def test_a_public_address_has_no_loopback_spellings() -> None:
    assert _service("registry.example:5000").own_hosts() == {"registry.example:5000"}


@pytest.mark.parametrize(
    "server", ["", "127.0.0.1:5000", "http://localhost:5000/v2/", "https://index.docker.io/v1/"]
)
def test_login_accepts_this_registry_and_docker_hub(server: str) -> None:
    _service("127.0.0.1:5000").check_server(server)


def test_login_refuses_another_registry() -> None:
    with pytest.raises(InvalidArgument, match=r"no registry at quay\.io"):
        _service("127.0.0.1:5000").check_server("quay.io")


def test_collector_waits_for_writers_and_holds_new_ones() -> None:
    order: list[str] = []

    async def scenario() -> None:
        gate = WriteGate()
        first_in = asyncio.Event()
        release_first = asyncio.Event()

        async def writer(name: str, hold: asyncio.Event | None) -> None:
            async with gate.writing():
                order.append(f"{name} in")
                if hold is not None:
                    first_in.set()
                    await hold.wait()
                order.append(f"{name} out")

        async def collector() -> None:
            async with gate.collecting():
                order.append("gc in")
                await asyncio.sleep(0.01)
                order.append("gc out")

        first = asyncio.create_task(writer("w1", release_first))
        await first_in.wait()
        gc = asyncio.create_task(collector())
        await asyncio.sleep(0.01)
        second = asyncio.create_task(writer("w2", None))
        await asyncio.sleep(0.01)
        assert order == ["w1 in"]  # the collector waits for w1; w2 waits for the collector
        release_first.set()
        await asyncio.gather(first, gc, second)

    asyncio.run(scenario())
    assert order == ["w1 in", "w1 out", "gc in", "gc out", "w2 in", "w2 out"]


def test_writers_do_not_wait_for_each_other() -> None:
    async def scenario() -> None:
        gate = WriteGate()
        async with gate.writing(), gate.writing():
            pass

    asyncio.run(asyncio.wait_for(scenario(), 2))


def test_manifest_size_sums_config_and_layers() -> None:
    manifest = {"config": {"size": 10}, "layers": [{"size": 100}, {"size": 1000}]}
    assert _manifest_size("m", json.dumps(manifest).encode()) == 1110
    index = {"manifests": [{"size": 500}, {"size": 600}]}
    assert _manifest_size("i", json.dumps(index).encode()) == 1100
