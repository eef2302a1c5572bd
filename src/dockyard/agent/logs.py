"""The agent's side of container logs: keeping every file, and serving reads and follows.

:class:`LogKeeper` keeps each container's log series (:mod:`dockyard.runtime.logfiles`):
it readies the files before conmon starts, and watches the bundle directory of every
container whose conmon runs, with one inotify instance for all of them. Watching costs
nothing per write: the only event asked for is ``ctr.log`` renamed into place (a conmon
rotation), and ``ctr.log`` modified only while someone follows the container's logs. After
a rotation the new file is linked into the series at once (in the event loop: a few system
calls); pruning to ``max-file`` and compressing go to a thread, one job per container at
a time.

:func:`serve_logs` answers ``GET /v1/containers/{id}/logs``: a one-shot read, or a follow
that ends when the container stops, or (``runs``) goes on across its restarts, marking the
end of each run's output with a :data:`~dockyard.wire.framing.RUN_END` frame so the
controller can decide whether the follow is over (it knows the restart policy).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from aiohttp import web

from dockyard.agent.inotify import IN_MODIFY, IN_MOVED_TO, IN_Q_OVERFLOW, Watches
from dockyard.core.errors import InvalidArgument, Unavailable
from dockyard.core.protocol import CreateRequest
from dockyard.runtime.logfiles import LogFiles
from dockyard.runtime.logs import EntryReader, LogEntry, LogReader, read_entries, start_seq
from dockyard.runtime.paths import BundlePaths
from dockyard.wire.framing import RUN_END, frame, stream_number
from dockyard.wire.query import flag, query_int

__all__ = ["LogKeeper", "LogQuery", "RunEnded", "serve_logs", "timestamp"]

log = logging.getLogger("dockyard.agent")

_BATCH = 64 * 1024  # bytes written to the client at once
_LIVE_CHUNK = 64 * 1024  # bytes parsed in the event loop at a time while following
_IDLE_CHECK = 1.0  # seconds between checks that an idle follower's client is still there


@dataclass(frozen=True, slots=True)
class _Policy:
    max_size: int
    max_files: int
    compress: bool


class _Pulse:
    """Wakes the followers of one container: take :meth:`next` before looking, then wait
    on it (a change in between is not lost)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.followers = 0

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def next(self) -> asyncio.Event:
        return self._event


