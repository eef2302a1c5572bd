"""Opening paths inside a container's root filesystem without ever leaving it.

A container's rootfs belongs to a tenant: ``/etc/passwd`` may be a symlink to
``/etc/shadow``, a directory may be a link to ``/``. Everything the host reads or creates
inside a rootfs goes through :func:`open_in_root`, which uses openat2(2) with
``RESOLVE_IN_ROOT`` so the kernel resolves ``..`` and symlinks as if the rootfs were ``/``.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from dockyard.core.errors import InvalidArgument, NotFound, Unavailable

__all__ = ["makedirs_in_root", "open_in_root", "read_in_root"]

_SYS_OPENAT2 = 437  # x86_64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def _openat2(dirfd: int, path: str, flags: int, mode: int = 0) -> int:
    # openat2 refuses a mode unless it creates something.
    creates = flags & os.O_CREAT or (flags & os.O_TMPFILE) == os.O_TMPFILE
    mode = mode if creates else 0
    how = _OpenHow(flags | os.O_CLOEXEC, mode, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    while True:
        fd = int(
            _libc.syscall(_SYS_OPENAT2, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):
            continue
        raise OSError(err, os.strerror(err), path)


def open_in_root(root: Path, path: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``path`` (absolute or relative, as seen inside the container) under ``root``.

    Returns a file descriptor the caller must close. Raises NotFound if it does not exist.
    """
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _openat2(rootfd, path.lstrip("/") or ".", flags, mode)
    except FileNotFoundError as exc:
        raise NotFound(f"{path}: no such file or directory in container") from exc
    except NotADirectoryError as exc:
        raise NotFound(f"{path}: not a directory in container") from exc
    finally:
        os.close(rootfd)


def read_in_root(root: Path, path: str, *, limit: int = 1 << 20) -> bytes:
    """Read at most ``limit`` bytes of a regular file inside ``root``."""
    fd = open_in_root(root, path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgument(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def makedirs_in_root(root: Path, path: str, *, uid: int, gid: int, mode: int = 0o755) -> None:
    """Create ``path`` and missing parents inside ``root``, owned by ``uid:gid`` (host ids).

    Existing components are kept as they are, whoever owns them.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    dirfd = open_in_root(root, "/", os.O_PATH | os.O_DIRECTORY)
    try:
        for index, part in enumerate(parts):
            if part == "..":
                raise InvalidArgument(f"invalid path {path!r}")
            sub = "/".join(parts[: index + 1])
            try:
                nextfd = open_in_root(root, sub, os.O_PATH | os.O_DIRECTORY)
            except NotFound:
                try:
                    os.mkdir(part, mode, dir_fd=dirfd)
                    os.chown(part, uid, gid, dir_fd=dirfd, follow_symlinks=False)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise Unavailable(f"cannot create {sub} in container: {exc}") from exc
                nextfd = open_in_root(root, sub, os.O_PATH | os.O_DIRECTORY)
            os.close(dirfd)
            dirfd = nextfd
    finally:
        os.close(dirfd)
