"""Docker's multiplexed stream: 8-byte header ``[stream, 0, 0, 0, size (big-endian u32)]``.

Used when a container has no TTY: stream 0 is stdin, 1 stdout, 2 stderr, 3 the "system
error" stream Docker uses to report a failure mid-stream. :data:`RUN_END` is ours, on the
agent protocol only (never sent to Docker clients).
"""

from __future__ import annotations

import struct

__all__ = [
    "RUN_END",
    "STDERR",
    "STDIN",
    "STDOUT",
    "SYSERR",
    "FrameReader",
    "frame",
    "stream_number",
]

STDIN, STDOUT, STDERR, SYSERR = 0, 1, 2, 3
RUN_END = 0x80
"""In an agent's following log stream: all output of the run that started at the payload's
time (ns since the epoch, decimal ASCII) has been sent before this frame."""
_HEADER = struct.Struct(">BxxxL")
_MAX_FRAME = 1 << 20


def stream_number(name: str) -> int:
    return STDERR if name == "stderr" else STDOUT


def frame(stream: int, data: bytes, *, split: bool = True) -> bytes:
    """One frame per call; large payloads are split so no frame exceeds 1 MiB, unless
    ``split`` is false (one frame whatever the size: a receiver that needs each payload
    whole, like the controller reading an agent's log stream)."""
    if len(data) <= _MAX_FRAME or not split:
        return _HEADER.pack(stream, len(data)) + data
    return b"".join(
        _HEADER.pack(stream, len(data[i : i + _MAX_FRAME])) + data[i : i + _MAX_FRAME]
        for i in range(0, len(data), _MAX_FRAME)
    )


class FrameReader:
    """Incremental decoder: feed bytes, get ``(stream, payload)`` pairs."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        out = []
        while len(self._buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            out.append((stream, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return out
