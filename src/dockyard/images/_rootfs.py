"""``docker import``: one filesystem tarball becomes a one-layer image."""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from dockyard.core.clock import format_rfc3339, now_ns
from dockyard.core.errors import InvalidArgument, Unavailable
from dockyard.images._model import HOST_ARCH, ImageRecord, canonical_json
from dockyard.images._streams import CHUNK, HashingReader, Readable, decompressed
from dockyard.images.changes import apply_changes
from dockyard.images.content import ContentStore, sha256_digest

__all__ = ["import_rootfs"]


def import_rootfs(
    source: BinaryIO,
    store: ContentStore,
    *,
    changes: Sequence[str] = (),
    message: str = "",
    spool_dir: Path,
    created: int | None = None,
) -> ImageRecord:
    """Store the tarball read from ``source`` as a one-layer image and return its record.

    ``source`` may be gzip, bzip2 or xz compressed (recognised by magic) and need not be
    seekable; it is decompressed, hashed and checked to be a tar archive in one pass, then
    stored uncompressed under its diff id. ``changes`` are Dockerfile instructions applied
    to the config (see :mod:`dockyard.images.changes`); ``message`` becomes the history
    comment (default ``Imported from -``); ``created`` is ns since the epoch (default now).
    The record has no tags: naming the image is the caller's business. ``spool_dir`` is
    accepted for symmetry with :func:`load_archive`; one streaming pass needs no spool.

    Raises InvalidArgument for a bad change or a source that is not a tar archive (nothing
    is stored then) and Unavailable when the disk fails.
    """
    del spool_dir
    container_config = apply_changes({}, changes)
    try:
        with store.writer() as writer:
            raw = HashingReader(source)
            tee = _Tee(decompressed(raw, what="archives"), writer.write)
            try:
                with tarfile.open(fileobj=tee, mode="r|") as tar:  # type: ignore[call-overload]
                    for _ in tar:
                        pass
            except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
                raise InvalidArgument(f"invalid tar archive: {exc}") from exc
            tee.drain()
            layer = writer.commit()
    except OSError as exc:
        if exc.errno is None:  # corrupt gzip/bzip2/xz data
            raise InvalidArgument(f"invalid compressed archive: {exc}") from exc
        raise Unavailable(f"cannot import: {exc}") from exc
    stamp = format_rfc3339(now_ns() if created is None else created)
    comment = message or "Imported from -"
    config = canonical_json(
        {
            "architecture": HOST_ARCH,
            "os": "linux",
            "created": stamp,
            "comment": comment,
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            "history": [{"created": stamp, "created_by": "", "comment": comment}],
        }
    )
    digest = sha256_digest(config)
    store.ingest([config], expected=digest)
    return ImageRecord(
        config_digest=digest,
        config=config,
        diff_ids=(layer.digest,),
        layer_sizes=(layer.size,),
    )


class _Tee:
    """A reader that copies everything it returns to ``sink``."""

    def __init__(self, source: Readable, sink: Callable[[bytes], object]) -> None:
        self._source = source
        self._sink = sink

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._sink(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
