"""Driving one archive child (:mod:`archive_child`) from the agent's event loop.

Lifecycle::

    child = await ArchiveProcess.start(request)   # spawned; nothing read yet
    payload = await child.answer()                # the status line; raises its error kind
    async for chunk in child.chunks(): ...        # get / export: the tar
    await child.feed(body) ; await child.answer() # put: the upload, then the verdict
    await child.close()                           # always: kills it if still running

:meth:`ArchiveProcess.kill` may be called at any time (a deletion of the container does);
the operation then fails with Unavailable. A child that dies without its status line, or
in the middle of a tar, is reported as Unavailable with what it wrote on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dockyard.core.errors import Unavailable, from_wire
from dockyard.core.serde import to_data
from dockyard.runtime.archive_child import MAX_FRAME, ArchiveRequest

__all__ = ["ArchiveProcess"]

log = logging.getLogger("dockyard.runtime")
_CHUNK = 1 << 20
_STDERR_LIMIT = 4096
# The child must run the code this process runs, wherever it was imported from.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT, env.get("PYTHONPATH"))))
    return env


class ArchiveProcess:
    """One running archive child."""

    def __init__(self, process: asyncio.subprocess.Process, op: str) -> None:
        self._process = process
        self._op = op
        self._stderr = b""

    @classmethod
    async def start(cls, request: ArchiveRequest) -> ArchiveProcess:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-S",  # stdlib and dockyard only: no site-packages to scan
                "-m",
                "dockyard.runtime.archive_child",
                json.dumps(to_data(request)),
                stdin=asyncio.subprocess.PIPE
                if request.op == "put"
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd="/",
                env=_child_env(),
                limit=1 << 20,
            )
        except OSError as exc:
            raise Unavailable(f"cannot start the archive process: {exc}") from exc
        return cls(process, request.op)

    async def answer(self) -> dict[str, Any]:
        """The child's status line: its payload, or its error raised as its kind."""
        assert self._process.stdout is not None
        try:
            line = await self._process.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise Unavailable(f"archive {self._op}: malformed answer") from exc
        if not line.endswith(b"\n"):
            raise await self._failure()
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise Unavailable(f"archive {self._op}: malformed answer {line[:200]!r}") from exc
        if "error" in data:
            raise from_wire(data["error"])
        payload: dict[str, Any] = data.get("ok") or {}
        return payload

    async def chunks(self) -> AsyncIterator[bytes]:
        """The rest of stdout (a tar), then a check that the child ended well."""
        assert self._process.stdout is not None
        while chunk := await self._process.stdout.read(_CHUNK):
            yield chunk
        if await self._process.wait() != 0:
            raise await self._failure()

    async def feed(self, body: AsyncIterator[bytes]) -> None:
        """Send the upload framed, then the end frame. Exceptions of ``body`` (the client
        went away) propagate and the child, never seeing the end frame, writes nothing.
        If the child stops reading (it failed early), the rest of ``body`` is still read,
        so the caller's HTTP exchange stays whole, and :meth:`answer` says why."""
        stdin = self._process.stdin
        assert stdin is not None
        listening = True
        async for chunk in body:
            if not listening:
                continue
            for start in range(0, len(chunk), MAX_FRAME):
                piece = chunk[start : start + MAX_FRAME]
                if piece:
                    listening = await self._write(stdin, len(piece).to_bytes(4, "big") + piece)
        if listening and await self._write(stdin, b"\0\0\0\0"):
            with contextlib.suppress(OSError):
                stdin.close()

    async def _write(self, stdin: asyncio.StreamWriter, data: bytes) -> bool:
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def kill(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def close(self) -> None:
        """Kill the child if it still runs and reap it.

        asyncio's ``wait()`` returns only once every pipe has seen its end, and a reader
        nobody consumed is paused and never does: what the dead child left in its pipes is
        read and dropped first.
        """
        self.kill()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError, ValueError):
                    while await pipe.read(_CHUNK):
                        pass
        await self._process.wait()

    async def _failure(self) -> Unavailable:
        """The child ended without its answer or mid-stream. What it wrote on stderr (a
        traceback with host paths, perhaps) goes to the log, not to the tenant."""
        self.kill()
        assert self._process.stderr is not None
        with contextlib.suppress(OSError, ValueError):
            self._stderr = (await self._process.stderr.read())[-_STDERR_LIMIT:]
        code = await self._process.wait()
        log.warning(
            "archive %s child failed (status %s): %s",
            self._op,
            code,
            self._stderr.decode(errors="replace").strip(),
        )
        return Unavailable(f"archive {self._op} failed (status {code}); see the agent's log")
