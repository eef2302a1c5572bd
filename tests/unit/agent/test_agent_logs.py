"""The agent's log keeper and log encoding (agent.logs), on real files and real inotify."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

import dockyard.wire  # noqa: F401  (before aiohttp's parser is used)
from dockyard.agent.logs import LogKeeper, LogQuery, RunEnded, _Encoder, timestamp
from dockyard.core.protocol import CreateRequest, ProcessSpec
from dockyard.runtime.logs import LogEntry
from dockyard.runtime.paths import BundlePaths
from dockyard.wire.framing import STDERR, STDOUT, FrameReader

NS = 1_000_000_000


def test_timestamps_have_nine_fraction_digits() -> None:
    assert timestamp(1_700_000_000 * NS) == b"2023-11-14T22:13:20.000000000Z"
    assert timestamp(1_700_000_000 * NS + 1) == b"2023-11-14T22:13:20.000000001Z"


def test_encoding_details_timestamps_and_framing() -> None:
    entries = [
        LogEntry(time=1_700_000_000 * NS, stream="stdout", data=b"out\n"),
        LogEntry(time=1_700_000_000 * NS, stream="stderr", data=b"err\n"),
    ]
    plain = _Encoder(LogQuery(), framed=False)
    assert plain.encode(entries) == b"out\nerr\n"
    framed = _Encoder(LogQuery(stdout=False, details=True, attrs="a=1"), framed=True)
    assert FrameReader().feed(framed.encode(entries)) == [(STDERR, b"a=1 err\n")]
    stamped = _Encoder(LogQuery(timestamps=True, details=True), framed=True)
    assert FrameReader().feed(stamped.encode(entries[:1])) == [
        (STDOUT, b"2023-11-14T22:13:20.000000000Z  out\n")  # no attributes: a lone space
    ]


def test_query_from_the_agent_protocol() -> None:
    request = make_mocked_request(
        "GET", "/v1/containers/x/logs?stdout=1&follow=1&runs=1&tail=3&since=5&details=1&attrs=k%3Dv"
    )
    assert LogQuery.from_request(request) == LogQuery(
        stdout=True,
        stderr=False,
        follow=True,
        runs=True,
        since=5,
        tail=3,
        details=True,
        attrs="k=v",
    )


def request(max_size: int, max_files: int) -> CreateRequest:
    return CreateRequest(
        id="c1",
        tenant="t",
        name="n",
        uid_base=0,
        uid_size=65536,
        layers=("l",),
        process=ProcessSpec(args=("true",)),
        hostname="h",
        log_max_size=max_size,
        log_max_files=max_files,
    )


def test_keeper_keeps_conmon_rotations_and_follows_them(tmp_path: Path) -> None:
    bundle = tmp_path / "c1"
    bundle.mkdir()
    paths = BundlePaths(bundle, bundle, tmp_path / "exits")
    keeper = LogKeeper(lambda cid: BundlePaths(tmp_path / cid, tmp_path / cid, tmp_path / "exits"))
    running = True
    line = "2023-11-14T22:13:2{}.000000000+00:00 stdout F line {}\n"

    async def scenario() -> list[bytes]:
        nonlocal running
        cap = keeper.prepare_run("c1", request(max_size=100, max_files=2))
        assert cap == 100
        got: list[bytes] = []

        async def follow() -> None:
            async for item in keeper.follow(
                "c1",
                LogQuery(follow=True, runs=True),
                state=lambda: (running, 7),
                gone=lambda: False,
            ):
                if isinstance(item, RunEnded):
                    assert item.started_at == 7
                    return
                got.extend(e.data for e in item)

        follower = asyncio.create_task(follow())
        fd = os.open(paths.log_file, os.O_WRONLY | os.O_APPEND)
        for i in range(6):  # as conmon: each line rotates into a new file
            await asyncio.sleep(0.05)
            if i:
                os.close(fd)
                fd = os.open(paths.log_spare, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
                os.rename(paths.log_spare, paths.log_file)
                await asyncio.sleep(0.05)  # the keeper links the new file and makes a spare
            os.write(fd, line.format(i, i).encode())
        os.close(fd)
        await asyncio.sleep(0.2)
        running = False
        keeper.run_ended("c1")
        await asyncio.wait_for(follower, 5)
        while keeper._jobs:  # pruning runs in a thread
            await asyncio.sleep(0.01)
        keeper.close()
        return got

    got = asyncio.run(scenario())
    assert got == [f"line {i}\n".encode() for i in range(6)]
    kept = sorted(p.name for p in paths.log_dir.iterdir())
    assert kept == ["0000000005.log", "0000000006.log", "0000000007.log"]  # 2 files + spare
