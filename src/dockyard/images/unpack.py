"""Child process that unpacks one layer tar from stdin into a directory, jailed by chroot.

Run as ``python -m dockyard.images.unpack <dir>`` by :class:`~dockyard.images.layers.
LayerStore`, never imported by the long-running daemons. It chroots into ``<dir>`` before
reading a single byte, so whatever a hostile layer says (absolute names, ``..``, a symlink
``a -> /`` followed by ``a/etc/x``, hard links to ``/etc/shadow``) resolves inside ``<dir>``.
Everything it needs is imported before the chroot: nothing from outside is reachable after.

It keeps numeric owners, modes (setuid included), mtimes, symlinks, hard links within the
layer, device nodes, fifos, and the ``SCHILY.xattr.*`` PAX records for ``security.capability``,
``user.*`` and POSIX ACLs (other xattrs, ``trusted.*`` in particular, are never taken from a
layer). OCI whiteouts become overlayfs whiteouts: ``.wh.<name>`` a 0/0 character device
``<name>``, ``.wh..wh..opq`` the xattr ``trusted.overlay.opaque=y`` on its directory.

Protocol: stdin is the uncompressed layer tar; after the end-of-archive the rest of stdin is
read and discarded, so the parent can hash the whole stream. On success the exit status is 0
and stdout carries ``{"size": <bytes of regular files>}``. Exit status 3 means the archive
is invalid, 1 a local failure (disk full, I/O error); stderr then says why.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_UNAVAILABLE", "main", "unpack"]

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_INVALID = 3
_CHUNK = 1 << 20
_XATTR_PREFIX = "SCHILY.xattr."
_ALLOWED_XATTRS = (
    "security.capability",
    "user.",
    "system.posix_acl_access",
    "system.posix_acl_default",
)
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
_OPAQUE = ".wh..wh..opq"
_WHITEOUT = ".wh."


def unpack(stream: BinaryIO) -> int:
    """Unpack the tar read from ``stream`` relative to ``/``; return the regular files' size.

    Meant to run after chroot: paths are taken as absolute within the current root.
    """
    size = 0
    directories: list[tuple[str, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as tar:
        for member in tar:
            path = posixpath.normpath("/" + member.name)
            if path == "/":
                continue  # the layer root's attributes come from the container's upper dir
            parent, base = posixpath.split(path)
            if base.startswith(_WHITEOUT):
                _whiteout(parent, base)
                continue
            Path(parent).mkdir(mode=0o755, parents=True, exist_ok=True)
            if member.isdir():
                _mkdir(path)
                directories.append((path, member))
                continue
            _remove(path)
            if member.isreg():
                _write(path, tar, member)
                size += member.size
            elif member.issym():
                Path(path).symlink_to(member.linkname)
            elif member.islnk():
                target = posixpath.normpath("/" + member.linkname)
                os.link(target, path, follow_symlinks=False)
                continue  # a hard link shares its target's attributes
            elif member.ischr() or member.isblk():
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            elif member.isfifo():
                os.mkfifo(path, 0o600)
            else:
                continue  # unknown entry types are skipped, as Docker does
            _attributes(path, member)
    # Directories last, deepest first, so creating children does not disturb their mtimes.
    for path, member in reversed(directories):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            _attributes(path, member)
    return size


def _whiteout(parent: str, base: str) -> None:
    Path(parent).mkdir(mode=0o755, parents=True, exist_ok=True)
    if base == _OPAQUE:
        os.setxattr(parent, "trusted.overlay.opaque", b"y", follow_symlinks=False)
        return
    name = base[len(_WHITEOUT) :]
    if not name or name.startswith(_WHITEOUT):
        return  # aufs metadata (.wh..wh.plnk and friends) means nothing to overlayfs
    path = posixpath.join(parent, name)
    if os.path.lexists(path):
        return  # a whiteout hides lower layers only, never this layer's own entry
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _mkdir(path: str) -> None:
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return
    except FileNotFoundError:
        pass
    else:
        Path(path).unlink()
    Path(path).mkdir(mode=0o700)


def _remove(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        Path(path).unlink()


def _write(path: str, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    source = tar.extractfile(member)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as target:
        if source is not None:
            while chunk := source.read(_CHUNK):
                target.write(chunk)


def _attributes(path: str, member: tarfile.TarInfo) -> None:
    os.lchown(path, member.uid, member.gid)
    if not member.issym():
        # After chown, which clears setuid/setgid and security.capability.
        Path(path).chmod(member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            _set_xattr(path, key[len(_XATTR_PREFIX) :], value)
    mtime = int(member.mtime * 1_000_000_000)
    os.utime(path, ns=(mtime, mtime), follow_symlinks=False)


def _set_xattr(path: str, name: str, value: str) -> None:
    if not name.startswith(_ALLOWED_XATTRS):
        return
    try:
        os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
    except OSError as exc:
        # Filesystems without xattrs, symlinks refusing user.*, malformed ACLs: skip them.
        if exc.errno in _LOCAL_ERRNOS:
            raise


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``unpack <dir>``; see the module docstring for the protocol."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dockyard.images.unpack <dir>", file=sys.stderr)
        return 2
    # Codecs are imported lazily on first use; use them now, while the stdlib is reachable.
    "".encode("latin-1")
    b"".decode("ascii")
    stdin = sys.stdin.buffer
    try:
        os.chroot(args[0])
        os.chdir("/")
        os.umask(0)
    except OSError as exc:
        print(f"cannot enter {args[0]}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        size = unpack(stdin)
        while stdin.read(_CHUNK):
            pass
    except (tarfile.TarError, EOFError, UnicodeError) as exc:
        print(f"invalid layer: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"cannot unpack: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.errno in _LOCAL_ERRNOS else EXIT_INVALID
    json.dump({"size": size}, sys.stdout)
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
