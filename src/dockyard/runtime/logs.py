"""Container output as conmon writes it (the CRI "k8s-file" format), read back for logs.

Each line is ``<RFC 3339 time> <stdout|stderr> <P|F> <text>``: ``F`` ends a line, ``P``
marks a partial chunk continued by the next line of the same stream. This module turns the
series of a container's log files (:mod:`dockyard.runtime.logfiles`) back into whole
output lines with their time and stream: :class:`LogReader` reads the series' bytes in
order as it grows and rotates, :class:`EntryReader` turns them into entries with Docker's
``since``/``until`` rules, :func:`read_entries` is the one-shot read (``docker logs``).

Docker's rules: ``since`` keeps entries at or after it, ``until`` ends the output at the
first entry after it; ``tail`` keeps the last N entries that pass both.
"""

from __future__ import annotations

import calendar
import collections
import gzip
import io
import os
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.runtime.logfiles import LogFiles, SeriesFile

__all__ = ["EntryReader", "LogEntry", "LogReader", "parse_line", "read_entries", "start_seq"]

_CHUNK = 1 << 20
_MAX_ENTRY = 1 << 20  # a longer line is given in parts, as Docker's loggers give it
_FULL_LINE = re.compile(rb"^\S+ \S+ F", re.MULTILINE)


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
    """Join partial chunks per stream into whole lines; a line longer than _MAX_ENTRY
    comes out in parts (all but the last without a newline), so memory stays bounded."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, bytes]] = {}

    def feed(self, line: bytes) -> LogEntry | None:
        parsed = parse_line(line)
        if parsed is None:
            return None
        when, stream, full, text = parsed
        start, head = self._pending.pop(stream, (when, b""))
        if not full:
            if len(head) + len(text) >= _MAX_ENTRY:
                return LogEntry(time=start, stream=stream, data=head + text)
            self._pending[stream] = (start, head + text)
            return None
        return LogEntry(time=start, stream=stream, data=head + text + b"\n")

    def flush(self) -> list[LogEntry]:
        """Partial chunks left at the end of the output (the last line had no newline)."""
        left = [LogEntry(time=t, stream=s, data=d) for s, (t, d) in self._pending.items() if d]
        self._pending.clear()
        return sorted(left, key=lambda e: e.time)


# bytes ----------------------------------------------------------------------------------


def _open_item(item: SeriesFile) -> BinaryIO | None:
    """The file's content (a compressed one is read whole into memory); None if gone."""
    if item.plain is not None:
        try:
            return open(item.plain, "rb")
        except FileNotFoundError:
            pass  # compressed or pruned meanwhile
    gz = item.gz or (item.plain.with_name(item.plain.name + ".gz") if item.plain else None)
    if gz is None:
        return None
    try:
        with open(gz, "rb") as handle:
            return io.BytesIO(gzip.decompress(handle.read()))
    except FileNotFoundError:
        return None


class LogReader:
    """The bytes of a container's log series, oldest file first, following it as it grows.

    ``first``: the first seq to read (0: the oldest there is). ``at_end``: start at the end
    of the file conmon writes now (follow without a backlog). ``snapshot``: stop where that
    file ended when the reader was made (a one-shot read of a container that still runs).

    A file is read to its end once conmon has moved on to another (``live`` names another
    file); the reader then goes on with the next file of the series. A file conmon still
    writes is never left early, and the spare (a file after the live one) never entered.
    A file pruned before the reader got to it is skipped.
    """

    def __init__(
        self, files: LogFiles, *, first: int = 0, at_end: bool = False, snapshot: bool = False
    ) -> None:
        self._files = files
        self._last = first - 1 if first > 0 else 0  # seq of the last file done
        self._handle: BinaryIO | None = None
        self._seq = 0
        self._inode = 0
        self._final = False
        self._stop: tuple[int, int] | None = None
        if snapshot or at_end:
            live = self._live()
            if live is not None:
                seq, size = live
                if snapshot:
                    self._stop = (seq, size)
                if at_end:
                    self._last = seq - 1
                    self._open_at_end()
            elif at_end:
                listing = files.listing()
                self._last = listing[-1].seq if listing else 0

    def _live(self) -> tuple[int, int] | None:
        """(seq, size) of the file conmon writes, if it is in the series."""
        try:
            live = os.stat(self._files.live)
        except FileNotFoundError:
            return None
        for item in reversed(self._files.listing()):
            if item.plain is None:
                continue
            try:
                if os.stat(item.plain).st_ino == live.st_ino:
                    return item.seq, live.st_size
            except FileNotFoundError:
                continue
        return None

    def _open_at_end(self) -> None:
        if self._open_next() and self._handle is not None:
            self._handle.seek(0, os.SEEK_END)

    def _live_inode(self) -> int:
        try:
            return os.stat(self._files.live).st_ino
        except FileNotFoundError:
            return 0

    def read(self, limit: int = _CHUNK) -> bytes:
        """What there is to read next, at most ``limit`` bytes; b"" once caught up (for a
        snapshot: done)."""
        while True:
            if self._handle is None and not self._open_next():
                return b""
            assert self._handle is not None
            want = limit
            if self._stop is not None and self._seq == self._stop[0]:
                want = min(limit, self._stop[1] - self._handle.tell())
                if want <= 0:
                    return b""
            data = self._handle.read(want)
            if data:
                return data
            if self._stop is not None and self._seq >= self._stop[0]:
                return b""
            if not self._final:
                if self._inode == self._live_inode():
                    return b""  # conmon may write more
                # conmon closed this file before naming another live: one last read
                # takes what it wrote in between.
                self._final = True
                continue
            self._close()

    def _open_next(self) -> bool:
        listing = self._files.listing()
        live = self._live_inode()
        live_seq = None
        for item in reversed(listing):
            if item.plain is None:
                continue
            try:
                if os.stat(item.plain).st_ino == live:
                    live_seq = item.seq
                    break
            except FileNotFoundError:
                continue
        for item in listing:
            if item.seq <= self._last:
                continue
            if live_seq is not None and item.seq > live_seq:
                return False  # the spare: conmon has not moved to it yet
            if self._stop is not None and item.seq > self._stop[0]:
                return False
            handle = _open_item(item)
            if handle is None:
                self._last = item.seq  # pruned before we got to it
                continue
            self._handle = handle
            self._seq = item.seq
            if isinstance(handle, io.BufferedReader):
                self._inode = os.fstat(handle.fileno()).st_ino
                self._final = live_seq is None or item.seq < live_seq
            else:
                self._inode = 0
                self._final = True
            return True
        return False

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._last = self._seq

    def close(self) -> None:
        self._close()


