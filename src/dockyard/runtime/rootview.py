"""A private view of a container's root filesystem, for host-side file work (``docker cp``).

:func:`enter_root_view` turns the *calling process* into one that sees the container's
files as the container does, and nothing of the host::

    prctl(PR_SET_PDEATHSIG, SIGKILL)     die with the agent
    unshare(CLONE_NEWNS)                 a private copy of the host's mount table
    mount --make-rslave /                nothing done here propagates to the host
    bind the rootfs onto itself          (pivot_root needs a mount point)
    bind each volume and /etc file       onto its target inside the rootfs, the target
                                         resolved with openat2(RESOLVE_IN_ROOT): a tenant's
                                         symlink cannot aim a mount outside the rootfs
    pivot_root, detach the old root      the rootfs is "/"; the host's tree is gone from
                                         this namespace, so no path, symlink, ".." or
                                         hard link can reach a host file any more
    nodev, nosuid, noexec on every mount device nodes in the rootfs cannot be opened,
                                         even by root (an image may ship /dev/sda)

It unshares, so it must run in a single-threaded child process: the agent never calls it,
the archive child (:mod:`archive_child`) does, before it reads a byte of tenant data.
Everything it needs is imported before the pivot. tmpfs mounts of a running container are
not part of the view (as in Docker): paths below them resolve to the rootfs underneath.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.errors import DockyardError, NotFound, Unavailable
from dockyard.runtime.safepath import makedirs_in_root, open_in_root

__all__ = ["Bind", "enter_root_view"]

_CLONE_NEWNS = 0x00020000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19
_MNT_DETACH = 2
_PR_SET_PDEATHSIG = 1
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_SYS_PIVOT_ROOT = 155
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


@dataclass(frozen=True, slots=True)
class Bind:
    """Show host path ``source`` (a directory, or a file when ``directory`` is false) at
    ``target`` inside the container, as the container's mounts do."""

    source: str
    target: str
    read_only: bool = False
    directory: bool = True


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise Unavailable(f"{what}: {os.strerror(code)}")
    return result


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(
        _libc.mount(
            None if source is None else os.fsencode(source),
            os.fsencode(target),
            None,
            ctypes.c_ulong(flags),
            None,
        ),
        f"mount {target}",
    )


def _set_attributes(dirfd: int, path: str, attributes: int, *, recursive: bool) -> None:
    attr = _MountAttr(attributes, 0, 0, 0)
    flags = (_AT_EMPTY_PATH if not path else 0) | (_AT_RECURSIVE if recursive else 0)
    _check(
        _libc.syscall(
            _SYS_MOUNT_SETATTR,
            ctypes.c_int(dirfd),
            os.fsencode(path),
            ctypes.c_uint(flags),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        ),
        f"mount_setattr {path or dirfd}",
    )


def enter_root_view(
    rootfs: Path, binds: Sequence[Bind], *, read_only_root: bool, owner: int
) -> None:
    """Make ``rootfs`` (with ``binds`` on it) this process's ``/``; see the module doc.

    ``owner`` (a host uid, the container's root) owns mount targets that have to be
    created, as the runtime would create them. A bind whose target exists with the wrong
    type is left out (the container cannot have it either). Raises Unavailable if the
    kernel refuses a step; the process is then unusable and should exit.
    """
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", _MS_REC | _MS_SLAVE)
    _mount(str(rootfs), str(rootfs), _MS_BIND)
    # Parents first, so a volume inside another volume lands inside it.
    for bind in sorted(binds, key=lambda b: b.target.rstrip("/").count("/")):
        _attach(rootfs, bind, owner)
    _pivot(rootfs)
    _set_attributes(
        _AT_FDCWD,
        "/",
        _MOUNT_ATTR_NODEV | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NOEXEC,
        recursive=True,
    )
    if read_only_root:
        _set_attributes(_AT_FDCWD, "/", _MOUNT_ATTR_RDONLY, recursive=False)


def _attach(rootfs: Path, bind: Bind, owner: int) -> None:
    target = _mount_target(rootfs, bind, owner)
    if target is None:
        return
    try:
        tree = _check(
            _libc.syscall(
                _SYS_OPEN_TREE,
                ctypes.c_int(_AT_FDCWD),
                os.fsencode(bind.source),
                ctypes.c_uint(_OPEN_TREE_CLONE | os.O_CLOEXEC),
            ),
            f"open_tree {bind.source}",
        )
        try:
            if bind.read_only:
                _set_attributes(tree, "", _MOUNT_ATTR_RDONLY, recursive=False)
            _check(
                _libc.syscall(
                    _SYS_MOVE_MOUNT,
                    ctypes.c_int(tree),
                    b"",
                    ctypes.c_int(target),
                    b"",
                    ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH),
                ),
                f"move_mount onto {bind.target}",
            )
        finally:
            os.close(tree)
    finally:
        os.close(target)


def _mount_target(rootfs: Path, bind: Bind, owner: int) -> int | None:
    """An O_PATH descriptor of the bind's target inside ``rootfs``, created if missing;
    None if something of another type is there."""
    flags = os.O_PATH | (os.O_DIRECTORY if bind.directory else 0)
    try:
        fd = open_in_root(rootfs, bind.target, flags)
    except NotFound:
        _create_target(rootfs, bind, owner)
        try:
            fd = open_in_root(rootfs, bind.target, flags)
        except NotFound:
            return None
    except OSError:
        return None  # ENOTDIR and friends: not a usable mount point
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode) != bind.directory or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        os.close(fd)
        return None
    return fd


def _create_target(rootfs: Path, bind: Bind, owner: int) -> None:
    if bind.directory:
        # A file in the way: the lookup that follows leaves the bind out.
        with contextlib.suppress(DockyardError):
            makedirs_in_root(rootfs, bind.target, uid=owner, gid=owner)
        return
    parent, _, name = bind.target.rstrip("/").rpartition("/")
    if not name:
        return
    try:
        makedirs_in_root(rootfs, parent or "/", uid=owner, gid=owner)
        dirfd = open_in_root(rootfs, parent or "/", os.O_PATH | os.O_DIRECTORY)
    except (DockyardError, OSError):
        return
    try:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=dirfd,
        )
        os.fchown(fd, owner, owner)
        os.close(fd)
    except OSError:
        pass  # someone else's file or a race: the next lookup decides
    finally:
        os.close(dirfd)


def _pivot(rootfs: Path) -> None:
    """runc's pivot_root(".", "."): no directory for the old root is needed."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            _check(_libc.syscall(_SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
        finally:
            os.close(new_root)
        # "." is now the old root, stacked on the new one: detach it, and with it every
        # host mount this namespace copied.
        os.fchdir(old_root)
        _mount(None, ".", _MS_REC | _MS_SLAVE)
        _check(_libc.umount2(b".", ctypes.c_int(_MNT_DETACH)), "detach the host's root")
    finally:
        os.close(old_root)  # the last handle on the host's tree
    os.chdir("/")
