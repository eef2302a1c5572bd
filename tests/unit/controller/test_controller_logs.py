"""Following logs across runs and agent restarts (controller.logs): an agent stream is
stood in for by a generator of frames, exactly as the agent frames them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from dockyard.controller.logs import follow_logs
from dockyard.core.clock import parse_time_filter
from dockyard.core.errors import Unavailable
from dockyard.wire.framing import RUN_END, STDERR, STDOUT, FrameReader, frame

BASE = "2023-11-14T22:13:2{}.000000000Z"


def line(second: int, text: str, stream: int = STDOUT) -> bytes:
    return frame(stream, f"{BASE.format(second)} {text}\n".encode())


def run_end(started_at: int) -> bytes:
    return frame(RUN_END, str(started_at).encode())


class Agent:
    """Answers each connection with the next script; a script that ends with ``BROKEN``
    breaks the stream as a dying agent does."""

    BROKEN = b"<broken>"

    def __init__(self, *scripts: list[bytes]) -> None:
        self.scripts = list(scripts)
        self.queries: list[dict[str, str]] = []

    def open(self, query: dict[str, str]) -> AsyncGenerator[bytes, None]:
        self.queries.append(dict(query))
        script = self.scripts.pop(0)

        async def stream() -> AsyncGenerator[bytes, None]:
            yield b""
            for chunk in script:
                if chunk == self.BROKEN:
                    raise Unavailable("agent went away")
                yield chunk

        return stream()


def follow(
    agent: Agent, *, tty: bool = False, over: set[int] | None = None, **params: str
) -> bytes:
    ended: set[int] = over if over is not None else set()
    decided: list[int] = []

    async def run_over(run: int) -> bool:
        decided.append(run)
        return run in ended

    async def retry() -> bool:
        return True

    async def collect() -> bytes:
        out = b""
        async for chunk in follow_logs(
            agent.open,
            {"stdout": "1", "stderr": "1", **params},
            tty=tty,
            run_over=run_over,
            retry=retry,
        ):
            out += chunk
        return out

    return asyncio.run(collect())


def payloads(data: bytes) -> list[tuple[int, bytes]]:
    return FrameReader().feed(data)


def test_asks_the_agent_for_runs_and_times() -> None:
    agent = Agent([line(0, "a"), run_end(7)])
    follow(agent, over={7}, tail="5")
    assert agent.queries == [
        {
            "stdout": "1",
            "stderr": "1",
            "tail": "5",
            "follow": "1",
            "runs": "1",
            "timestamps": "1",
        }
    ]


def test_lines_pass_without_their_time_unless_asked() -> None:
    agent = Agent([line(0, "a") + line(1, "b", STDERR), run_end(7)])
    assert payloads(follow(agent, over={7})) == [(STDOUT, b"a\n"), (STDERR, b"b\n")]
    agent = Agent([line(0, "a"), run_end(7)])
    assert payloads(follow(agent, over={7}, timestamps="1")) == [
        (STDOUT, f"{BASE.format(0)} a\n".encode())
    ]


def test_tty_output_is_raw() -> None:
    agent = Agent([line(0, "a") + line(1, "b"), run_end(7)])
    assert follow(agent, tty=True, over={7}) == b"a\nb\n"


def test_a_run_that_is_not_over_is_followed_on() -> None:
    agent = Agent([line(0, "run1"), run_end(1), line(1, "run2"), run_end(2), line(2, "never")])
    got = payloads(follow(agent, over={2}))
    assert got == [(STDOUT, b"run1\n"), (STDOUT, b"run2\n")]


def test_the_stream_ends_when_the_agent_ends_it() -> None:
    agent = Agent([line(0, "a")])
    assert payloads(follow(agent)) == [(STDOUT, b"a\n")]


def test_resumes_after_the_agent_went_away_without_loss_or_repeat() -> None:
    # Three lines share one time (written together); the agent dies after two of them.
    agent = Agent(
        [line(0, "a") + line(1, "b1") + line(1, "b2"), Agent.BROKEN],
        [line(1, "b1") + line(1, "b2") + line(1, "b3") + line(2, "c"), run_end(9)],
    )
    got = payloads(follow(agent, over={9}, tail="10"))
    assert got == [
        (STDOUT, b"a\n"),
        (STDOUT, b"b1\n"),
        (STDOUT, b"b2\n"),
        (STDOUT, b"b3\n"),
        (STDOUT, b"c\n"),
    ]
    resumed = agent.queries[1]
    assert resumed["since"] == str(parse_time_filter(BASE.format(1)))
    assert "tail" not in resumed


def test_resumes_with_the_original_query_when_nothing_was_sent() -> None:
    agent = Agent([Agent.BROKEN], [line(0, "a"), run_end(3)])
    assert payloads(follow(agent, over={3}, tail="1")) == [(STDOUT, b"a\n")]
    assert agent.queries[1]["tail"] == "1"


def test_an_agent_unreachable_from_the_start_is_an_error() -> None:
    class Down(Agent):
        def open(self, query: dict[str, str]) -> AsyncGenerator[bytes, None]:
            async def stream() -> AsyncGenerator[bytes, None]:
                raise Unavailable("agent is unreachable")
                yield b""  # pragma: no cover

            return stream()

    with pytest.raises(Unavailable):
        follow(Down())


def test_a_line_larger_than_a_client_frame_passes_whole() -> None:
    big = "z" * (3 << 20)
    agent = Agent([frame(STDOUT, f"{BASE.format(0)} {big}\n".encode(), split=False), run_end(1)])
    got = payloads(follow(agent, over={1}))
    assert b"".join(p for _, p in got) == big.encode() + b"\n"
    assert len(got) == 4 and all(len(p) <= 1 << 20 for _, p in got)  # 1 MiB frames
