"""The log series kept by hard links while conmon rotates (runtime.logfiles).

``Conmon`` below does to the files exactly what conmon 2.1.6 does: it opens the log with
``O_APPEND | O_CREAT`` when it starts, counts the bytes it wrote since, and before a line
that would pass the cap it opens ``<log>.tmp`` with ``O_TRUNC | O_CREAT`` and renames it
over the log.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from dockyard.runtime.logfiles import LogFiles


class Conmon:
    def __init__(self, files: LogFiles, cap: int) -> None:
        self.files = files
        self.cap = cap
        self.written = 0
        self.fd = os.open(files.live, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, line: bytes) -> None:
        if self.cap > 0 and self.written + len(line) > self.cap:
            self.written = 0
            self.rotate()
        os.write(self.fd, line)
        self.written += len(line)

    def rotate(self) -> None:
        os.close(self.fd)
        self.fd = os.open(self.files.spare, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
        os.rename(self.files.spare, self.files.live)

    def stop(self) -> None:
        os.close(self.fd)


@pytest.fixture
def files(tmp_path: Path) -> LogFiles:
    return LogFiles(
        live=tmp_path / "ctr.log", spare=tmp_path / "ctr.log.tmp", directory=tmp_path / "logs"
    )


def contents(files: LogFiles) -> list[bytes]:
    out = []
    for item in files.listing():
        if item.plain is not None:
            out.append(item.plain.read_bytes())
        else:
            assert item.gz is not None
            out.append(gzip.decompress(item.gz.read_bytes()))
    return out


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def test_first_run_gets_a_file_and_a_spare(files: LogFiles) -> None:
    assert files.prepare_run(100) == 100
    assert [f.seq for f in files.listing()] == [1, 2]
    assert inode(files.live) == inode(files.path_of(1))
    assert inode(files.spare) == inode(files.path_of(2))
    assert files.current() == 1


def test_every_rotated_file_is_kept_in_order(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    for i in range(6):
        conmon.write(b"line %d ......\n" % i)  # 15 bytes: one line per file
        files.adopt()
    conmon.stop()
    assert b"".join(contents(files)) == b"".join(b"line %d ......\n" % i for i in range(6))
    assert files.current() == 6
    assert files.listing()[-1].seq == 7  # the spare
    assert contents(files)[-1] == b""


def test_two_rotations_before_the_agent_reacts_lose_nothing(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    for i in range(3):  # rotates twice: into the spare, then into a file of conmon's own
        conmon.write(b"line %d ......\n" % i)
    files.adopt()
    conmon.write(b"line 3 ......\n")
    files.adopt()
    conmon.stop()
    assert b"".join(contents(files)) == b"".join(b"line %d ......\n" % i for i in range(4))


def test_adopt_leaves_a_spare_conmon_is_rotating_through(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    conmon.write(b"a" * 15)
    conmon.write(b"b" * 15)  # rotated into the spare
    os.close(conmon.fd)
    # conmon has opened (made) ctr.log.tmp and not yet renamed it
    conmon.fd = os.open(files.spare, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
    ours = inode(files.spare)
    files.adopt()
    assert inode(files.spare) == ours
    os.rename(files.spare, files.live)
    conmon.write(b"c" * 5)
    files.adopt()
    conmon.stop()
    assert contents(files)[:3] == [b"a" * 15, b"b" * 15, b"c" * 5]


def test_prune_keeps_max_files_up_to_the_current_one(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    for i in range(10):
        conmon.write(b"line %d ......\n" % i)
        files.adopt()
    conmon.stop()
    kept = files.prune(3)
    assert [f.seq for f in kept] == [8, 9]
    assert [f.seq for f in files.listing()] == [8, 9, 10, 11]
    assert b"".join(contents(files)) == b"line 7 ......\nline 8 ......\nline 9 ......\n"


def test_prune_to_one_file_keeps_only_the_current(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    for i in range(3):
        conmon.write(b"line %d ......\n" % i)
        files.adopt()
    conmon.stop()
    assert files.prune(1) == []
    assert b"".join(contents(files)) == b"line 2 ......\n"


def test_restart_appends_while_less_than_half_is_used(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(100))
    conmon.write(b"x" * 30)
    conmon.stop()
    assert files.prepare_run(100) == 70  # conmon's count restarts at 0: it gets what is left
    assert files.current() == 1
    assert inode(files.spare) == inode(files.path_of(2))


def test_restart_starts_a_new_file_past_half(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(100))
    conmon.write(b"x" * 60)
    conmon.stop()
    spare = inode(files.spare)
    assert files.prepare_run(100) == 100
    assert files.current() == 2
    assert inode(files.live) == spare  # the spare became the current file...
    assert inode(files.spare) != spare  # ...and a new spare was made after it
    assert inode(files.spare) == inode(files.path_of(3))
    conmon = Conmon(files, 100)
    conmon.write(b"y" * 10)
    conmon.stop()
    assert contents(files) == [b"x" * 60, b"y" * 10, b""]


def test_a_file_never_passes_max_size_across_restarts(files: LogFiles) -> None:
    for run in range(20):
        conmon = Conmon(files, files.prepare_run(100))
        for _ in range(run % 7):
            conmon.write(b"%02d......\n" % run)  # 10 bytes
            files.adopt()
        conmon.stop()
    for item in files.listing():
        assert item.plain is not None
        assert item.plain.stat().st_size <= 100
    assert b"".join(contents(files)) == b"".join(
        b"%02d......\n" % run * (run % 7) for run in range(20)
    )


def test_an_old_bundle_with_only_ctr_log_is_taken_in(files: LogFiles) -> None:
    files.live.write_bytes(b"from before\n")
    files.prepare_run(100)
    assert contents(files) == [b"from before\n", b""]


def test_a_stale_spare_is_replaced_before_a_run(files: LogFiles) -> None:
    files.prepare_run(100)
    os.unlink(files.spare)
    files.spare.write_bytes(b"")  # not in the series: e.g. conmon died mid-rotation
    files.prepare_run(100)
    assert files.listing()[-1].seq == 2
    assert inode(files.spare) == inode(files.path_of(2))


def test_no_cap_keeps_one_file(files: LogFiles) -> None:
    assert files.prepare_run(0) == 0
    assert files.current() == 1


def test_compress_a_rotated_file(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    for i in range(3):
        conmon.write(b"line %d ......\n" % i)
        files.adopt()
    conmon.stop()
    for item in files.prune(5):
        files.compress(item)
    listing = files.listing()
    assert [(f.plain is None, f.gz is not None) for f in listing] == [
        (True, True),
        (True, True),
        (False, False),
        (False, False),
    ]
    assert b"".join(contents(files)) == b"".join(b"line %d ......\n" % i for i in range(3))


def test_a_file_pruned_while_compressed_does_not_come_back(files: LogFiles) -> None:
    conmon = Conmon(files, files.prepare_run(20))
    for i in range(2):
        conmon.write(b"line %d ......\n" % i)
        files.adopt()
    conmon.stop()
    (old,) = files.prune(5)
    files.prune(1)
    files.compress(old)
    assert [f.seq for f in files.listing()] == [2, 3]
