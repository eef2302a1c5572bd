"""Stream helpers shared by the archive code: hashing readers and decompression by magic.

Compression is recognised by its magic number, as Docker does, not by a file name or media
type: gzip, bzip2 and xz are decompressed on the fly; zstd is recognised and refused.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol

from dockyard.core.errors import InvalidArgument

__all__ = [
    "CHUNK",
    "HashingReader",
    "Readable",
    "copy_stream",
    "decompressed",
    "detect_compression",
]

CHUNK = 1 << 20
_MAGIC = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class Readable(Protocol):
    """Anything with a binary ``read``."""

    def read(self, size: int = -1, /) -> bytes: ...


def detect_compression(head: bytes) -> str:
    """``gzip``, ``bzip2``, ``xz``, ``zstd`` or ``""`` (none) from the first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return ""


class HashingReader:
    """Reads from ``source`` while hashing and counting the bytes, with a push-back
    buffer so a caller can sniff the first bytes and read them again."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._pending = b""
        self.hash = hashlib.sha256()
        self.count = 0

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes from the start of what is not yet read (short only at EOF)."""
        while len(self._pending) < size:
            data = self._raw_read(size - len(self._pending))
            if not data:
                break
            self._pending += data
        return self._pending[:size]

    def read(self, size: int = -1, /) -> bytes:
        if self._pending:
            if size < 0 or size >= len(self._pending):
                data, self._pending = self._pending, b""
                if size < 0:
                    data += self._drain()
                return data
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        if size < 0:
            return self._drain()
        return self._raw_read(size)

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0, /) -> int:
        raise io.UnsupportedOperation("seek")

    def drain(self) -> None:
        """Read (and hash) everything left in the source."""
        self._pending = b""
        while self._raw_read(CHUNK):
            pass

    def _drain(self) -> bytes:
        parts = []
        while chunk := self._raw_read(CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def _raw_read(self, size: int) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data


def decompressed(source: HashingReader, *, what: str = "layers") -> Readable:
    """A reader of ``source``'s content, decompressed if its magic says so.

    zstd raises InvalidArgument ("zstd-compressed <what> are not supported"). Errors in
    the compressed data surface from ``read`` and become InvalidArgument in
    :func:`copy_stream`.
    """
    kind = detect_compression(source.peek(6))
    if kind == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(source)
    if kind == "xz":
        return lzma.LZMAFile(source)  # type: ignore[arg-type]  # typeshed wants IO[bytes]
    if kind == "zstd":
        raise InvalidArgument(f"zstd-compressed {what} are not supported")
    return source


def copy_stream(source: Readable, sink: Callable[[bytes], object]) -> int:
    """Copy ``source`` to ``sink`` in chunks; return the byte count.

    Corrupt compressed data (gzip, bzip2, xz) raises InvalidArgument.
    """
    total = 0
    try:
        while chunk := source.read(CHUNK):
            sink(chunk)
            total += len(chunk)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        # gzip.BadGzipFile is an OSError; a truncated stream is an EOFError.
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise InvalidArgument(f"corrupt compressed data: {exc}") from exc
    return total
