"""Container output as conmon writes it (the CRI "k8s-file" format), read back for logs.

Each line is ``<RFC 3339 time> <stdout|stderr> <P|F> <text>``: ``F`` ends a line, ``P``
marks a partial chunk continued by the next line of the same stream. This module turns
the file back into whole output lines with their time and stream.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["LogEntry", "follow_entries", "parse_line", "read_entries"]

_FOLLOW_POLL = 0.05


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: int
    stream: str
    data: bytes


def _parse_time(text: bytes) -> int:
    # 2026-11-29T04:38:50.250158973+00:00 (conmon always writes UTC offsets like this)
    date, _, rest = text.partition(b"T")
    year, month, day = (int(x) for x in date.split(b"-"))
    clock = rest[:8]
    hour, minute, second = (int(x) for x in clock.split(b":"))
    frac = b""
    tail = rest[8:]
    if tail.startswith(b"."):
        end = 1
        while end < len(tail) and tail[end : end + 1].isdigit():
            end += 1
        frac, tail = tail[1:end], tail[end:]
    offset = 0
    if tail[:1] in (b"+", b"-"):
        sign = 1 if tail[:1] == b"+" else -1
        hh, _, mm = tail[1:].partition(b":")
        offset = sign * (int(hh) * 3600 + int(mm or b"0") * 60)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    return seconds * 1_000_000_000 + int((frac + b"000000000")[:9])


def parse_line(line: bytes) -> tuple[int, str, bool, bytes] | None:
    """Split one log line into (time ns, stream, is_full, text); None if malformed."""
    try:
        stamp, stream, tag, text = line.rstrip(b"\n").split(b" ", 3)
    except ValueError:
        parts = line.rstrip(b"\n").split(b" ")
        if len(parts) != 3:
            return None
        stamp, stream, tag = parts
        text = b""
    try:
        when = _parse_time(stamp)
    except ValueError:
        return None
    return when, stream.decode(), tag == b"F", text


class _Joiner:
    """Join partial chunks per stream into whole lines."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, bytes]] = {}

    def feed(self, line: bytes) -> LogEntry | None:
        parsed = parse_line(line)
        if parsed is None:
            return None
        when, stream, full, text = parsed
        start, head = self._pending.pop(stream, (when, b""))
        if not full:
            self._pending[stream] = (start, head + text)
            return None
        return LogEntry(time=start, stream=stream, data=head + text + b"\n")

    def flush(self) -> list[LogEntry]:
        """Partial chunks left at the end of the output (the last line had no newline)."""
        left = [LogEntry(time=t, stream=s, data=d) for s, (t, d) in self._pending.items() if d]
        self._pending.clear()
        return sorted(left, key=lambda e: e.time)


def read_entries(
    path: Path,
    *,
    since: int = 0,
    until: int = 0,
    tail: int = -1,
) -> Iterator[LogEntry]:
    """Whole lines from ``path`` with ``since <= time`` and ``time < until`` (0: no bound),
    only the last ``tail`` of them when ``tail >= 0``."""
    try:
        handle = open(path, "rb")  # noqa: SIM115  (closed by the with below)
    except FileNotFoundError:
        return
    joiner = _Joiner()
    keep: collections.deque[LogEntry] | None = collections.deque(maxlen=tail) if tail >= 0 else None
    with handle:
        for line in handle:
            for entry in _selected(joiner.feed(line), since, until):
                if keep is not None:
                    keep.append(entry)
                else:
                    yield entry
    for entry in _selected_all(joiner.flush(), since, until):
        if keep is not None:
            keep.append(entry)
        else:
            yield entry
    if keep is not None:
        yield from keep


class _Follower:
    """Reads a log file as it grows, through an open handle.

    Holding the file open means a container removed while a client still follows its
    logs (``docker run --rm`` does exactly that) is read to the end. If the path comes to
    name another file (rotated or truncated), reading moves to it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: BinaryIO | None = None

    def read(self) -> bytes:
        """Whatever is new; b"" if nothing is."""
        if self._handle is None:
            try:
                self._handle = open(self._path, "rb")  # noqa: SIM115  (closed in close())
            except FileNotFoundError:
                return b""
        chunk = self._handle.read()
        if chunk:
            return chunk
        try:
            current = os.stat(self._path)
        except FileNotFoundError:
            return b""  # removed: what we hold is all there is
        held = os.fstat(self._handle.fileno())
        if current.st_ino != held.st_ino or current.st_size < self._handle.tell():
            self.close()
            return self.read()
        return b""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def follow_entries(
    path: Path,
    *,
    since: int = 0,
    tail: int = -1,
    until: int = 0,
    finished: Callable[[], bool],
) -> AsyncIterator[LogEntry]:
    """Like :func:`read_entries`, then keep yielding new lines until ``finished()`` is true
    and the file has been read to its end. Copes with the file being truncated, replaced
    or deleted while it is followed.
    """
    joiner = _Joiner()
    # Until the existing content is read, entries wait here so ``tail`` can keep the last.
    backlog: collections.deque[LogEntry] | None = collections.deque(
        maxlen=tail if tail >= 0 else None
    )
    follower = _Follower(path)
    buffer = b""
    try:
        while True:
            done = finished()
            chunk = follower.read()
            ready: list[LogEntry] = []
            if chunk:
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    ready += _selected(joiner.feed(line), since, 0)
            elif done:
                ready += _selected_all(joiner.flush(), since, 0)
            for entry in ready:
                if until and entry.time >= until:
                    for kept in backlog or ():
                        yield kept
                    return
                if backlog is not None:
                    backlog.append(entry)
                else:
                    yield entry
            if chunk:
                continue
            if backlog is not None:
                for entry in backlog:
                    yield entry
                backlog = None
            if done:
                return
            await asyncio.sleep(_FOLLOW_POLL)
    finally:
        follower.close()


def _selected(entry: LogEntry | None, since: int, until: int) -> list[LogEntry]:
    if entry is None or entry.time < since or (until and entry.time >= until):
        return []
    return [entry]


def _selected_all(entries: list[LogEntry], since: int, until: int) -> list[LogEntry]:
    return [e for e in entries if e.time >= since and not (until and e.time >= until)]
