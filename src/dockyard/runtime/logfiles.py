"""A container's log as a series of files, rotated by conmon and kept by hard links.

conmon writes the container's output to one file, ``ctr.log``. Given ``--log-size-max``
it rotates by itself: before a line would take the file past the cap it opens
``ctr.log.tmp`` (``O_TRUNC | O_CREAT``) and renames it over ``ctr.log`` (conmon 2.1.6,
``reopen_k8s_file``). The replaced file is simply unlinked, so on its own conmon keeps one
file and loses the rest.

We keep the rest by giving every file conmon writes a second name in ``logs/``:
``logs/<seq>.log``, ``seq`` increasing and never reused, so the series reads in order and
a reader can tell which file follows the one it holds. Two moments need care:

- Before conmon runs (:meth:`LogFiles.prepare_run`), ``ctr.log`` is made a name of the
  series' current file, and ``ctr.log.tmp`` is made a name of a new empty series file (the
  *spare*): conmon's next rotation then opens the spare and renames it over ``ctr.log``, so
  the file it moves to is already in the series.
- After each rotation (inotify sees ``ctr.log`` renamed into place, :meth:`LogFiles.adopt`),
  a new spare is made, and a ``ctr.log`` that is not in the series (conmon rotated again
  before the new spare existed) is linked into it.

So a rotation costs the agent one event and a few system calls, nothing per write; a file
is lost only if conmon rotates twice before the agent reacts once (a container writing
twice ``max-size`` within milliseconds, or while the agent is down). A spare is never
``ctr.log``'s file and is always empty while it is the spare: ``O_TRUNC`` on it is harmless.

conmon counts the bytes it wrote since it started, not the file's size, so a restarted
container would push an appended file past the cap: :meth:`prepare_run` gives conmon the
room left in the current file, or moves on to a new file when less than half is left.

Readers (:mod:`dockyard.runtime.logs`) list the series and never read ``ctr.log`` itself.
Rotated files may be gzip-compressed (``<seq>.log.gz``); a file that exists in both forms
reads the same either way.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LogFiles", "SeriesFile"]

_SUFFIX = ".log"
_GZ_SUFFIX = ".log.gz"
_GZ_LEVEL = 1  # fast: text logs still shrink 5-10x, and rotation stays cheap on a busy host


@dataclass(frozen=True, slots=True)
class SeriesFile:
    """One file of the series: its number and the forms it exists in (at least one)."""

    seq: int
    plain: Path | None
    gz: Path | None

    @property
    def path(self) -> Path:
        """The form to read: plain while it exists (it may be mid-compression)."""
        path = self.plain or self.gz
        assert path is not None
        return path


class LogFiles:
    """The log series of one container.

    ``live`` is conmon's file (``-l k8s-file:<live>``), ``spare`` the name conmon rotates
    through (``<live>.tmp``), ``directory`` where the series lives. All three are in one
    directory tree on one filesystem, so hard links work.
    """

    def __init__(self, *, live: Path, spare: Path, directory: Path) -> None:
        self.live = live
        self.spare = spare
        self.directory = directory

    # listing -----------------------------------------------------------------------------

    def listing(self) -> list[SeriesFile]:
        """Every file of the series, oldest first."""
        plain: dict[int, Path] = {}
        packed: dict[int, Path] = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            if name.endswith(_GZ_SUFFIX) and name[: -len(_GZ_SUFFIX)].isdecimal():
                packed[int(name[: -len(_GZ_SUFFIX)])] = Path(entry.path)
            elif name.endswith(_SUFFIX) and name[: -len(_SUFFIX)].isdecimal():
                plain[int(name[: -len(_SUFFIX)])] = Path(entry.path)
        return [
            SeriesFile(seq=seq, plain=plain.get(seq), gz=packed.get(seq))
            for seq in sorted(plain.keys() | packed.keys())
        ]

    def path_of(self, seq: int) -> Path:
        return self.directory / f"{seq:010d}{_SUFFIX}"

    def current(self) -> int | None:
        """The seq of the file conmon writes (``live``), or None if ``live`` is not in the
        series (or does not exist)."""
        try:
            live = os.stat(self.live)
        except FileNotFoundError:
            return None
        return self._seq_of(live.st_ino, self.listing())

    def _seq_of(self, inode: int, files: list[SeriesFile]) -> int | None:
        for item in reversed(files):  # the current file is at or near the end
            if item.plain is None:
                continue
            try:
                if os.stat(item.plain).st_ino == inode:
                    return item.seq
            except FileNotFoundError:
                continue
        return None

    # keeping every file --------------------------------------------------------------------

    def adopt(self) -> int | None:
        """After conmon rotated (or on recovery): link ``live`` into the series if it is not
        there yet and make a new spare. Returns the current seq (None without ``live``).

        Never replaces an existing ``spare``: one that is not ours is conmon's own, about to
        be renamed over ``live`` (the next call adopts it).
        """
        self.directory.mkdir(exist_ok=True)
        files = self.listing()
        try:
            live = os.stat(self.live)
        except FileNotFoundError:
            return None
        current = self._seq_of(live.st_ino, files)
        if current is None:
            current = self._next_seq(files)
            try:
                os.link(self.live, self.path_of(current))
            except FileNotFoundError:
                return None  # the container is going away
            files = self.listing()
        self._ensure_spare(files)
        return current

    def _next_seq(self, files: list[SeriesFile]) -> int:
        return files[-1].seq + 1 if files else 1

    def _ensure_spare(self, files: list[SeriesFile]) -> None:
        if os.path.lexists(self.spare):
            return
        seq = self._next_seq(files)
        path = self.path_of(seq)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        try:
            os.link(path, self.spare)
        except FileExistsError:
            os.unlink(path)  # conmon is rotating right now; the next adopt() makes one

    def prepare_run(self, max_size: int) -> int:
        """Before conmon starts (nothing writes the files): make ``live`` a name of the
        current series file and ``spare`` a name of an empty one after it; return the size
        cap to give conmon, so that the current file never passes ``max_size`` (0: none)."""
        self.directory.mkdir(exist_ok=True)
        if max_size <= 0:  # no cap: one file, as conmon keeps it
            if not self.live.exists():
                self._advance()
            self.adopt()
            return 0
        files = self.listing()
        live = self._seq_at(self.live, files)
        spare = self._seq_at(self.spare, files)
        usable = (
            spare is not None
            and live is not None
            and spare == files[-1].seq
            and spare > live
            and os.stat(self.spare).st_size == 0
        )
        if os.path.lexists(self.spare) and not usable:
            self._drop_spare(spare)
        if live is not None:  # empty files after the live one are spares of the past
            for item in files:
                if item.seq > live and item.seq != (spare if usable else None):
                    self._drop_empty(item.seq)
        if not self.live.exists():
            self._advance()
            return max_size
        self.adopt()
        size = os.stat(self.live).st_size
        if size == 0 or size <= max_size // 2:
            return max(max_size - size, 1)
        self._advance()  # less than half the file is left: conmon starts a new one
        return max_size

    def _seq_at(self, path: Path, files: list[SeriesFile]) -> int | None:
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            return None
        return self._seq_of(inode, files)

    def _advance(self) -> None:
        """Point ``live`` at a new empty file after every other (the spare, if there is
        one), then make a new spare."""
        files = self.listing()
        spare = self._seq_at(self.spare, files)
        if spare is not None:
            target = self.path_of(spare)
        else:
            target = self.path_of(self._next_seq(files))
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        # The spare's name must not outlive its file becoming current: conmon's first
        # rotation would truncate it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.spare)
        self._point_live_at(target)
        self._ensure_spare(self.listing())

    def _drop_spare(self, seq: int | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.spare)
        if seq is not None:
            self._drop_empty(seq)

    def _drop_empty(self, seq: int) -> None:
        path = self.path_of(seq)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_size == 0:
                os.unlink(path)

    def _point_live_at(self, path: Path) -> None:
        staging = self.live.with_name(self.live.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        os.link(path, staging)
        os.replace(staging, self.live)

    # housekeeping (may run in a thread) ----------------------------------------------------

    def prune(self, max_files: int) -> list[SeriesFile]:
        """Delete the oldest rotated files so at most ``max_files`` remain up to the current
        one (the spare is not counted: it is empty). Returns the rotated files kept."""
        files = self.listing()
        try:
            inode = os.stat(self.live).st_ino
        except FileNotFoundError:
            return []
        current = self._seq_of(inode, files)
        if current is None:
            return []
        rotated = [f for f in files if f.seq < current]
        excess = max(len(rotated) - max(max_files - 1, 0), 0)
        for item in rotated[:excess]:
            for path in (item.plain, item.gz):
                if path is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        return rotated[excess:]

    def compress(self, item: SeriesFile) -> None:
        """gzip a rotated file to ``<seq>.log.gz``, then drop the plain one. Readers see a
        complete file throughout: the plain one until the compressed one is in place."""
        if item.plain is None or item.gz is not None:
            return
        target = item.plain.with_name(item.plain.name[: -len(_SUFFIX)] + _GZ_SUFFIX)
        staging = target.with_name(target.name + ".tmp")
        try:
            with (
                open(item.plain, "rb") as source,
                open(staging, "wb") as raw,
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=_GZ_LEVEL) as packed,
            ):
                shutil.copyfileobj(source, packed, 1 << 20)
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
            return  # pruned meanwhile
        if not item.plain.exists():  # pruned while we compressed: do not bring it back
            os.unlink(staging)
            return
        os.replace(staging, target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(item.plain)
