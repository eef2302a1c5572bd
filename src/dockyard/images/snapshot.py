"""Container root filesystems: idmapped layers stacked with overlayfs.

For a container of a tenant whose uids start at ``uid_base``::

    idmapped_root/<uid_base>/<layerhex>   one read-only idmapped mount per (tenant, layer),
                                          shared by all the tenant's containers
    target                                overlay: lowerdir = those mounts (top first),
                                          upperdir/workdir owned by uid_base

Files owned by host uid 0 in a layer appear owned by ``uid_base`` in the container's view
(its root, once the container's user namespace maps ``0 -> uid_base``), and whatever the
container writes lands in the upper dir owned by its host uids. Layers are never copied or
chowned.

Idmapped mounts outlive this process (they are found again in ``/proc/self/mountinfo``) and
are released explicitly with :meth:`Snapshotter.release_idmaps`; a running overlay holds its
own references to its lower layers, so releasing never disturbs a running container. Each
``uid_base`` is assumed to always come with the same ``uid_size`` (tenant ranges are fixed).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard.core.errors import InvalidArgument, NotFound, Unavailable
from dockyard.images.content import digest_hex
from dockyard.images.idmap import idmap_mount, userns_fd
from dockyard.images.layers import LayerStore

__all__ = ["Snapshotter", "is_mount_root", "mountpoints"]

_MNT_DETACH = 2
_FORBIDDEN = re.compile(r"[,:\\\n]")
_ESCAPE = re.compile(r"\\([0-7]{3})")
# redirect_dir=off: a renamed lower directory is copied up whole (the rename fails with
# EXDEV and tools fall back to copying) instead of recorded as a redirect xattr, so the
# upper dir alone says what changed: docker diff and commit read it (ADR 0017).
_OVERLAY_EXTRA = "index=off,metacopy=off,redirect_dir=off"

_libc = ctypes.CDLL(None, use_errno=True)


_STATX_ATTR_MOUNT_ROOT = 0x2000
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_ATTRIBUTES = 8  # offset of stx_attributes in struct statx
_STATX_ATTRIBUTES_MASK = 56  # offset of stx_attributes_mask


def is_mount_root(path: Path) -> bool:
    """Whether ``path`` is the root of a mount (statx's STATX_ATTR_MOUNT_ROOT, Linux 5.8;
    older kernels: whether mountinfo lists it). False if it does not exist."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statx(-100, os.fsencode(path), _AT_SYMLINK_NOFOLLOW, 0, buf) != 0:  # AT_FDCWD
        code = ctypes.get_errno()
        if code in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise Unavailable(f"statx {path}: {os.strerror(code)}")
    supported = int.from_bytes(
        buf.raw[_STATX_ATTRIBUTES_MASK : _STATX_ATTRIBUTES_MASK + 8], "little"
    )
    if not supported & _STATX_ATTR_MOUNT_ROOT:
        return str(path) in mountpoints()
    attributes = int.from_bytes(buf.raw[_STATX_ATTRIBUTES : _STATX_ATTRIBUTES + 8], "little")
    return bool(attributes & _STATX_ATTR_MOUNT_ROOT)


def mountpoints() -> set[str]:
    """Every mount point of this process's mount namespace (from /proc/self/mountinfo)."""
    with open("/proc/self/mountinfo", "rb") as info:
        lines = info.read().decode("utf-8", "surrogateescape").splitlines()
    return {
        _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split(" ")[4])
        for line in lines
        if line.count(" ") >= 4
    }


