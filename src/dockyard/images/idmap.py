"""Idmapped mounts: show a directory owned by host uids as owned by a tenant's uid range.

A layer on disk belongs to host uid 0 and friends. Mounted idmapped with a user namespace
that maps ``0..size-1`` to ``base..base+size-1``, a file owned by host uid ``n`` appears
owned by ``base + n``, and writes through the mount by ``base + n`` land on disk as ``n``.
The kernel does this at no cost per file (Linux 5.12+, ext4 and tmpfs among others).

The mount is made with the new mount API, through raw syscalls (x86_64 numbers):
``open_tree(OPEN_TREE_CLONE)`` detaches a copy of the source mount, ``mount_setattr`` with
``MOUNT_ATTR_IDMAP`` (and read-only) attaches the user namespace, ``move_mount`` puts it in
place.

A user namespace is referred to by a file descriptor. We get one without forking this
(multi-threaded) process: a tiny ``python3 -I -S`` child calls ``unshare(CLONE_NEWUSER)``,
says so on its stdout, and waits; we write its ``uid_map``/``gid_map``, open
``/proc/<pid>/ns/user`` and let it exit. The descriptor keeps the namespace alive; one is
cached per range for the life of the process.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

from dockyard.core.errors import InvalidArgument, Unavailable

__all__ = ["idmap_mount", "userns_fd"]

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_IDMAP = 0x100000
_MAX_ID = 1 << 32

_CHILD = (
    "import ctypes,os,sys\n"
    "libc=ctypes.CDLL(None,use_errno=True)\n"
    "if libc.unshare(0x10000000)!=0:\n"
    "    sys.exit(ctypes.get_errno() or 1)\n"
    "os.write(1,b'r')\n"
    "os.read(0,1)\n"
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_lock = threading.Lock()
_cache: dict[tuple[int, int], int] = {}


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def userns_fd(uid_base: int, uid_size: int) -> int:
    """A descriptor of a user namespace mapping uids and gids ``0..uid_size-1`` to
    ``uid_base..``; cached per range, owned by this module (do not close it).

    Raises InvalidArgument for an impossible range and Unavailable if the kernel refuses.
    """
    if uid_base < 1 or uid_size < 1 or uid_base + uid_size > _MAX_ID:
        raise InvalidArgument(f"invalid uid range {uid_base}+{uid_size}")
    key = (uid_base, uid_size)
    with _lock:
        fd = _cache.get(key)
        if fd is None:
            fd = _cache[key] = _new_userns(uid_base, uid_size)
        return fd


def _new_userns(uid_base: int, uid_size: int) -> int:
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
        )
    except OSError as exc:
        raise Unavailable(f"cannot start a user namespace helper: {exc}") from exc
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.read(1) != b"r":
            status = child.wait()
            raise Unavailable(f"cannot create a user namespace: {os.strerror(status)}")
        mapping = f"0 {uid_base} {uid_size}\n".encode()
        try:
            Path(f"/proc/{child.pid}/uid_map").write_bytes(mapping)
            Path(f"/proc/{child.pid}/gid_map").write_bytes(mapping)
            return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise Unavailable(f"cannot map uids {uid_base}+{uid_size}: {exc}") from exc
    finally:
        child.stdin.close()
        child.stdout.close()
        child.wait()


def _syscall(number: int, *args: object) -> int:
    result = int(_libc.syscall(number, *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def idmap_mount(source: Path, target: Path, *, userns_fd: int) -> None:
    """Mount ``source`` read-only at ``target`` (created if missing), idmapped through the
    user namespace ``userns_fd``.

    Raises Unavailable if the kernel refuses (e.g. a filesystem without idmap support);
    ``target`` is left unmounted then.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        tree = _syscall(
            _SYS_OPEN_TREE,
            ctypes.c_int(_AT_FDCWD),
            os.fsencode(source),
            ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC),
        )
    except OSError as exc:
        raise Unavailable(f"open_tree({source}): {exc.strerror}") from exc
    try:
        attr = _MountAttr(_MOUNT_ATTR_IDMAP | _MOUNT_ATTR_RDONLY, 0, 0, userns_fd)
        _syscall(
            _SYS_MOUNT_SETATTR,
            ctypes.c_int(tree),
            b"",
            ctypes.c_uint(_AT_EMPTY_PATH),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        _syscall(
            _SYS_MOVE_MOUNT,
            ctypes.c_int(tree),
            b"",
            ctypes.c_int(_AT_FDCWD),
            os.fsencode(target),
            ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
        )
    except OSError as exc:
        hint = " (filesystem without idmapped mounts?)" if exc.errno == errno.EINVAL else ""
        raise Unavailable(f"idmapped mount of {source} at {target}: {exc.strerror}{hint}") from exc
    finally:
        os.close(tree)
