"""Child process for ``docker cp`` and ``docker export``: file work inside one container's root.

Run as ``python -m dockyard.runtime.archive_child '<ArchiveRequest as JSON>'`` by
:class:`~dockyard.runtime.archive.ArchiveProcess`, never imported by the daemons for more
than :class:`ArchiveRequest`. Before it touches a byte of tenant data it enters the
container's root view (:func:`~dockyard.runtime.rootview.enter_root_view`): a private mount
namespace whose ``/`` is the container's root, with its volumes, no host mount at all, and
nodev on everything. Symlinks, ``..`` and hard links then resolve within the container by
construction; the checks of :mod:`archive_rules` come on top, so that hostile uploads are
refused with a clear message instead of being confined silently.

Operations (``op``):

``stat``    the ``path`` as ``docker cp`` sees it (not following a final symlink).
``get``     the stat, then a tar of the path (a directory recursively), names as Docker's.
``put``     extract the uploaded tar (identity, gzip, bzip2 or xz) into the directory
            ``path``; checked completely, then written.
``export``  a tar of the whole root filesystem, volumes not included (as Docker's).
``layer``   ``docker commit``: the container's writable layer (its overlay upper dir, given
            as ``rootfs``) as a Docker layer tar; see :class:`_LayerWriter`.

Protocol on stdout: one line of JSON, ``{"ok": {...}}`` or ``{"error": {"kind": ...,
"message": ...}}``; for ``get`` and ``export`` the tar follows the ``ok`` line. ``put``
reads stdin as frames (4-byte big-endian length, then the bytes; a zero length ends the
archive), spools them to an unlinked file and answers once, at the end. Input that ends
without the zero frame is an aborted upload: nothing is written and no line is sent. The
exit status is 0 when the line was sent; otherwise stderr says what went wrong (a failure
in the middle of a tar stream can only be told this way).

Ownership: the files of a container belong to host ids ``uid_base + n`` for container ids
``n < uid_size``. Archives going out carry container ids (65534 for a host id outside the
range, as the kernel shows it); files coming in belong to the container's root, or with
``keep_ids`` to the archive's ids shifted into the range.
"""

from __future__ import annotations

import bz2  # noqa: F401  (tarfile imports the codecs lazily; they must be loaded before pivot_root)
import errno
import gzip  # noqa: F401
import json
import lzma
import os
import shutil
import stat
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from dockyard.core.errors import (
    DockyardError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from dockyard.core.serde import from_data
from dockyard.runtime.archive_rules import (
    EntryKind,
    UploadCheck,
    UploadRules,
    archive_entry_name,
    container_path,
    go_base,
    member_path,
)
from dockyard.runtime.rootview import Bind, enter_root_view

__all__ = ["MAX_FRAME", "ArchiveRequest", "main"]

MAX_FRAME = 1 << 24
_CHUNK = 1 << 20
_OVERFLOW_ID = 65534
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, UnicodeError)


@dataclass(frozen=True, slots=True)
class ArchiveRequest:
    """One operation of the child on one container (see the module docstring)."""

    op: str
    rootfs: str
    uid_base: int
    uid_size: int
    binds: tuple[Bind, ...] = ()
    read_only_root: bool = False
    path: str = ""
    spool_dir: str = ""
    keep_ids: bool = False
    no_overwrite_dir_non_dir: bool = False
    ignore: tuple[str, ...] = ()


class _Aborted(Exception):
    """The upload ended without its end frame: the client went away."""


class _Answer:
    """The one status line on stdout."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sent = False

    def ok(self, payload: dict[str, Any]) -> None:
        self._line({"ok": payload})

    def error(self, exc: DockyardError) -> None:
        self._line({"error": exc.to_wire()})

    def _line(self, data: dict[str, Any]) -> None:
        self.out.write(json.dumps(data).encode() + b"\n")
        self.out.flush()
        self.sent = True


def _os_error(exc: OSError, what: str) -> DockyardError:
    """An OSError met inside the container's root as an error kind."""
    code = exc.errno
    message = f"{what}: {exc.strerror or exc}"
    if code in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(message)
    if code in (errno.EROFS, errno.EPERM, errno.EACCES):
        return PermissionDenied(message)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE):
        return Unavailable(message)
    return InvalidArgument(message)


