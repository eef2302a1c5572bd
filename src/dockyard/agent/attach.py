"""Bridging a client's hijacked stream and conmon's attach socket.

conmon's attach socket is SOCK_SEQPACKET: each packet it sends starts with one byte naming
the pipe (2 stdout, 3 stderr) followed by the data; packets we send are written to the
container's stdin, and shutting down our write side closes it (unless conmon was told to
leave stdin open). Without a TTY the client gets Docker's multiplexed frames; with one,
raw bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

from dockyard.wire.detach import DEFAULT_DETACH_KEYS, EscapeMatcher
from dockyard.wire.framing import STDERR, STDOUT, frame
from dockyard.wire.hijack import HijackedStream, wind_down

__all__ = ["AttachOptions", "connect", "pump"]

_PACKET = 8192 + 1
_CONMON_STDOUT, _CONMON_STDERR = 2, 3


class AttachOptions:
    """Which streams the client wants; ``detach_keys`` end the attach (with a TTY only,
    as in Docker) and leave the process running."""

    __slots__ = ("detach_keys", "stderr", "stdin", "stdout", "tty")

    def __init__(
        self,
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
        detach_keys: bytes = DEFAULT_DETACH_KEYS,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self.detach_keys = detach_keys


async def connect(path: Path) -> socket.socket:
    """Connect to conmon's attach socket at ``path``.

    Bundle paths outgrow sun_path's 108 bytes (``<state>/agent/containers/<64 hex>/attach``),
    so we connect through ``/proc/self/fd/<dir fd>/attach``, which is short whatever the
    directory's real path.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{dirfd}/{path.name}")
    except OSError:
        sock.close()
        raise
    finally:
        os.close(dirfd)
    return sock


async def pump(sock: socket.socket, client: HijackedStream, options: AttachOptions) -> None:
    """Copy both ways until the container's output ends or the client goes away."""
    loop = asyncio.get_running_loop()

    async def output() -> None:
        while True:
            try:
                packet = await loop.sock_recv(sock, _PACKET)
            except OSError:
                return
            if not packet:
                return
            kind, data = packet[0], packet[1:]
            if not data:
                continue
            if kind == _CONMON_STDOUT and options.stdout:
                await client.write(data if options.tty else frame(STDOUT, data))
            elif kind == _CONMON_STDERR and options.stderr:
                await client.write(data if options.tty else frame(STDERR, data))

    async def input_() -> None:
        escape = EscapeMatcher(options.detach_keys) if options.tty else None
        while True:
            data = await client.read()
            if not data:
                break
            detached = False
            if escape is not None:
                data, detached = escape.feed(data)
            for start in range(0, len(data), _PACKET - 1):
                await loop.sock_sendall(sock, data[start : start + _PACKET - 1])
            if detached:
                client.close()  # the client detached: end the attach, not the stdin
                return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    out_task = asyncio.create_task(output())
    in_task = asyncio.create_task(input_()) if options.stdin else None
    closed = asyncio.create_task(client.wait_closed())
    try:
        await asyncio.wait({out_task, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # conmon's socket closes after the tasks end: a cancelled send may still have it
        # registered with the loop.
        wind_down([t for t in (out_task, in_task, closed) if t is not None], then=sock.close)