# entries --------------------------------------------------------------------------------


class EntryReader:
    """Whole entries from a :class:`LogReader`, with Docker's ``since`` and ``until``."""

    def __init__(self, reader: LogReader, *, since: int = 0, until: int = 0) -> None:
        self._reader = reader
        self._since = since
        self._until = until
        self._joiner = _Joiner()
        self._buffer = b""
        self.ended = False
        """An entry after ``until`` was seen: there is nothing more to read."""

    def read(self, limit: int = _CHUNK) -> list[LogEntry] | None:
        """Entries from the next chunk (maybe none: a chunk of partial lines); None once
        caught up with the writer, or ended."""
        if self.ended:
            return None
        chunk = self._reader.read(limit)
        if not chunk:
            return None
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        out: list[LogEntry] = []
        for line in lines:
            entry = self._joiner.feed(line)
            if entry is None or entry.time < self._since:
                continue
            if self._until and entry.time > self._until:
                self.ended = True
                break
            out.append(entry)
        return out

    def flush(self) -> list[LogEntry]:
        """The partial lines still pending: at the end of a run, the output's last line
        when it had no newline."""
        left = self._joiner.flush()
        out = []
        for entry in left:
            if entry.time < self._since:
                continue
            if self._until and entry.time > self._until:
                break
            out.append(entry)
        return out

    def close(self) -> None:
        self._reader.close()


def _first_time(item: SeriesFile) -> int | None:
    handle = _open_item(item)
    if handle is None:
        return None
    with handle:
        parsed = parse_line(handle.readline())
    return parsed[0] if parsed else None


def _full_lines(item: SeriesFile) -> int:
    handle = _open_item(item)
    if handle is None:
        return 0
    with handle:
        return len(_FULL_LINE.findall(handle.read()))


def start_seq(files: LogFiles, *, since: int = 0, tail: int = -1, until: int = 0) -> int:
    """The first file a read with these options needs (0: from the oldest).

    Files wholly before ``since`` are skipped (a file's entries are no later than the first
    of the next file's); with ``tail`` (and no ``until``, which cuts from the end) reading
    starts one file before the newest ones that hold ``tail`` lines, so a line split over
    two files is still whole.
    """
    listing = files.listing()
    start = 0
    if since:
        while start + 1 < len(listing):
            first = _first_time(listing[start + 1])
            if first is None or first >= since:
                break
            start += 1
    if tail > 0 and not until:
        count = 0
        index = len(listing) - 1
        while index > start:
            count += _full_lines(listing[index])
            if count >= tail:
                start = max(start, index - 1)
                break
            index -= 1
    return listing[start].seq if listing else 0


def read_entries(
    files: LogFiles, *, since: int = 0, until: int = 0, tail: int = -1
) -> Generator[LogEntry, None, None]:
    """The log as it is now: entries with ``since <= time <= until`` (0: no bound), only
    the last ``tail`` of them when ``tail >= 0``."""
    if tail == 0:
        return
    first = start_seq(files, since=since, tail=tail, until=until)
    reader = EntryReader(LogReader(files, first=first, snapshot=True), since=since, until=until)
    keep: collections.deque[LogEntry] | None = collections.deque(maxlen=tail) if tail > 0 else None
    try:
        while (batch := reader.read()) is not None:
            if keep is not None:
                keep.extend(batch)
            else:
                yield from batch
        left = reader.flush() if not reader.ended else []
        if keep is not None:
            keep.extend(left)
            yield from keep
        else:
            yield from left
    finally:
        reader.close()
