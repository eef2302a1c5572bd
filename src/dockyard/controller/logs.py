"""Following a container's logs across its restarts, and across its agent's.

The agent's follow (``runs=1``) never ends at an exit: after the output of each run it
sends a RUN_END frame with the run's start time. Only the controller knows whether another
run comes (restart policy, a ``docker restart`` under way), so it decides here, per run:
the follow is over once the container is removed, or has stopped with no restart coming;
it goes on when a later run has started or one is coming. Docker ends every follow at the
container's exit; following across restarts is what the issue asks for on top.

The agent's lines carry their time (``timestamps=1`` always, cut off here unless the
client asked for it): if the agent's stream breaks (the agent restarted), the follow
resumes from the last line's time, skipping the lines of that same time already sent, so
nothing is lost or repeated.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from dockyard.core.clock import parse_time_filter
from dockyard.core.errors import Unavailable
from dockyard.wire.framing import RUN_END, FrameReader, frame

__all__ = ["follow_logs"]

_STAMP = 30  # "2006-01-02T15:04:05.000000000Z", the agent's fixed-width line time


class _Cursor:
    """Where the client is in the log: the last line's time and how many lines of that
    very time it got (lines written together share their time)."""

    def __init__(self) -> None:
        self.stamp = b""
        self.seen = 0
        self._skip = 0
        self._skip_stamp = b""

    def admit(self, stamp: bytes) -> bool:
        """Count a line with time ``stamp``; False for a line the client already has."""
        if self._skip:
            if stamp == self._skip_stamp:
                self._skip -= 1
                return False
            self._skip = 0
        if stamp == self.stamp:
            self.seen += 1
        else:
            self.stamp, self.seen = stamp, 1
        return True

    def resume(self, params: dict[str, str]) -> dict[str, str]:
        """The agent query that continues after the last line the client got."""
        if not self.stamp:
            return params
        self._skip, self._skip_stamp = self.seen, self.stamp
        resumed = {k: v for k, v in params.items() if k != "tail"}
        resumed["since"] = str(parse_time_filter(self.stamp.decode()))
        return resumed


async def follow_logs(
    open_stream: Callable[[dict[str, str]], AsyncGenerator[bytes, None]],
    params: dict[str, str],
    *,
    tty: bool,
    run_over: Callable[[int], Awaitable[bool]],
    retry: Callable[[], Awaitable[bool]],
) -> AsyncGenerator[bytes, None]:
    """The client's stream (Docker's framing, raw with ``tty``) of a follow with ``params``
    (the client's query on the agent protocol).

    ``run_over(started_at)``: whether the follow ends after that run's output.
    ``retry()``: after the agent's stream broke, wait, and say whether to reconnect
    (False: the container is gone). An agent that cannot be reached at all for the first
    request is the caller's error (Unavailable), not a wait.
    """
    stamps = params.get("timestamps") == "1"
    query = {**params, "follow": "1", "runs": "1", "timestamps": "1"}
    cursor = _Cursor()
    connected = False
    while True:
        stream = open_stream(query)
        reader = FrameReader()
        try:
            async for chunk in stream:
                if not chunk:
                    connected = True
                    yield b""  # the agent accepted the request: the client gets headers
                    continue
                out: list[bytes] = []
                for kind, payload in reader.feed(chunk):
                    if kind == RUN_END:
                        if out:
                            yield b"".join(out)
                            out = []
                        if await run_over(int(payload)):
                            return
                        continue
                    if not cursor.admit(payload[:_STAMP]):
                        continue
                    data = payload if stamps else payload[_STAMP + 1 :]
                    out.append(data if tty else frame(kind, data))
                if out:
                    yield b"".join(out)
        except Unavailable:
            if not connected:
                raise
            if not await retry():
                return
            query = cursor.resume(query)
        else:
            return  # the agent ended it: the container was deleted
        finally:
            await stream.aclose()