class Snapshotter:
    """Mounts container root filesystems from a :class:`LayerStore`.

    ``idmapped_root`` (created if missing) holds the idmapped layer mounts. Safe for
    concurrent use by threads and processes: work on one ``uid_base`` is serialised by a
    lock file ``idmapped_root/<uid_base>.lock``.
    """

    def __init__(self, layers: LayerStore, idmapped_root: Path) -> None:
        self._layers = layers
        idmapped_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mountinfo shows canonical paths; compare like with like.
        self._root = Path(os.path.realpath(idmapped_root))

    def idmapped_path(self, uid_base: int, diff_id: str) -> Path:
        """Where layer ``diff_id`` is mounted idmapped for the range starting at ``uid_base``."""
        return self._root / str(uid_base) / digest_hex(diff_id)

    def mount_rootfs(
        self,
        *,
        layers: Sequence[str],
        uid_base: int,
        uid_size: int,
        upper: Path,
        work: Path,
        target: Path,
    ) -> None:
        """Mount the overlay of ``layers`` (diff ids, bottom first) at ``target``.

        Makes the missing idmapped layer mounts, creates ``upper`` and ``work`` (owned by
        ``uid_base``, mode 0755) and ``target`` if absent. Raises NotFound if a layer is not
        unpacked, InvalidArgument for paths overlayfs cannot take or a layer stack too long
        for one page of mount options, Unavailable if the kernel refuses. On failure nothing
        this call made is left: no mount, no directory.
        """
        if not layers:
            raise InvalidArgument("a root filesystem needs at least one layer")
        for path in (upper, work):
            if not path.is_absolute() or _FORBIDDEN.search(str(path)):
                raise InvalidArgument(f"unusable overlay path {str(path)!r}")
        # A layer listed twice (empty layers often are) only counts at its topmost place:
        # the lower copy is entirely shadowed by the identical upper one.
        top_first = list(dict.fromkeys(reversed(layers)))
        lowers = [self.idmapped_path(uid_base, d) for d in top_first]
        options = (
            f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work},"
            f"{_OVERLAY_EXTRA}"
        )
        if len(options.encode()) >= os.sysconf("SC_PAGE_SIZE"):
            raise InvalidArgument(f"too many layers ({len(layers)}) for one overlay mount")
        for diff_id in top_first:
            if not self._layers.has(diff_id):
                raise NotFound(f"layer {diff_id} is not unpacked on this host")
        made_mounts: list[Path] = []
        made_dirs: list[Path] = []
        with self._locked(uid_base):
            try:
                self._ensure_idmaps(top_first, uid_base, uid_size, made_mounts)
                for path in (upper, work, target):
                    made_dirs.extend(_makedirs(path))
                for path in (upper, work):
                    os.chown(path, uid_base, uid_base)
                    path.chmod(0o755)
                _mount_overlay(target, options)
            except BaseException:
                for mount in made_mounts:
                    _unmount(mount)
                    with contextlib.suppress(OSError):
                        mount.rmdir()
                for path in reversed(made_dirs):
                    shutil.rmtree(path, ignore_errors=True)
                raise

    def unmount_rootfs(self, target: Path) -> None:
        """Lazily unmount the overlay at ``target``; fine if nothing is mounted there."""
        _unmount(target)

    def release_idmaps(self, uid_base: int, keep: set[str]) -> None:
        """Unmount the idmapped layers of ``uid_base`` except those in ``keep`` (diff ids).

        Running containers keep working: their overlays hold their own references.
        """
        keep_hex = {digest_hex(diff_id) for diff_id in keep}
        base_dir = self._root / str(uid_base)
        with self._locked(uid_base):
            mounted = mountpoints()
            for point in sorted(mounted):
                path = Path(point)
                if path.parent == base_dir and path.name not in keep_hex:
                    _unmount(path)
            if base_dir.is_dir():
                still_mounted = mountpoints()
                for entry in base_dir.iterdir():
                    if entry.name not in keep_hex and str(entry) not in still_mounted:
                        with contextlib.suppress(OSError):
                            entry.rmdir()

    def _ensure_idmaps(
        self, layers: Sequence[str], uid_base: int, uid_size: int, made: list[Path]
    ) -> None:
        # Asked per path, not by reading mountinfo: that file grows with every
        # container's mounts, and reading it cost each create time in proportion.
        for diff_id in layers:
            lower = self.idmapped_path(uid_base, diff_id)
            source = self._layers.path(diff_id)
            if is_mount_root(lower):
                if _same_inode(lower, source):
                    continue
                _unmount(lower)  # the layer was unpacked again since: remount it
            idmap_mount(source, lower, userns_fd=userns_fd(uid_base, uid_size))
            made.append(lower)

    @contextlib.contextmanager
    def _locked(self, uid_base: int) -> Iterator[None]:
        fd = os.open(self._root / f"{uid_base}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _same_inode(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _makedirs(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; return what was created, outermost first."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
    return list(reversed(missing))


def _mount_overlay(target: Path, options: str) -> None:
    result = _libc.mount(
        b"overlay", os.fsencode(target), b"overlay", ctypes.c_ulong(0), options.encode()
    )
    if result != 0:
        code = ctypes.get_errno()
        raise Unavailable(f"overlay mount at {target}: {os.strerror(code)}")


def _unmount(target: Path) -> None:
    if _libc.umount2(os.fsencode(target), ctypes.c_int(_MNT_DETACH)) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            raise Unavailable(f"unmount {target}: {os.strerror(code)}")
