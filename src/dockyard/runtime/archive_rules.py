"""The rules of ``docker cp``: how a container path is read, and which uploads are refused.

Pure logic, no file system access of its own: the archive child (:mod:`archive_child`)
applies these inside the container's root, and unit tests drive them with plain data.

Paths follow Docker's reading of the ``path`` query value: it is taken relative to the
container's ``/``, cleaned, and a trailing ``/`` or ``/.`` is kept, because it changes the
meaning (``/dir/.`` archives the content of ``dir``; ``/link/`` follows a final symlink).

An uploaded archive is checked entry by entry *before anything is written*
(:class:`UploadCheck`). Refused, with the entry named in the message:

- absolute names, names with a ``..`` component, empty names, over-long names;
- device nodes (character and block) and entry types other than file, directory, symlink,
  hard link and fifo;
- setuid, and setgid on anything but a directory;
- a hard link whose target is not a file this same archive extracted earlier;
- an entry whose path goes through a symlink this same archive created (the classic
  ``link -> /`` then ``link/etc/shadow``);
- with ``keep_ids`` (``copyUIDGID``), a uid or gid outside the container's id range;
- with ``no_overwrite_dir_non_dir``, replacing a directory by a non-directory or back.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from dockyard.core.errors import InvalidArgument

__all__ = [
    "MAX_ENTRIES",
    "EntryKind",
    "UploadCheck",
    "UploadRules",
    "archive_entry_name",
    "container_path",
    "go_base",
    "member_path",
]

MAX_ENTRIES = 1_000_000
_NAME_MAX = 255
_PATH_MAX = 4095


class EntryKind(Enum):
    """What a path is, as far as extraction cares."""

    DIR = "dir"
    FILE = "file"  # anything that is neither a directory nor a symlink
    SYMLINK = "symlink"


def go_base(path: str) -> str:
    """Go's ``filepath.Base``: the last element after trailing slashes are removed;
    ``"."`` for an empty path, ``"/"`` for a path of slashes only."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def container_path(path: str) -> str:
    """The absolute path Docker resolves for a ``path`` query value.

    ``path`` is joined to ``/`` and cleaned (``..`` cannot climb above ``/``); a trailing
    ``/.`` or ``/`` of the original is kept: ``"dir/."`` -> ``"/dir/."``, ``"a/../b/"`` ->
    ``"/b/"``, ``"."`` -> ``"/."``. Raises InvalidArgument for an empty path or a NUL byte.
    """
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if "\x00" in path:
        raise InvalidArgument("bad parameter: path contains a NUL byte")
    cleaned = posixpath.normpath("/" + path.lstrip("/"))
    if go_base(path) == "." and go_base(cleaned) != ".":
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if path.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def archive_entry_name(base: str, relative: str) -> str:
    """The name Docker gives, in a ``GET .../archive`` tar, to an entry of the archived
    directory: ``relative`` is ``"."`` for the directory itself or ``"./a/b"`` below it,
    ``base`` is :func:`go_base` of the requested path. The leading ``.`` becomes ``base``;
    for ``/`` it becomes nothing, so entries read ``/``, ``/bin``, ... as Docker's do.
    """
    replacement = "" if base == "/" else base
    return replacement + relative[1:]


def member_path(name: str) -> str:
    """A member name as a clean path relative to the extraction directory (``"."`` for
    the directory itself). Raises InvalidArgument for absolute names, ``..`` components,
    empty or over-long names."""
    if not name:
        raise InvalidArgument("archive entry with an empty name")
    if name.startswith("/"):
        raise InvalidArgument(f"archive entry {name!r}: absolute names are not allowed")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"archive entry {name!r}: '..' is not allowed in names")
    relative = "/".join(parts) or "."
    if len(relative.encode("utf-8", "surrogateescape")) > _PATH_MAX or any(
        len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX for part in parts
    ):
        raise InvalidArgument(f"archive entry {name[:64]!r}...: name too long")
    return relative


