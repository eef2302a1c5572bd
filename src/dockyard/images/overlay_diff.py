"""What a container changed: its overlay upper directory compared with its image layers.

``docker diff`` semantics (moby's overlay driver), computed from the host without mounting
anything:

- an entry of the upper dir that no lower layer has is *added*;
- one the layers have is *modified*; a directory only if its mode, owner or mtime differ
  (copied up just because something below it changed, it is not reported by itself);
- a whiteout (a 0/0 character device) of something the layers have is *deleted*;
- an opaque directory (``trusted.overlay.opaque=y``) that replaced a layer directory is
  *modified*, and what the layers had in it is *deleted*;
- a directory holding an added or deleted entry is reported *modified* (not ``/``).

The layers are merged as overlayfs merges them (top first; a whiteout or a non-directory
hides what is below; an opaque directory hides the rest of the stack). Paths in
``ignore`` (and everything below them) are left out, and their ancestors' mtimes are not
compared: they are the runtime's mount points (``/etc/hosts``, ``/proc``, ...), which
Docker keeps in an init layer the container never sees as its own change.

Every lookup is ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` from the layer's or the
upper dir's root: a tenant's symlinks are never followed, and a running container that
changes its files meanwhile only makes entries appear or vanish. Only the directory being
listed is open, so a deep tree costs no descriptors; paths longer than PATH_MAX are skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path

__all__ = ["ChangeKind", "overlay_changes"]

_SYS_OPENAT2 = 437  # x86_64
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_OPAQUE = "trusted.overlay.opaque"
_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class ChangeKind(Enum):
    MODIFIED = "modified"
    ADDED = "added"
    DELETED = "deleted"


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def _open_dir(root: int, path: str) -> int | None:
    """The directory ``path`` below ``root``, through real directories only; None if it is
    not one (missing, a symlink on the way, too long)."""
    how = _OpenHow(
        os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
        0,
        _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_XDEV,
    )
    encoded = os.fsencode(path.lstrip("/") or ".")
    while True:
        fd = int(_libc.syscall(_SYS_OPENAT2, root, encoded, ctypes.byref(how), ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        if ctypes.get_errno() not in (errno.EAGAIN, errno.EINTR):
            return None


def _lstat(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(dirfd: int, name: str) -> bool:
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd
        )
    except OSError:
        return False
    try:
        return os.getxattr(fd, _OPAQUE) == b"y"
    except OSError:
        return False
    finally:
        os.close(fd)


def _same_time(a: int, b: int) -> bool:
    """moby's sameFsTime: equal, or the same second with one side lacking nanoseconds."""
    second = 1_000_000_000
    return a == b or (a // second == b // second and (a % second == 0 or b % second == 0))


class _Diff:
    def __init__(
        self, upper: int, lowers: list[int], *, uid_shift: int, ignore: frozenset[str]
    ) -> None:
        self._upper = upper
        self._lowers = lowers
        self._shift = uid_shift
        self._ignore = ignore
        self._loose_mtime = {
            "/".join(path.split("/")[:index])
            for path in ignore
            for index in range(1, path.count("/") + 1)
        }
        self.changes: dict[str, ChangeKind] = {}

    def run(self) -> None:
        # Directories to visit: (path, layer indexes that contribute to it, top first).
        pending: list[tuple[str, list[int]]] = [("", list(range(len(self._lowers))))]
        while pending:
            path, contributors = pending.pop()
            pending.extend(self._visit(path, contributors))

    @contextlib.contextmanager
    def _opened(
        self, path: str, contributors: list[int]
    ) -> Iterator[tuple[int | None, list[tuple[int, int]]]]:
        """The directory ``path`` in the upper dir and in each contributing layer, as
        ``(layer index, descriptor)`` pairs, top first."""
        upper = _open_dir(self._upper, path)
        lowers = [
            (index, fd)
            for index in contributors
            if (fd := _open_dir(self._lowers[index], path)) is not None
        ]
        try:
            yield upper, lowers
        finally:
            for fd in [upper] if upper is not None else []:
                os.close(fd)
            for _, fd in lowers:
                os.close(fd)

    def _visit(self, path: str, contributors: list[int]) -> list[tuple[str, list[int]]]:
        later: list[tuple[str, list[int]]] = []
        with self._opened(path, contributors) as (upper, lowers):
            if upper is None:
                return later
            try:
                names = sorted(os.listdir(upper))
            except OSError:
                return later
            added_or_deleted = False
            for name in names:
                child = f"{path}/{name}"
                if child in self._ignore:
                    continue
                st = _lstat(upper, name)
                if st is None:
                    continue
                lower, below = self._lookup(lowers, name)
                kind = self._kind(upper, name, child, st, lower)
                if kind is not None:
                    self.changes[child] = kind
                    added_or_deleted |= kind is not ChangeKind.MODIFIED
                if stat.S_ISDIR(st.st_mode):
                    if _is_opaque(upper, name):
                        if lower is not None and stat.S_ISDIR(lower.st_mode):
                            added_or_deleted |= self._deleted_below(child, below, upper, name)
                        below = []
                    later.append((child, below))
            if added_or_deleted and path and path not in self.changes:
                self.changes[path] = ChangeKind.MODIFIED
        return later

    def _kind(
        self,
        upper: int,
        name: str,
        child: str,
        st: os.stat_result,
        lower: os.stat_result | None,
    ) -> ChangeKind | None:
        if _is_whiteout(st):
            return ChangeKind.DELETED if lower is not None else None
        if lower is None:
            return ChangeKind.ADDED
        if stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(lower.st_mode):
            if _is_opaque(upper, name) or not self._same_dir(child, st, lower):
                return ChangeKind.MODIFIED
            return None
        return ChangeKind.MODIFIED

    def _same_dir(self, path: str, st: os.stat_result, lower: os.stat_result) -> bool:
        return (
            stat.S_IMODE(st.st_mode) == stat.S_IMODE(lower.st_mode)
            and st.st_uid - self._shift == lower.st_uid
            and st.st_gid - self._shift == lower.st_gid
            and (path in self._loose_mtime or _same_time(st.st_mtime_ns, lower.st_mtime_ns))
        )

    def _lookup(
        self, lowers: list[tuple[int, int]], name: str
    ) -> tuple[os.stat_result | None, list[int]]:
        """``name`` in the merged layers of the current directory: what it is, and (for a
        directory) which layers contribute to it."""
        found: os.stat_result | None = None
        below: list[int] = []
        for index, fd in lowers:
            st = _lstat(fd, name)
            if st is None:
                continue
            if found is None:
                if _is_whiteout(st):
                    return None, []
                found = st
            elif _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                break
            if not stat.S_ISDIR(st.st_mode):
                break
            below.append(index)
            if _is_opaque(fd, name):
                break
        return found, below

    def _deleted_below(self, path: str, below: list[int], upper: int, name: str) -> bool:
        """Report what the layers had in a directory the container made opaque."""
        kept: set[str] = set()
        with contextlib.suppress(OSError):
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=upper
            )
            try:
                kept = set(os.listdir(fd))
            finally:
                os.close(fd)
        gone: set[str] = set()
        hidden: set[str] = set()
        with self._opened(path, below) as (_, lowers):
            for _, fd in lowers:
                with contextlib.suppress(OSError):
                    for entry in os.listdir(fd):
                        st = _lstat(fd, entry)
                        if st is None or entry in hidden:
                            continue
                        if _is_whiteout(st):
                            hidden.add(entry)
                        else:
                            gone.add(entry)
        reported = False
        for entry in gone - kept:
            child = f"{path}/{entry}"
            if child not in self._ignore:
                self.changes[child] = ChangeKind.DELETED
                reported = True
        return reported


def overlay_changes(
    upper: Path,
    lowers: Sequence[Path],
    *,
    uid_shift: int = 0,
    ignore: frozenset[str] = frozenset(),
) -> list[tuple[str, ChangeKind]]:
    """The changes of ``upper`` over ``lowers`` (layer directories, topmost first), as
    ``(absolute path, kind)`` sorted by path. ``uid_shift`` is added to a layer's owners to
    compare them with the upper dir's (the tenant's base uid). Raises OSError if ``upper``
    cannot be opened; a missing layer counts as empty.
    """
    upper_fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    lower_fds: list[int] = []
    try:
        for layer in lowers:
            with contextlib.suppress(OSError):
                lower_fds.append(os.open(layer, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        diff = _Diff(upper_fd, lower_fds, uid_shift=uid_shift, ignore=ignore)
        diff.run()
    finally:
        for fd in [upper_fd, *lower_fds]:
            os.close(fd)
    return sorted(diff.changes.items())
