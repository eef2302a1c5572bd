"""The agent's per-host layer store: each layer unpacked once, shared by every container.

Layout under ``root``::

    <hex>/diff          the unpacked layer (hex of its diff id), in overlayfs format
    <hex>/layer.json    {"diff_id": ..., "size": ...} written at unpack time
    .locks/<hex>        flock(2) files serialising the unpack and removal of one layer
    .tmp-<hex>-*        an unpack in progress (or left by a crash; removed under the lock)
    .trash-*            a removal in progress (or left by a crash; removed at start-up)

``<hex>`` appears only by renaming a finished ``.tmp-`` directory, so its presence means
the layer is complete and verified. Unpacking is done by a child process
(:mod:`dockyard.images.unpack`) that chroots into the new ``diff`` directory: a hostile
layer cannot write outside it. The parent streams the blob into the child while hashing it
and refuses the result unless the bytes hash to the diff id.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from dockyard.core.errors import InvalidArgument, NotFound, Unavailable
from dockyard.images.content import digest_hex
from dockyard.images.unpack import EXIT_INVALID, EXIT_OK

__all__ = ["BlobOpener", "LayerStore"]

BlobOpener = Callable[[], AbstractContextManager[BinaryIO]]
_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
_META = "layer.json"


class LayerStore:
    """Unpacked layers under ``root`` (created if missing).

    Safe for concurrent use by threads and processes sharing ``root``. Removing a layer
    that an idmapped mount or a running container still uses is the caller's mistake to
    avoid (the snapshotter's :meth:`~dockyard.images.snapshot.Snapshotter.release_idmaps`
    says which are in use).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / ".locks").mkdir(exist_ok=True, mode=0o700)
        for trash in root.glob(".trash-*"):
            shutil.rmtree(trash, ignore_errors=True)

    def path(self, diff_id: str) -> Path:
        """The ``diff`` directory of a layer (whether or not it is unpacked)."""
        return self.root / digest_hex(diff_id) / "diff"

    def has(self, diff_id: str) -> bool:
        return (self.root / digest_hex(diff_id) / _META).is_file()

    def size(self, diff_id: str) -> int:
        """Bytes of regular files in the layer, recorded at unpack time; NotFound if absent."""
        try:
            meta = json.loads((self.root / digest_hex(diff_id) / _META).read_bytes())
        except FileNotFoundError as exc:
            raise NotFound(f"layer {diff_id} is not unpacked") from exc
        return int(meta["size"])

    def ensure(self, diff_id: str, open_blob: BlobOpener) -> Path:
        """Unpack the layer if it is not yet here; return its ``diff`` directory.

        ``open_blob`` is called at most once, to get the uncompressed layer tar as a context
        manager (``lambda: store.open(diff_id)`` for a ContentStore). Concurrent callers for
        one layer wait for a single unpack. Raises InvalidArgument if the bytes do not hash to
        ``diff_id`` or are not a valid layer (nothing is kept), Unavailable when the disk or
        the unpack process fails, and whatever ``open_blob`` raises.
        """
        hex_id = digest_hex(diff_id)
        if self.has(diff_id):
            return self.path(diff_id)
        with self._locked(hex_id):
            if self.has(diff_id):
                return self.path(diff_id)
            for stale in self.root.glob(f".tmp-{hex_id}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".tmp-{hex_id}-", dir=self.root))
            try:
                diff = work / "diff"
                diff.mkdir(mode=0o755)
                size = _unpack(diff_id, diff, open_blob)
                meta = json.dumps({"diff_id": diff_id, "size": size})
                (work / _META).write_text(meta)
                final = self.root / hex_id
                if final.exists():  # not a complete layer (has() was false): debris
                    shutil.rmtree(final)
                work.rename(final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        return self.path(diff_id)

    def remove(self, diff_id: str) -> None:
        """Delete an unpacked layer; no error if it is absent."""
        hex_id = digest_hex(diff_id)
        with self._locked(hex_id):
            final = self.root / hex_id
            if not final.exists():
                return
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
            final.rename(trash / hex_id)
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self, hex_id: str) -> Iterator[None]:
        fd = os.open(self.root / ".locks" / hex_id, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def list(self) -> builtins.list[str]:
        """Diff ids of every unpacked layer, sorted."""
        return sorted(
            f"sha256:{entry.name}"
            for entry in os.scandir(self.root)
            if _HEX.match(entry.name) and (Path(entry.path) / _META).is_file()
        )


def _unpack(diff_id: str, diff: Path, open_blob: BlobOpener) -> int:
    """Stream the blob into an unpack child jailed in ``diff``; return the layer's size."""
    with tempfile.TemporaryFile() as errors:
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "dockyard.images.unpack", str(diff)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd="/",
            )
        except OSError as exc:
            raise Unavailable(f"cannot start the layer unpacker: {exc}") from exc
        assert child.stdin is not None and child.stdout is not None
        digest = hashlib.sha256()
        complete = False
        try:
            with open_blob() as blob:
                while chunk := blob.read(_CHUNK):
                    digest.update(chunk)
                    child.stdin.write(chunk)
                complete = True
            child.stdin.close()
            output = child.stdout.read()
            status = child.wait()
        except BrokenPipeError:
            status = child.wait()  # the child gave up early; its status says why
            output = b""
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            for pipe in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
        errors.seek(0)
        message = errors.read(4096).decode(errors="replace").strip()
    if status == EXIT_INVALID:
        raise InvalidArgument(f"invalid layer {diff_id}: {message}")
    if status != EXIT_OK:
        raise Unavailable(f"cannot unpack layer {diff_id}: {message or f'status {status}'}")
    if not complete or "sha256:" + digest.hexdigest() != diff_id:
        raise InvalidArgument(
            f"layer content does not match its digest: expected {diff_id}, "
            f"got sha256:{digest.hexdigest()}"
        )
    try:
        return int(json.loads(output)["size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Unavailable(f"layer unpacker answered {output[:200]!r}") from exc