def _parents(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b"]``."""
    parts = path.split("/")
    return ["/".join(parts[:index]) for index in range(1, len(parts))]


@dataclass(frozen=True, slots=True)
class UploadRules:
    """How an upload is applied. ``keep_ids``: take the archive's uids and gids (they must
    lie in ``0..id_count-1``); otherwise everything belongs to the container's root."""

    keep_ids: bool = False
    id_count: int = 65536
    no_overwrite_dir_non_dir: bool = False


# What the destination holds at a relative path (no symlink followed for the last
# element), and whether the path leads to a directory once symlinks are followed.
ExistingKind = Callable[[str], "EntryKind | None"]
LeadsToDir = Callable[[str], bool]


class UploadCheck:
    """Checks the members of one archive, in order, against :class:`UploadRules` and the
    destination as it is now (``existing`` and ``leads_to_dir`` look at it).

    :meth:`check` raises InvalidArgument for a refused member and returns its clean
    relative path otherwise; it remembers what the archive made so later members are
    judged against the result (a hard link needs its target to be a file made earlier;
    nothing may go through a symlink the archive made).
    """

    def __init__(
        self, rules: UploadRules, *, existing: ExistingKind, leads_to_dir: LeadsToDir
    ) -> None:
        self._rules = rules
        self._existing = existing
        self._leads_to_dir = leads_to_dir
        self._made: dict[str, EntryKind] = {}  # paths this archive creates, by kind
        self._count = 0

    def check(self, member: tarfile.TarInfo) -> str:
        self._count += 1
        if self._count > MAX_ENTRIES:
            raise InvalidArgument(f"the archive has more than {MAX_ENTRIES} entries")
        path = member_path(member.name)
        kind = self._kind_of(member)
        self._check_mode(member, kind)
        self._check_ids(member)
        for parent in _parents(path):
            self._check_parent(member.name, parent)
        if member.islnk():
            self._check_hard_link(member)
        if path == ".":
            if kind is not EntryKind.DIR:
                raise InvalidArgument(
                    f"archive entry {member.name!r}: cannot replace the extraction directory"
                )
            return path
        self._check_overwrite(member.name, path, kind)
        self._record(path, kind)
        return path

    # per member --------------------------------------------------------------------

    def _kind_of(self, member: tarfile.TarInfo) -> EntryKind:
        if member.isdir():
            return EntryKind.DIR
        if member.issym():
            return EntryKind.SYMLINK
        if member.ischr() or member.isblk():
            raise InvalidArgument(f"archive entry {member.name!r}: device nodes are not allowed")
        if member.isreg() or member.islnk() or member.isfifo():
            return EntryKind.FILE
        raise InvalidArgument(
            f"archive entry {member.name!r}: unsupported entry type {member.type!r}"
        )

    def _check_mode(self, member: tarfile.TarInfo, kind: EntryKind) -> None:
        if kind is EntryKind.SYMLINK or member.islnk():
            return  # a link's own mode means nothing
        forbidden = stat.S_ISUID if kind is EntryKind.DIR else stat.S_ISUID | stat.S_ISGID
        if member.mode & forbidden:
            raise InvalidArgument(
                f"archive entry {member.name!r}: setuid and setgid bits are not allowed"
            )

    def _check_ids(self, member: tarfile.TarInfo) -> None:
        if not self._rules.keep_ids:
            return
        limit = self._rules.id_count
        for what, value in (("uid", member.uid), ("gid", member.gid)):
            if not 0 <= value < limit:
                raise InvalidArgument(
                    f"archive entry {member.name!r}: {what} {value} is outside the "
                    f"container's id range (0-{limit - 1})"
                )

    def _check_parent(self, name: str, parent: str) -> None:
        made = self._made.get(parent)
        if made is EntryKind.SYMLINK:
            raise InvalidArgument(
                f"archive entry {name!r} goes through {parent!r}, a symlink made by the archive"
            )
        if made is EntryKind.FILE:
            raise InvalidArgument(f"archive entry {name!r}: {parent!r} is not a directory")
        if made is EntryKind.DIR:
            return
        existing = self._existing(parent)
        if existing is None:
            self._made[parent] = EntryKind.DIR  # created on the way, as Docker does
        elif existing is EntryKind.FILE or (
            existing is EntryKind.SYMLINK and not self._leads_to_dir(parent)
        ):
            raise InvalidArgument(f"archive entry {name!r}: {parent!r} is not a directory")

    def _check_hard_link(self, member: tarfile.TarInfo) -> None:
        try:
            target = member_path(member.linkname)
        except InvalidArgument:
            target = ""
        if not target or target == "." or self._made.get(target) is not EntryKind.FILE:
            raise InvalidArgument(
                f"archive entry {member.name!r}: hard link to {member.linkname!r}, which is "
                "not a file extracted earlier from this archive"
            )
        for parent in _parents(target):
            if self._made.get(parent) is EntryKind.SYMLINK:
                raise InvalidArgument(
                    f"archive entry {member.name!r}: hard link goes through {parent!r}, a "
                    "symlink made by the archive"
                )

    def _check_overwrite(self, name: str, path: str, kind: EntryKind) -> None:
        if not self._rules.no_overwrite_dir_non_dir:
            return
        current = self._made.get(path) or self._existing(path)
        if current is None:
            return
        if current is EntryKind.DIR and kind is not EntryKind.DIR:
            raise InvalidArgument(
                f"cannot overwrite directory {path!r} with non-directory {name!r}"
            )
        if current is not EntryKind.DIR and kind is EntryKind.DIR:
            raise InvalidArgument(
                f"cannot overwrite non-directory {path!r} with directory {name!r}"
            )

    def _record(self, path: str, kind: EntryKind) -> None:
        previous = self._made.get(path)
        if previous is EntryKind.DIR and kind is not EntryKind.DIR:
            # The directory is replaced: what the archive put below it is gone.
            prefix = path + "/"
            for made in [p for p in self._made if p.startswith(prefix)]:
                del self._made[made]
        self._made[path] = kind
