"""Content-addressed blob storage: one file per sha256 digest.

Layout under ``root``::

    sha256/<hex>     committed blobs, never modified once renamed into place
    tmp/             blobs being written; a crash leaves files here, never in sha256/

A blob is written to a temporary file, hashed on the way, and renamed into ``sha256/`` only
once its digest is known (and, if the caller expected one, matched). Readers therefore see
either a complete, verified blob or nothing. Two writers of the same content race benignly:
both rename identical bytes onto the same name.

Digest strings are validated (``sha256:`` followed by 64 lowercase hex digits) before any
path is built from them, so a digest taken from a hostile manifest cannot name a file
outside ``root``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dockyard.core.errors import InvalidArgument, NotFound, Unavailable

__all__ = ["Blob", "BlobWriter", "ContentStore", "digest_hex", "sha256_digest"]

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_CHUNK = 1 << 20


def digest_hex(digest: str) -> str:
    """Return the hex part of ``sha256:<hex>``; raise InvalidArgument for anything else."""
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return match.group(1)


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Blob:
    """A committed blob: its digest (``sha256:<hex>``) and size in bytes."""

    digest: str
    size: int


class BlobWriter:
    """Writes one blob into a :class:`ContentStore`.

    Use as a context manager: :meth:`write` any number of times, then :meth:`commit`. Leaving
    the ``with`` block without committing (normally or by an exception) removes the temporary
    file, so an abandoned write leaves nothing behind. After :meth:`commit` or :meth:`abort`
    the writer is closed and further writes raise ValueError.
    """

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        tmp_dir = store.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def digest(self) -> str:
        """The digest of the bytes written so far."""
        return "sha256:" + self._hash.hexdigest()

    @property
    def size(self) -> int:
        """The number of bytes written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        """Append ``data`` to the blob."""
        if self._file is None:
            raise ValueError("blob writer is closed")
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def commit(self, expected: str | None = None) -> Blob:
        """Move the blob into the store under its digest and return it.

        If ``expected`` is given and the content does not hash to it, the temporary file is
        removed and InvalidArgument is raised: nothing is stored.
        """
        if self._file is None:
            raise ValueError("blob writer is closed")
        if expected is not None:
            digest_hex(expected)
        self._file.close()
        self._file = None
        digest = self.digest
        if expected is not None and expected != digest:
            self._discard()
            raise InvalidArgument(f"content digest mismatch: expected {expected}, got {digest}")
        target = self._store.path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.rename(target)
        except OSError as exc:
            self._discard()
            raise Unavailable(f"cannot store blob {digest}: {exc.strerror}") from exc
        return Blob(digest=digest, size=self._size)

    def abort(self) -> None:
        """Discard what was written. Idempotent; harmless after :meth:`commit`."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class ContentStore:
    """Blobs by digest under ``root`` (created if missing). Safe for concurrent use by
    threads and processes: every mutation is a rename or an unlink."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        return self.root / "sha256" / digest_hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """Size in bytes of a stored blob; NotFound if absent."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def open(self, digest: str) -> BinaryIO:
        """Open a stored blob for reading (the caller closes it); NotFound if absent."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def read(self, digest: str) -> bytes:
        """The whole blob in memory (for small blobs such as configs); NotFound if absent."""
        with self.open(digest) as blob:
            return blob.read()

    def writer(self) -> BlobWriter:
        """A new :class:`BlobWriter` into this store."""
        return BlobWriter(self)

    def ingest(self, source: BinaryIO | Iterable[bytes], *, expected: str | None = None) -> Blob:
        """Store everything read from ``source`` (a binary file or an iterable of chunks).

        Atomic: on any error, including an ``expected`` digest that does not match
        (InvalidArgument), nothing is left in the store.
        """
        with self.writer() as writer:
            for chunk in _chunks(source):
                writer.write(chunk)
            return writer.commit(expected)

    def delete(self, digest: str) -> None:
        """Remove a blob; no error if it is absent."""
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[str]:
        """Every stored digest, in no particular order."""
        for entry in os.scandir(self.root / "sha256"):
            if _DIGEST.match("sha256:" + entry.name) and entry.is_file(follow_symlinks=False):
                yield "sha256:" + entry.name


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while chunk := read(_CHUNK):
        yield chunk