def _container_id(host_id: int, base: int, size: int) -> int:
    return host_id - base if base <= host_id < base + size else _OVERFLOW_ID


# stat -------------------------------------------------------------------------------


def _stat(path: str) -> tuple[str, os.stat_result, dict[str, Any]]:
    """Docker's stat of a container path: the final element is not followed."""
    abs_path = container_path(path)
    try:
        st = os.lstat(abs_path)
    except OSError as exc:
        raise _os_error(exc, path) from exc
    link_target = os.path.realpath(abs_path) if stat.S_ISLNK(st.st_mode) else ""
    info = {
        "name": go_base(abs_path),
        "size": st.st_size,
        "mode": st.st_mode,
        "mtime": st.st_mtime_ns,
        "link_target": link_target,
    }
    return abs_path, st, info


# tar out ----------------------------------------------------------------------------


class _Exact:
    """Exactly ``size`` bytes of ``source``: cut if it grew, zero-padded if it shrank
    (a running container may change a file while it is archived)."""

    def __init__(self, source: IO[bytes], size: int) -> None:
        self._source = source
        self._left = size

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._source.read(want) if want else b""
        if len(data) < want:
            data += b"\0" * (want - len(data))
        self._left -= len(data)
        return data


class _TreeWriter:
    """Adds files of the current root to a tar, with container ids, never following or
    opening anything but regular files."""

    def __init__(self, tar: tarfile.TarFile, request: ArchiveRequest) -> None:
        self._tar = tar
        self._base = request.uid_base
        self._size = request.uid_size
        self._links: dict[tuple[int, int], str] = {}

    def add_tree(self, top: str, name_of: Callable[[str], str], *, include_top: bool) -> None:
        """Add ``top`` (a directory) and everything below it, depth first in name order.
        ``name_of`` turns ``"."`` / ``"./a/b"`` into the entry's name."""
        if include_top:
            self.add(top, name_of("."))
        stack: list[Iterator[str]] = [iter(self._children(".", top))]
        prefix = top.rstrip("/") + "/"
        while stack:
            relative = next(stack[-1], None)
            if relative is None:
                stack.pop()
                continue
            path = prefix + relative[2:]
            if self.add(path, name_of(relative)):
                stack.append(iter(self._children(relative, path)))

    def _children(self, relative: str, path: str) -> list[str]:
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return []  # gone or replaced meanwhile: a running container changes its files
        return [f"{relative}/{name}" for name in names]

    def add(self, path: str, name: str, st: os.stat_result | None = None) -> bool:
        """Add one entry; True if it is a directory to descend into."""
        try:
            st = st or os.lstat(path)
        except OSError:
            return False
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = _container_id(st.st_uid, self._base, self._size)
        info.gid = _container_id(st.st_gid, self._base, self._size)
        info.mtime = st.st_mtime_ns // 1_000_000_000
        mode = st.st_mode
        if stat.S_ISREG(mode):
            info.pax_headers = self._pax_records(path)
            self._add_file(path, info, st)
            return False
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            try:
                info.linkname = os.readlink(path)
            except OSError:
                return False
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return False  # sockets, as Docker skips them
        self._tar.addfile(info)
        return stat.S_ISDIR(mode)

    def _pax_records(self, path: str) -> dict[str, str]:
        """Extra PAX records of a regular file (none: ``docker cp`` and export carry no
        xattrs, as Docker's do not)."""
        del path
        return {}

    def _add_file(self, path: str, info: tarfile.TarInfo, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self._links:
            info.type = tarfile.LNKTYPE
            info.linkname = self._links[key]
            self._tar.addfile(info)
            return
        try:
            # O_NONBLOCK: a fifo swapped in meanwhile must not block us (nodev already
            # makes a device node unopenable).
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        with os.fdopen(fd, "rb") as source:
            current = os.fstat(fd)
            if not stat.S_ISREG(current.st_mode):
                return
            info.size = current.st_size
            self._tar.addfile(info, _Exact(source, current.st_size))
        if st.st_nlink > 1:
            self._links[key] = info.name


def _tar_writer(out: BinaryIO) -> tarfile.TarFile:
    """A tar stream to ``out`` (PAX: long names, big ids and sizes); the caller closes it."""
    return tarfile.open(
        fileobj=out,
        mode="w|",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
    )


def _get(request: ArchiveRequest, answer: _Answer) -> None:
    abs_path, st, info = _stat(request.path)
    answer.ok({"stat": info})
    base = go_base(abs_path)
    with _tar_writer(answer.out) as tar:
        writer = _TreeWriter(tar, request)
        if stat.S_ISDIR(st.st_mode):
            writer.add_tree(
                abs_path, lambda relative: archive_entry_name(base, relative), include_top=True
            )
        else:
            writer.add(abs_path, base, st)
    answer.out.flush()


def _export(request: ArchiveRequest, answer: _Answer) -> None:
    answer.ok({})
    with _tar_writer(answer.out) as tar:
        _TreeWriter(tar, request).add_tree("/", lambda relative: relative[2:], include_top=False)
    answer.out.flush()


class _LayerWriter(_TreeWriter):
    """The entries of an overlayfs upper dir as a Docker layer, moby's overlay2 ``Diff``
    (``pkg/archive``, ``overlayWhiteoutConverter``):

    - a whiteout (a 0/0 character device) becomes the empty file ``.wh.<name>``, mode 0,
      owned by 0 (the kernel makes whiteouts as the overlay's mounter, host root);
    - an opaque directory (``trusted.overlay.opaque=y``) is followed by an empty
      ``<dir>/.wh..wh..opq`` with the directory's mode, owner and mtime;
    - ``security.capability`` of a file goes in a ``SCHILY.xattr`` PAX record, revision 3
      made revision 2 (its root id names the container's user namespace, meaningless
      anywhere else); no other xattr is carried, as in Docker;
    - ``ignore`` (the runtime's mount points, which Docker keeps in its init layer) and
      everything below them are left out; a directory above one of them is written only
      if something else below it is (the runtime made it to hold the mount point, not
      the container) or if it is opaque.

    A directory carrying ``trusted.overlay.redirect`` (a renamed lower directory) cannot be
    expressed in a layer: the commit fails rather than lose the directory's content.
    Overlays are mounted with ``redirect_dir=off``, so there is none.
    """

    def __init__(self, tar: tarfile.TarFile, request: ArchiveRequest) -> None:
        super().__init__(tar, request)
        self._ignore = {path.strip("/") for path in request.ignore}
        self._loose = {
            "/".join(parts[:index])
            for parts in (path.split("/") for path in self._ignore)
            for index in range(1, len(parts))
        }
        self._deferred: list[tarfile.TarInfo] = []

    def add(self, path: str, name: str, st: os.stat_result | None = None) -> bool:
        if name in self._ignore:
            return False
        try:
            st = st or os.lstat(path)
        except OSError:
            return False
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            parent, _, base = name.rpartition("/")
            self._write(_marker(f"{parent}/{_WHITEOUT}{base}" if parent else _WHITEOUT + base, st))
            return False
        if not stat.S_ISDIR(st.st_mode):
            self._flush(name)
            return super().add(path, name, st)
        if _xattr(path, _REDIRECT) is not None:
            raise Unavailable(
                f"cannot commit /{name}: a directory renamed in the writable layer "
                "(overlayfs redirect) cannot be written as a layer"
            )
        opaque = _xattr(path, _OPAQUE_XATTR) == b"y"
        if name in self._loose and not opaque:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid = _container_id(st.st_uid, self._base, self._size)
            info.gid = _container_id(st.st_gid, self._base, self._size)
            info.mtime = st.st_mtime_ns // 1_000_000_000
            self._deferred.append(info)
            return True
        self._flush(name)
        if not super().add(path, name, st):
            return False
        if opaque:
            marker = _marker(f"{name}/{_OPAQUE_MARKER}", st)
            marker.mode = stat.S_IMODE(st.st_mode) & 0o777
            marker.uid = _container_id(st.st_uid, self._base, self._size)
            marker.gid = _container_id(st.st_gid, self._base, self._size)
            self._write(marker)
        return True

    def _write(self, info: tarfile.TarInfo) -> None:
        self._flush(info.name)
        self._tar.addfile(info)

    def _flush(self, name: str) -> None:
        """Write the deferred directories above ``name``. The walk is depth first, so a
        deferred directory that is not above ``name`` is done with: nothing in it was
        written, and it is dropped."""
        for info in self._deferred:
            if name.startswith(info.name + "/"):
                self._tar.addfile(info)
        self._deferred.clear()

    def _pax_records(self, path: str) -> dict[str, str]:
        capability = _xattr(path, _CAPABILITY)
        if capability is None:
            return {}
        if len(capability) > _VERSION_OFFSET and capability[_VERSION_OFFSET] == _CAP_REVISION_3:
            capability = (
                capability[:_VERSION_OFFSET]
                + bytes([_CAP_REVISION_2])
                + capability[_VERSION_OFFSET + 1 : _CAP_SIZE_2]
            )
        # tarfile writes a str PAX value back with the archive's encoding and
        # surrogateescape (hdrcharset=BINARY): the exact bytes come out.
        return {_PAX_XATTR + _CAPABILITY: capability.decode("utf-8", "surrogateescape")}


_WHITEOUT = ".wh."
_OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"
_REDIRECT = "trusted.overlay.redirect"
_CAPABILITY = "security.capability"
_PAX_XATTR = "SCHILY.xattr."
# linux/capability.h: the revision is the byte at offset 3 of magic_etc; revision 2 is 20
# bytes long, revision 3 appends the root uid.
_VERSION_OFFSET = 3
_CAP_REVISION_2 = 2
_CAP_REVISION_3 = 3
_CAP_SIZE_2 = 20


def _marker(name: str, st: os.stat_result) -> tarfile.TarInfo:
    """An empty regular file entry (a whiteout or an opaque marker), mode 0, owned by 0."""
    info = tarfile.TarInfo(name)
    info.mode = 0
    info.mtime = st.st_mtime_ns // 1_000_000_000
    return info


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None  # ENODATA, or the entry vanished meanwhile


def _layer(request: ArchiveRequest, answer: _Answer) -> None:
    answer.ok({})
    with _tar_writer(answer.out) as tar:
        _LayerWriter(tar, request).add_tree("/", lambda relative: relative[2:], include_top=False)
    answer.out.flush()


# tar in -----------------------------------------------------------------------------


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise _Aborted
        data += chunk
    return data


def _receive(spool_dir: str, stream: BinaryIO) -> int:
    """Spool the framed upload into an unlinked file; return its descriptor."""
    try:
        spool = os.open(spool_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _os_error(exc, "cannot spool the upload") from exc
    while True:
        size = int.from_bytes(_read_exact(stream, 4), "big")
        if size == 0:
            return spool
        if size > MAX_FRAME:
            raise _Aborted
        view = memoryview(_read_exact(stream, size))
        try:
            while view:
                view = view[os.write(spool, view) :]
        except OSError as exc:
            raise _os_error(exc, "cannot spool the upload") from exc


def _members(spool: int) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The spooled archive's members, read as a stream (compression detected)."""
    if os.fstat(spool).st_size == 0:
        return  # an empty body is an empty archive, as Docker reads it
    os.lseek(spool, 0, os.SEEK_SET)
    with (
        os.fdopen(os.dup(spool), "rb") as raw,
        tarfile.open(fileobj=raw, mode="r|*", encoding="utf-8", errors="surrogateescape") as tar,
    ):
        while (member := tar.next()) is not None:
            # Stream mode keeps every member otherwise: a million entries, a gigabyte.
            tar.members.clear()  # type: ignore[attr-defined]
            yield tar, member


def _lstat_kind(dest: int, path: str, *, follow: bool = False) -> EntryKind | None:
    try:
        mode = os.stat(path, dir_fd=dest, follow_symlinks=follow).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _os_error(exc, path) from exc
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    return EntryKind.SYMLINK if stat.S_ISLNK(mode) else EntryKind.FILE


def _in_volume(path: str, binds: tuple[Bind, ...]) -> bool:
    """Whether ``path`` (resolved) lies in one of the bound volumes (resolved too)."""
    real = os.path.realpath(path)
    for bind in binds:
        if bind.directory:
            target = os.path.realpath(bind.target)
            if real == target or real.startswith(target.rstrip("/") + "/"):
                return True
    return False


def _open_destination(path: str, binds: tuple[Bind, ...]) -> int:
    abs_path = container_path(path)
    try:
        st = os.stat(abs_path)
    except OSError as exc:
        raise _os_error(exc, path) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument("extraction point is not a directory")
    dest = os.open(abs_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if os.fstatvfs(dest).f_flag & os.ST_RDONLY:
        os.close(dest)
        what = "mounted volume" if _in_volume(abs_path, binds) else "container rootfs"
        raise PermissionDenied(f"{what} is marked read-only")
    return dest


class _Extractor:
    """Writes checked members below ``dest``."""

    def __init__(self, dest: int, request: ArchiveRequest) -> None:
        self._dest = dest
        self._owner = request.uid_base
        self._keep_ids = request.keep_ids
        self._no_overwrite = request.no_overwrite_dir_non_dir
        self._dirs: list[tuple[str, tarfile.TarInfo]] = []

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = member_path(member.name)
        if path == ".":
            return  # the destination itself, which exists: Docker leaves it as it is
        try:
            self._make_parents(path)
            self._clear(path, member)
            self._create(tar, member, path)
        except OSError as exc:
            raise _os_error(exc, f"extracting {member.name!r}") from exc

    def finish(self) -> None:
        """Directory times last, deepest first, so creating children does not move them."""
        for path, member in reversed(self._dirs):
            mtime = int(member.mtime) * 1_000_000_000
            try:
                os.utime(path, ns=(mtime, mtime), dir_fd=self._dest, follow_symlinks=False)
            except OSError as exc:
                raise _os_error(exc, f"extracting {member.name!r}") from exc

    def _ids(self, member: tarfile.TarInfo) -> tuple[int, int]:
        if self._keep_ids:
            return self._owner + member.uid, self._owner + member.gid
        return self._owner, self._owner

    def _make_parents(self, path: str) -> None:
        parts = path.split("/")
        for index in range(1, len(parts)):
            parent = "/".join(parts[:index])
            try:
                os.mkdir(parent, 0o755, dir_fd=self._dest)
            except FileExistsError:
                continue
            os.chown(parent, self._owner, self._owner, dir_fd=self._dest, follow_symlinks=False)

    def _clear(self, path: str, member: tarfile.TarInfo) -> None:
        try:
            mode = os.stat(path, dir_fd=self._dest, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(mode)
        if is_dir and member.isdir():
            return  # merged: the archive's attributes are applied to it
        if self._no_overwrite and is_dir != member.isdir():
            raise InvalidArgument(f"cannot overwrite {path!r}: it changed during the copy")
        if is_dir:
            shutil.rmtree(path, dir_fd=self._dest)
        else:
            os.unlink(path, dir_fd=self._dest)

    def _create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        dest = self._dest
        uid, gid = self._ids(member)
        mtime = int(member.mtime) * 1_000_000_000
        if member.islnk():
            target = member_path(member.linkname)
            os.link(target, path, src_dir_fd=dest, dst_dir_fd=dest, follow_symlinks=False)
            return  # a hard link shares its target's attributes
        if member.isdir():
            if _lstat_kind(dest, path) is not EntryKind.DIR:
                os.mkdir(path, 0o700, dir_fd=dest)
            os.chown(path, uid, gid, dir_fd=dest, follow_symlinks=False)
            os.chmod(path, member.mode & 0o7777, dir_fd=dest)
            self._dirs.append((path, member))
            return
        if member.issym():
            os.symlink(member.linkname, path, dir_fd=dest)
            os.chown(path, uid, gid, dir_fd=dest, follow_symlinks=False)
            os.utime(path, ns=(mtime, mtime), dir_fd=dest, follow_symlinks=False)
            return
        if member.isfifo():
            os.mkfifo(path, 0o600, dir_fd=dest)
            os.chown(path, uid, gid, dir_fd=dest, follow_symlinks=False)
            os.chmod(path, member.mode & 0o7777, dir_fd=dest)
            os.utime(path, ns=(mtime, mtime), dir_fd=dest, follow_symlinks=False)
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600, dir_fd=dest)
        with os.fdopen(fd, "wb") as written:
            source = tar.extractfile(member)
            if source is not None:
                while chunk := source.read(_CHUNK):
                    written.write(chunk)
            written.flush()
            os.fchown(fd, uid, gid)
            os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears setuid bits
            os.utime(fd, ns=(mtime, mtime))


def _put(request: ArchiveRequest, answer: _Answer, spool: int) -> None:
    dest = _open_destination(request.path, request.binds)
    try:
        rules = UploadRules(
            keep_ids=request.keep_ids,
            id_count=request.uid_size,
            no_overwrite_dir_non_dir=request.no_overwrite_dir_non_dir,
        )
        check = UploadCheck(
            rules,
            existing=lambda path: _lstat_kind(dest, path),
            leads_to_dir=lambda path: _lstat_kind(dest, path, follow=True) is EntryKind.DIR,
        )
        try:
            # First pass: every entry checked and every byte read (a truncated or
            # corrupt archive fails here), before anything is written.
            for tar, member in _members(spool):
                check.check(member)
                if member.isreg():
                    source = tar.extractfile(member)
                    while source is not None and source.read(_CHUNK):
                        pass
            extractor = _Extractor(dest, request)
            for tar, member in _members(spool):
                extractor.extract(tar, member)
            extractor.finish()
        except _TAR_ERRORS as exc:
            raise InvalidArgument(f"invalid archive: {exc}") from exc
        except OSError as exc:
            if exc.errno is None:  # bz2 reports corrupt data as a plain OSError
                raise InvalidArgument(f"invalid archive: {exc}") from exc
            raise _os_error(exc, "extracting the archive") from exc
    finally:
        os.close(dest)
    answer.ok({})


# entry point ------------------------------------------------------------------------


def _run(request: ArchiveRequest, answer: _Answer) -> None:
    spool = _receive(request.spool_dir, sys.stdin.buffer) if request.op == "put" else -1
    if request.op not in ("stat", "get", "put", "export", "layer"):
        raise InvalidArgument(f"unknown archive operation {request.op!r}")
    enter_root_view(
        Path(request.rootfs),
        () if request.op in ("export", "layer") else request.binds,
        read_only_root=request.read_only_root or request.op == "layer",
        owner=request.uid_base,
    )
    os.umask(0)
    if request.op == "stat":
        answer.ok({"stat": _stat(request.path)[2]})
    elif request.op == "get":
        _get(request, answer)
    elif request.op == "export":
        _export(request, answer)
    elif request.op == "layer":
        _layer(request, answer)
    else:
        _put(request, answer, spool)


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring for the protocol."""
    args = sys.argv[1:] if argv is None else argv
    try:
        request = from_data(ArchiveRequest, json.loads(args[0]))
    except (IndexError, ValueError, DockyardError) as exc:
        print(f"usage: archive_child '<request JSON>' ({exc})", file=sys.stderr)
        return 2
    # Codecs load lazily on first use; use them while the host's stdlib is reachable.
    "".encode("latin-1")
    b"".decode("ascii")
    answer = _Answer(sys.stdout.buffer)
    try:
        _run(request, answer)
    except _Aborted:
        return 3
    except BrokenPipeError:
        return 1  # the reader went away
    except (DockyardError, OSError) as exc:
        error = exc if isinstance(exc, DockyardError) else _os_error(exc, request.op)
        if answer.sent:
            print(f"{request.op} failed: {error.message}", file=sys.stderr)
            return 1
        answer.error(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
