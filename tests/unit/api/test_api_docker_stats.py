"""``GET /containers/{id}/stats``: Docker's JSON shape and the stream's behaviour.

The handler runs in the real Docker API application; the controller is replaced by a
scripted one whose agent answers samples from a list, so the stream's rules (precpu
chaining, one-shot, zero samples, end on removal, a client that goes) are checked without
a kernel. The integration tests read real cgroups.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.docker import stats as stats_module
from dockyard.api.docker.app import make_docker_app
from dockyard.api.docker.stats import stats_json
from dockyard.core.errors import NotFound, Unauthenticated, Unavailable
from dockyard.core.identity import TOKEN_HEADER, Principal, Role, User
from dockyard.core.protocol import (
    BlkioEntry,
    BlkioStats,
    ContainerStats,
    CpuStats,
    InterfaceStats,
    MemoryStats,
)
from dockyard.core.tenancy import Tenant

ZERO = "0001-01-01T00:00:00Z"
CID = "c" * 64
SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


def running(n: int, **changes: Any) -> ContainerStats:
    """The n-th sample of a busy container: every counter grows with n."""
    return ContainerStats(
        id=CID,
        read=T0 + n * SECOND,
        running=True,
        cpu=CpuStats(
            usage=1000 * n + 1,
            percpu_usage=[400 * n, 600 * n + 1],
            kernel_usage=10 * n,
            user_usage=20 * n,
            system_usage=2_000_000 * n + 5,
            online_cpus=2,
            periods=n,
        ),
        memory=MemoryStats(
            usage=10 * 1024 * 1024,
            max_usage=12 * 1024 * 1024,
            limit=256 * 1024 * 1024,
            stats={"total_inactive_file": 2 * 1024 * 1024, "cache": 3 * 1024 * 1024},
        ),
        pids_current=3,
        pids_limit=1024,
        blkio=BlkioStats(
            io_service_bytes_recursive=[
                BlkioEntry(8, 0, "Read", 4096),
                BlkioEntry(8, 0, "Write", 8192),
            ],
            io_serviced_recursive=[],
        ),
        networks={"eth0": InterfaceStats(rx_bytes=100 * n, tx_bytes=50 * n)},
        **changes,
    )


def stopped() -> ContainerStats:
    return ContainerStats(id=CID, read=T0)


# the JSON --------------------------------------------------------------------------------


def test_public_surface() -> None:
    assert set(stats_module.__all__) == {"INTERVAL", "routes", "stats_json"}


def test_document_has_dockers_keys_and_values() -> None:
    doc = stats_json(running(2), running(1), name="web")
    assert list(doc) == [
        "read",
        "preread",
        "pids_stats",
        "blkio_stats",
        "num_procs",
        "storage_stats",
        "cpu_stats",
        "precpu_stats",
        "memory_stats",
        "name",
        "id",
        "networks",
    ]
    assert doc["read"] == "2023-11-14T22:13:22Z"
    assert doc["preread"] == "2023-11-14T22:13:21Z"
    assert doc["name"] == "/web" and doc["id"] == CID
    assert doc["pids_stats"] == {"current": 3, "limit": 1024}
    assert doc["num_procs"] == 0 and doc["storage_stats"] == {}
    assert doc["cpu_stats"] == {
        "cpu_usage": {
            "total_usage": 2001,
            "percpu_usage": [800, 1201],
            "usage_in_kernelmode": 20,
            "usage_in_usermode": 40,
        },
        "system_cpu_usage": 4_000_005,
        "online_cpus": 2,
        "throttling_data": {"periods": 2, "throttled_periods": 0, "throttled_time": 0},
    }
    assert doc["precpu_stats"]["cpu_usage"]["total_usage"] == 1001
    assert doc["memory_stats"] == {
        "usage": 10 * 1024 * 1024,
        "max_usage": 12 * 1024 * 1024,
        "stats": {"total_inactive_file": 2 * 1024 * 1024, "cache": 3 * 1024 * 1024},
        "limit": 256 * 1024 * 1024,
    }  # failcnt 0 is omitted, as Go's omitempty does
    assert doc["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 8192},
    ]
    assert doc["blkio_stats"]["io_serviced_recursive"] == []
    assert doc["blkio_stats"]["io_queue_recursive"] is None
    assert doc["networks"] == {
        "eth0": {
            "rx_bytes": 200,
            "rx_packets": 0,
            "rx_errors": 0,
            "rx_dropped": 0,
            "tx_bytes": 100,
            "tx_packets": 0,
            "tx_errors": 0,
            "tx_dropped": 0,
        }
    }


def test_first_document_has_zero_precpu() -> None:
    doc = stats_json(running(1), None, name="web")
    assert doc["preread"] == ZERO
    assert doc["precpu_stats"] == {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def test_stopped_container_document_is_dockers_empty_stats() -> None:
    doc = stats_json(stopped(), running(1), name="web")
    assert doc["read"] == ZERO
    assert doc["name"] == "/web" and doc["id"] == CID
    assert doc["pids_stats"] == {} and doc["memory_stats"] == {}
    assert doc["cpu_stats"]["cpu_usage"] == {
        "total_usage": 0,
        "usage_in_kernelmode": 0,
        "usage_in_usermode": 0,
    }
    assert "system_cpu_usage" not in doc["cpu_stats"]
    assert all(value is None for value in doc["blkio_stats"].values())
    assert "networks" not in doc


def test_docker_cli_arithmetic_works_on_the_document() -> None:
    """What ``docker stats`` computes from a document (cli/command/container/stats_helpers)."""
    doc = stats_json(running(2), running(1), name="web")
    cpu, pre = doc["cpu_stats"], doc["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    percent = cpu_delta / system_delta * cpu["online_cpus"] * 100
    assert percent == pytest.approx(1000 / 2_000_000 * 2 * 100)
    memory = doc["memory_stats"]
    used = memory["usage"] - memory["stats"]["total_inactive_file"]
    assert used == 8 * 1024 * 1024
    assert used / memory["limit"] * 100 == pytest.approx(3.125)


# the handler -----------------------------------------------------------------------------


@dataclass
class FakeContainer:
    id: str = CID
    name: str = "web"
    tenant: str = "t1"


@dataclass
class FakeContainers:
    """The two ContainerService calls the handler makes; the agent's answers are scripted:
    a ContainerStats, or an exception to raise."""

    answers: list[ContainerStats | Exception]
    calls: int = 0
    gets: list[str] = field(default_factory=list)

    def get(self, *, tenant: str, ref: str) -> FakeContainer:
        self.gets.append(ref)
        if ref not in (CID, "web") or tenant != "t1":
            raise NotFound(f"No such container: {ref}")
        return FakeContainer()

    async def stats(self, container: FakeContainer) -> ContainerStats:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


class NoEventStreams:
    """The app ends open event streams at shutdown; these tests open none."""

    def end_streams(self) -> None:
        return None


class NothingAudited:
    """The audit log of an app that serves only reads here: nothing may be recorded."""

    def now(self) -> int:
        raise AssertionError("a stats call was audited; reads are not")

    def record(self, record: object) -> object:
        raise AssertionError("a stats call was audited; reads are not")


TOKEN = "dyk_" + "0" * 16 + "_" + "s" * 43
TENANT = Tenant(id="t1", name="default", uid_base=100000)


class OneToken:
    """Authenticates :data:`TOKEN` as a user of tenant t1 (the stats handler is under test)."""

    def authenticate(self, text: str) -> Principal:
        if text != TOKEN:
            raise Unauthenticated("invalid token")
        user = User(id="u1", tenant=TENANT.id, name="ann", role=Role.MEMBER, created=0)
        return Principal(tenant=TENANT, user=user, scopes=("read", "write"))


@dataclass
class FakeController:
    containers: FakeContainers
    events: NoEventStreams = field(default_factory=NoEventStreams)
    identity: OneToken = field(default_factory=OneToken)
    audit: NothingAudited = field(default_factory=NothingAudited)


Scenario = Callable[[TestClient[Any, Any], FakeContainers], Awaitable[None]]


def run(answers: list[ContainerStats | Exception], scenario: Scenario) -> FakeContainers:
    containers = FakeContainers(answers)

    async def main() -> None:
        app = make_docker_app(FakeController(containers))  # type: ignore[arg-type]
        async with TestClient(TestServer(app), headers={TOKEN_HEADER: TOKEN}) as client:
            await scenario(client, containers)

    asyncio.run(main())
    return containers


@pytest.fixture(autouse=True)
def fast_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_module, "INTERVAL", 0.01)


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_no_stream_sends_the_second_sample_with_the_first_as_precpu() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        response = await client.get("/v1.41/containers/web/stats?stream=false")
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        doc = await response.json()
        assert doc["read"] == "2023-11-14T22:13:22Z"
        assert doc["preread"] == "2023-11-14T22:13:21Z"
        assert doc["precpu_stats"]["cpu_usage"]["total_usage"] == 1001
        assert containers.calls == 2

    run([running(1), running(2)], scenario)


@pytest.mark.parametrize("stream", ["0", "false", "False", ""])
def test_one_shot_sends_one_sample_at_once(stream: str) -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        response = await client.get(f"/containers/{CID}/stats?stream={stream}&one-shot=1")
        doc = await response.json()
        assert doc["preread"] == ZERO and doc["read"] == "2023-11-14T22:13:21Z"
        assert containers.calls == 1

    run([running(1), running(2)], scenario)


def test_one_shot_needs_api_1_41() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        doc = await (await client.get("/v1.40/containers/web/stats?stream=0&one-shot=1")).json()
        assert doc["preread"] != ZERO  # ignored: two samples
        assert containers.calls == 2

    run([running(1), running(2)], scenario)


def test_no_stream_of_a_stopped_container_answers_at_once() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        doc = await (await client.get("/containers/web/stats?stream=0")).json()
        assert doc["read"] == ZERO and doc["name"] == "/web" and doc["id"] == CID
        assert containers.calls == 1

    run([stopped()], scenario)


def test_stream_chains_precpu_and_ends_when_the_container_is_removed() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        response = await client.get("/containers/web/stats")  # stream defaults to true
        assert response.status == 200
        docs = _lines(await response.read())  # the body ends: the stream is over
        assert [d["read"][:19] for d in docs] == [
            "2023-11-14T22:13:21",
            "2023-11-14T22:13:22",
            "2023-11-14T22:13:23",
            "0001-01-01T00:00:00",  # stopped: a zero sample, the stream goes on
            "2023-11-14T22:13:24",  # started again
        ]
        assert docs[0]["precpu_stats"]["cpu_usage"]["total_usage"] == 0
        for before, after in itertools.pairwise(docs):
            assert after["precpu_stats"] == before["cpu_stats"]
        assert docs[4]["preread"] == ZERO
        # Each tick resolves the container again by its full id.
        assert containers.gets[0] == "web" and set(containers.gets[1:]) == {CID}

    run(
        [running(1), running(2), running(3), stopped(), running(4), NotFound("gone")],
        scenario,
    )


def test_stream_sends_zero_samples_while_the_agent_is_away() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        docs = _lines(await (await client.get("/containers/web/stats")).read())
        assert [d["read"] == ZERO for d in docs] == [False, True, False]
        assert docs[2]["precpu_stats"]["cpu_usage"]["total_usage"] == 0

    run([running(1), Unavailable("agent away"), running(2), NotFound("gone")], scenario)


def test_errors_before_the_first_sample_are_dockers() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        missing = await client.get("/containers/nope/stats")
        assert missing.status == 404
        assert await missing.json() == {"message": "No such container: nope"}
        away = await client.get("/containers/web/stats?stream=0")
        assert away.status == 503

    run([Unavailable("agent unreachable")], scenario)


def test_a_client_that_goes_ends_the_stream() -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        response = await client.get("/containers/web/stats")
        first = await response.content.readline()
        assert json.loads(first)["id"] == CID
        response.close()  # the client goes mid stream
        await asyncio.sleep(0.2)  # many intervals
        calls = containers.calls
        await asyncio.sleep(0.2)
        assert containers.calls == calls  # nobody samples for it any more
        # and the server still answers
        doc = await (await client.get("/containers/web/stats?stream=0&one-shot=1")).json()
        assert doc["id"] == CID

    run([running(1)], scenario)


def test_a_client_that_goes_before_the_answer_leaves_the_server_healthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(client: TestClient[Any, Any], containers: FakeContainers) -> None:
        server = client.server
        for query in ("stream=0", "stream=1"):
            _reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(f"GET /containers/web/stats?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            writer.close()  # gone before the (second) sample
            await asyncio.sleep(0.1)
        calls = containers.calls
        await asyncio.sleep(0.1)
        assert containers.calls == calls
        doc = await (await client.get("/containers/web/stats?stream=0&one-shot=1")).json()
        assert doc["id"] == CID

    with caplog.at_level("WARNING"):
        run([running(1)], scenario)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