class LogKeeper:
    """Keeps the log series of every container on this host (see the module docstring)."""

    def __init__(self, paths: Callable[[str], BundlePaths]) -> None:
        self._paths = paths
        self._watches = Watches(self._event)
        self._policies: dict[str, _Policy] = {}
        self._pulses: dict[str, _Pulse] = {}
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._watched: set[str] = set()

    def files(self, container_id: str) -> LogFiles:
        paths = self._paths(container_id)
        return LogFiles(live=paths.log_file, spare=paths.log_spare, directory=paths.log_dir)

    # lifecycle hooks (called by the container manager) -------------------------------------

    def prepare_run(self, container_id: str, request: CreateRequest) -> int:
        """Ready the files before conmon starts and watch for its rotations; returns the
        ``--log-size-max`` to give conmon (0: none)."""
        policy = self._policies[container_id] = _policy(request)
        files = self.files(container_id)
        cap = files.prepare_run(request.log_max_size)
        self._watch(container_id)
        if _untidy(files, policy):
            self._housekeep(container_id)
        return cap

    def run_started(self, container_id: str) -> None:
        self._pulse(container_id).fire()

    def run_ended(self, container_id: str) -> None:
        """conmon has exited: no more rotations until the next start. One it made just
        before it exited may not have been seen yet: it is taken in now."""
        self._unwatch(container_id)
        with contextlib.suppress(OSError):
            self.files(container_id).adopt()
        self._pulse(container_id).fire()

    def forget(self, container_id: str) -> None:
        """The container is deleted: followers drain what they hold and end."""
        self._unwatch(container_id)
        self._policies.pop(container_id, None)
        pulse = self._pulses.pop(container_id, None)
        if pulse is not None:
            pulse.fire()

    def recover(self, container_id: str, request: CreateRequest, *, running: bool) -> None:
        """After an agent restart: take in what conmon rotated meanwhile."""
        policy = self._policies[container_id] = _policy(request)
        files = self.files(container_id)
        if files.live.exists():
            files.adopt()
        if running:
            self._watch(container_id)
        if _untidy(files, policy):
            self._housekeep(container_id)

    def close(self) -> None:
        """Stop watching (agent shutdown; conmon goes on rotating without us)."""
        self._watches.close()

    # watching ----------------------------------------------------------------------------

    def _watch(self, container_id: str) -> None:
        self._watched.add(container_id)
        self._rewatch(container_id)

    def _rewatch(self, container_id: str) -> None:
        if container_id not in self._watched:
            return
        pulse = self._pulses.get(container_id)
        mask = IN_MOVED_TO | (IN_MODIFY if pulse is not None and pulse.followers else 0)
        try:
            self._watches.watch(container_id, self._paths(container_id).data, mask)
        except Unavailable as exc:
            # Out of inotify watches (fs.inotify.max_user_watches): the container runs
            # all the same; its rotations are taken in at the next start or agent restart,
            # and until then only the spare and the current file are kept.
            log.warning("cannot watch the logs of %s: %s", container_id[:12], exc)

    def _unwatch(self, container_id: str) -> None:
        self._watched.discard(container_id)
        self._watches.unwatch(container_id)

    def _event(self, container_id: str, name: str, mask: int) -> None:
        if mask & IN_Q_OVERFLOW:
            for watched in list(self._watched):
                self._rotated(watched)
            return
        files = self.files(container_id)
        if name != files.live.name:
            return
        if mask & IN_MOVED_TO:
            self._rotated(container_id)
        elif container_id in self._pulses:
            self._pulses[container_id].fire()

    def _rotated(self, container_id: str) -> None:
        try:
            self.files(container_id).adopt()
        except OSError as exc:  # the bundle is going away
            log.debug("log rotation of %s: %s", container_id[:12], exc)
            return
        self._housekeep(container_id)
        pulse = self._pulses.get(container_id)
        if pulse is not None:
            pulse.fire()

    # pruning and compression ---------------------------------------------------------------

    def _housekeep(self, container_id: str) -> None:
        if container_id in self._jobs:
            self._again.add(container_id)
            return
        policy = self._policies.get(container_id)
        if policy is None:
            return
        task = asyncio.get_running_loop().create_task(self._job(container_id, policy))
        self._jobs[container_id] = task

    async def _job(self, container_id: str, policy: _Policy) -> None:
        try:
            while True:
                self._again.discard(container_id)
                files = self.files(container_id)
                try:
                    await asyncio.to_thread(_tidy, files, policy)
                except OSError as exc:
                    log.warning("log housekeeping of %s: %s", container_id[:12], exc)
                if container_id not in self._again:
                    return
        finally:
            self._jobs.pop(container_id, None)

    # following -----------------------------------------------------------------------------

    def _pulse(self, container_id: str) -> _Pulse:
        return self._pulses.setdefault(container_id, _Pulse())

    @contextlib.contextmanager
    def _following(self, container_id: str) -> Iterator[_Pulse]:
        pulse = self._pulse(container_id)
        pulse.followers += 1
        if pulse.followers == 1:
            self._rewatch(container_id)
        try:
            yield pulse
        finally:
            pulse.followers -= 1
            if pulse.followers == 0 and self._pulses.get(container_id) is pulse:
                self._rewatch(container_id)

    async def follow(
        self,
        container_id: str,
        query: LogQuery,
        *,
        state: Callable[[], tuple[bool, int] | None],
        gone: Callable[[], bool],
    ) -> AsyncIterator[list[LogEntry] | RunEnded]:
        """The log's entries (in batches) from ``query``'s start, then as they come.

        ``state()`` is (running, started_at) of the container, None once it is deleted.
        Ends once the container is deleted and its output read; without ``query.runs`` also
        once it is not running and its output read; once an entry after ``until`` shows or
        ``until`` has passed; or when ``gone()`` says the client left. With ``query.runs``
        a :class:`RunEnded` follows the output of each run, once it is all read.
        """
        files = self.files(container_id)
        with self._following(container_id) as pulse:
            if query.tail == 0:
                reader = LogReader(files, at_end=True)
            else:
                first = await asyncio.to_thread(
                    start_seq, files, since=query.since, tail=query.tail
                )
                reader = LogReader(files, first=first)
            entries = EntryReader(reader, since=query.since, until=query.until)
            try:
                # What is there now: read in a thread (it may be large); tail applies to it.
                keep = collections.deque[LogEntry](maxlen=query.tail) if query.tail > 0 else None
                while (batch := await asyncio.to_thread(entries.read)) is not None:
                    if keep is not None:
                        keep.extend(batch)
                    elif batch:
                        yield batch
                if keep:
                    yield list(keep)
                async for item in _live(entries, query, pulse, state=state, gone=gone):
                    yield item
            finally:
                entries.close()


async def _live(
    entries: EntryReader,
    query: LogQuery,
    pulse: _Pulse,
    *,
    state: Callable[[], tuple[bool, int] | None],
    gone: Callable[[], bool],
) -> AsyncIterator[list[LogEntry] | RunEnded]:
    """The follow after the backlog: new entries as the pulse says they come."""
    marked: int | None = None
    while not entries.ended:
        change = pulse.next()
        now = state()  # before reading: what is read after covers all output up to it
        batch = entries.read(_LIVE_CHUNK)
        if batch is not None:
            if batch:
                yield batch
            await asyncio.sleep(0)  # a chatty container must not hog the loop
            continue
        if now is None or not now[0]:
            if left := entries.flush():
                yield left
            if now is None or not query.runs:
                return
            if now[1] != marked:
                marked = now[1]
                yield RunEnded(started_at=marked)
        timeout = _IDLE_CHECK
        if query.until:
            left_ns = query.until - time.time_ns()
            if left_ns < 0:
                return  # nothing written from now on can be before it
            timeout = min(timeout, left_ns / 1e9 + 0.01)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(change.wait(), timeout)
        if gone():
            return


def _policy(request: CreateRequest) -> _Policy:
    return _Policy(
        max_size=request.log_max_size,
        max_files=max(request.log_max_files, 1),
        compress=request.log_compress,
    )


def _untidy(files: LogFiles, policy: _Policy) -> bool:
    """Whether files are to be pruned or compressed (the current one and a spare are
    always there)."""
    listing = files.listing()
    if len(listing) > policy.max_files + 1:
        return True
    return policy.compress and any(f.gz is None for f in listing[:-2])


def _tidy(files: LogFiles, policy: _Policy) -> None:
    kept = files.prune(policy.max_files)
    if policy.compress:
        for item in kept:
            files.compress(item)


# the request ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunEnded:
    """All output of the run that started at ``started_at`` (ns) has been read."""

    started_at: int


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A logs request on the agent protocol (times in ns, ``tail`` < 0: all)."""

    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    runs: bool = False
    since: int = 0
    until: int = 0
    tail: int = -1
    timestamps: bool = False
    details: bool = False
    attrs: str = ""

    @classmethod
    def from_request(cls, request: web.Request) -> LogQuery:
        query = cls(
            stdout=flag(request, "stdout"),
            stderr=flag(request, "stderr"),
            follow=flag(request, "follow"),
            runs=flag(request, "runs"),
            since=query_int(request, "since"),
            until=query_int(request, "until"),
            tail=query_int(request, "tail", -1),
            timestamps=flag(request, "timestamps"),
            details=flag(request, "details"),
            attrs=request.query.get("attrs", ""),
        )
        if query.since < 0 or query.until < 0:
            raise InvalidArgument("since and until cannot be negative")
        return query


def timestamp(ns: int) -> bytes:
    """Docker's time for log lines: RFC 3339 in UTC with exactly nine fraction digits."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%09dZ" % frac


# the handler ------------------------------------------------------------------------------


class _Encoder:
    def __init__(self, query: LogQuery, *, framed: bool) -> None:
        self._query = query
        self._framed = framed
        # For the controller (runs), one frame per entry: it reads each line's time.
        self._split = not (query.follow and query.runs)
        self._prefix = (query.attrs.encode() + b" ") if query.details else b""
        self._want = {"stdout": query.stdout, "stderr": query.stderr}

    def encode(self, entries: list[LogEntry]) -> bytes:
        out = []
        for entry in entries:
            if not self._want.get(entry.stream):
                continue
            data = self._prefix + entry.data if self._prefix else entry.data
            if self._query.timestamps:
                data = timestamp(entry.time) + b" " + data
            if self._framed:
                data = frame(stream_number(entry.stream), data, split=self._split)
            out.append(data)
        return b"".join(out)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _take(entries: Iterator[LogEntry], encoder: _Encoder) -> bytes:
    """Encoded entries from ``entries`` up to about a batch (b"" at the end)."""
    out = []
    size = 0
    while size < _BATCH:
        batch = list(islice(entries, 256))
        if not batch:
            break
        chunk = encoder.encode(batch)
        out.append(chunk)
        size += len(chunk)
    return b"".join(out)


async def serve_logs(
    request: web.Request,
    keeper: LogKeeper,
    container_id: str,
    *,
    tty: bool,
    state: Callable[[], tuple[bool, int] | None],
) -> web.StreamResponse:
    """Answer a logs request: Docker's framing (raw with a TTY, framed always with ``runs``,
    which adds RUN_END frames)."""
    query = LogQuery.from_request(request)
    framed = not tty or (query.follow and query.runs)
    encoder = _Encoder(query, framed=framed)
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.raw-stream"})
    try:
        await response.prepare(request)
        if not query.follow:
            entries = read_entries(
                keeper.files(container_id), since=query.since, until=query.until, tail=query.tail
            )
            try:
                while chunk := await asyncio.to_thread(_take, entries, encoder):
                    await response.write(chunk)
            finally:
                entries.close()
        else:
            # Each item is one chunk read from the files (or a run's end): written at once,
            # so a follower sees lines as they come.
            async for item in keeper.follow(
                container_id, query, state=state, gone=lambda: _client_gone(request)
            ):
                if isinstance(item, RunEnded):
                    chunk = frame(RUN_END, str(item.started_at).encode())
                else:
                    chunk = encoder.encode(item)
                if chunk:
                    await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went while we wrote
    return response
