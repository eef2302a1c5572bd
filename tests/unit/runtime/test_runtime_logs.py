"""Reading container output back from conmon's k8s-file log (runtime.logs)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from dockyard.runtime.logfiles import LogFiles
from dockyard.runtime.logs import EntryReader, LogEntry, LogReader, parse_line, read_entries

NS = 1_000_000_000
BASE = 1_700_000_000  # 2023-11-14T22:13:20Z


def stamp(second: int, frac: str = "000000000") -> str:
    minutes, seconds = divmod(20 + second, 60)
    return f"2023-11-14T22:{13 + minutes:02d}:{seconds:02d}.{frac}+00:00"


def line(second: int, text: str, *, stream: str = "stdout", tag: str = "F") -> bytes:
    return f"{stamp(second)} {stream} {tag} {text}\n".encode()


def at(second: int) -> int:
    return (BASE + second) * NS


def entry(second: int, text: str, stream: str = "stdout") -> LogEntry:
    return LogEntry(time=at(second), stream=stream, data=text.encode() + b"\n")


@pytest.fixture
def files(tmp_path: Path) -> LogFiles:
    return LogFiles(
        live=tmp_path / "ctr.log", spare=tmp_path / "ctr.log.tmp", directory=tmp_path / "logs"
    )


def write_series(files: LogFiles, *contents: bytes) -> None:
    """Files 1..n with ``contents``, the last one live (conmon's), and an empty spare."""
    files.directory.mkdir(exist_ok=True)
    for seq, content in enumerate(contents, 1):
        files.path_of(seq).write_bytes(content)
    os.link(files.path_of(len(contents)), files.live)
    files.adopt()


def append(files: LogFiles, data: bytes) -> None:
    with open(files.live, "ab") as handle:
        handle.write(data)


def rotate(files: LogFiles) -> None:
    """What conmon does when the file is full (the agent's adopt() comes after)."""
    os.close(os.open(files.spare, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600))
    os.rename(files.spare, files.live)


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(line(i, f"l{i}") for i in range(start, start + n))


def datas(entries: list[LogEntry]) -> list[bytes]:
    return [e.data for e in entries]


def follow_all(reader: EntryReader) -> list[LogEntry]:
    out: list[LogEntry] = []
    while (batch := reader.read()) is not None:
        out += batch
    return out


# parse_line --------------------------------------------------------------------------------


def test_parse_a_full_line() -> None:
    assert parse_line(b"2023-11-14T22:13:20.250158973+00:00 stdout F hello world\n") == (
        BASE * NS + 250_158_973,
        "stdout",
        True,
        b"hello world",
    )


def test_parse_a_partial_line_and_stderr() -> None:
    assert parse_line(b"2023-11-14T22:13:20.5+00:00 stderr P chunk") == (
        BASE * NS + 500_000_000,
        "stderr",
        False,
        b"chunk",
    )


def test_parse_keeps_spaces_in_the_text() -> None:
    parsed = parse_line(f"{stamp(0)} stdout F  two  spaces \n".encode())
    assert parsed is not None
    assert parsed[3] == b" two  spaces "


def test_parse_an_empty_line() -> None:
    assert parse_line(f"{stamp(0)} stdout F\n".encode()) == (at(0), "stdout", True, b"")
    assert parse_line(f"{stamp(0)} stdout F \n".encode()) == (at(0), "stdout", True, b"")


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2023-11-14T23:13:20+01:00", 0),
        ("2023-11-14T21:43:20-00:30", 0),
        ("2023-11-14T22:13:20Z", 0),
        ("2023-11-14T22:13:21.000000001+00:00", NS + 1),
    ],
)
def test_parse_time_zones_and_fractions(text: str, offset: int) -> None:
    parsed = parse_line(f"{text} stdout F x".encode())
    assert parsed is not None
    assert parsed[0] == BASE * NS + offset


@pytest.mark.parametrize(
    "raw", [b"", b"\n", b"garbage", b"not-a-time stdout F x", b"2023-11-14 stdout", b"a b c d e"]
)
def test_malformed_lines_are_none(raw: bytes) -> None:
    assert parse_line(raw) is None


def test_binary_output_is_kept_as_bytes() -> None:
    parsed = parse_line(f"{stamp(0)} stdout F ".encode() + b"\xff\x00\xfe\n")
    assert parsed is not None
    assert parsed[3] == b"\xff\x00\xfe"


# read_entries -----------------------------------------------------------------------------


def test_no_files_no_entries(files: LogFiles) -> None:
    assert list(read_entries(files)) == []


def test_whole_lines_with_time_and_stream(files: LogFiles) -> None:
    write_series(files, line(0, "one") + line(1, "two", stream="stderr") + line(2, ""))
    assert list(read_entries(files)) == [
        entry(0, "one"),
        entry(1, "two", "stderr"),
        entry(2, ""),
    ]


def test_partial_chunks_are_joined_per_stream(files: LogFiles) -> None:
    write_series(
        files,
        line(0, "hel", tag="P")
        + line(1, "oops", stream="stderr", tag="P")
        + line(2, "lo", tag="P")
        + line(3, "!", stream="stderr")
        + line(4, " world"),
    )
    assert list(read_entries(files)) == [
        LogEntry(time=at(1), stream="stderr", data=b"oops!\n"),
        LogEntry(time=at(0), stream="stdout", data=b"hello world\n"),
    ]


def test_a_line_split_over_two_files_is_whole(files: LogFiles) -> None:
    write_series(files, line(0, "a") + line(1, "hel", tag="P"), line(2, "lo") + line(3, "b"))
    assert datas(list(read_entries(files))) == [b"a\n", b"hello\n", b"b\n"]


def test_a_final_partial_line_without_newline_is_still_returned(files: LogFiles) -> None:
    write_series(files, line(0, "done") + line(1, "prompt> ", tag="P"))
    assert list(read_entries(files)) == [
        entry(0, "done"),
        LogEntry(time=at(1), stream="stdout", data=b"prompt> "),
    ]


def test_malformed_lines_are_skipped(files: LogFiles) -> None:
    write_series(files, line(0, "a") + b"garbage\n" + line(1, "b"))
    assert datas(list(read_entries(files))) == [b"a\n", b"b\n"]


def test_files_are_read_oldest_first(files: LogFiles) -> None:
    write_series(files, lines(2), lines(2, 2), lines(2, 4))
    assert datas(list(read_entries(files))) == [f"l{i}\n".encode() for i in range(6)]


def test_compressed_and_pruned_files(files: LogFiles) -> None:
    write_series(files, lines(2), lines(2, 2), lines(2, 4))
    (_, middle) = files.prune(5)
    files.compress(middle)
    os.unlink(files.path_of(1))
    assert datas(list(read_entries(files))) == [f"l{i}\n".encode() for i in range(2, 6)]


def test_since_is_inclusive_and_until_too(files: LogFiles) -> None:
    write_series(files, lines(6))
    assert datas(list(read_entries(files, since=at(2)))) == [b"l2\n", b"l3\n", b"l4\n", b"l5\n"]
    assert datas(list(read_entries(files, until=at(2)))) == [b"l0\n", b"l1\n", b"l2\n"]
    assert datas(list(read_entries(files, since=at(1), until=at(3)))) == [
        b"l1\n",
        b"l2\n",
        b"l3\n",
    ]


def test_since_skips_files_wholly_before_it(files: LogFiles) -> None:
    write_series(files, lines(2), lines(2, 2), lines(2, 4))
    files.path_of(1).write_bytes(b"not even read\n" * 3)  # would be garbage if read
    assert datas(list(read_entries(files, since=at(3)))) == [b"l3\n", b"l4\n", b"l5\n"]


def test_since_and_until_across_files(files: LogFiles) -> None:
    write_series(files, lines(3), lines(3, 3), lines(3, 6))
    got = datas(list(read_entries(files, since=at(2), until=at(7))))
    assert got == [f"l{i}\n".encode() for i in range(2, 8)]


def test_tail(files: LogFiles) -> None:
    write_series(files, lines(6))
    assert datas(list(read_entries(files, tail=2))) == [b"l4\n", b"l5\n"]
    assert list(read_entries(files, tail=0)) == []
    assert len(list(read_entries(files, tail=100))) == 6
    assert len(list(read_entries(files, tail=-1))) == 6


def test_tail_across_files_reads_only_the_last_ones(files: LogFiles) -> None:
    write_series(files, lines(3), lines(3, 3), lines(3, 6), lines(3, 9))
    files.path_of(1).write_bytes(b"not even read\n" * 3)
    assert datas(list(read_entries(files, tail=4))) == [f"l{i}\n".encode() for i in range(8, 12)]
    assert len(list(read_entries(files, tail=9))) == 9


def test_tail_counts_after_the_time_filter(files: LogFiles) -> None:
    write_series(files, lines(3), lines(3, 3))
    assert datas(list(read_entries(files, until=at(3), tail=2))) == [b"l2\n", b"l3\n"]
    assert datas(list(read_entries(files, since=at(4), tail=5))) == [b"l4\n", b"l5\n"]


def test_tail_includes_a_final_partial_line(files: LogFiles) -> None:
    write_series(files, line(0, "a") + line(1, "b") + line(2, "c", tag="P"))
    assert datas(list(read_entries(files, tail=2))) == [b"b\n", b"c"]


def test_a_read_stops_where_the_log_ended_when_it_began(files: LogFiles) -> None:
    write_series(files, lines(2))
    entries = read_entries(files)
    first = next(entries)
    append(files, line(5, "later"))
    assert [first, *entries] == [entry(0, "l0"), entry(1, "l1")]


# following --------------------------------------------------------------------------------


def test_follow_reads_what_is_there_and_what_comes(files: LogFiles) -> None:
    write_series(files, line(0, "old"))
    reader = EntryReader(LogReader(files))
    assert follow_all(reader) == [entry(0, "old")]
    append(files, line(1, "new") + line(2, "hel", tag="P"))
    assert follow_all(reader) == [entry(1, "new")]
    append(files, line(3, "lo"))
    assert follow_all(reader) == [LogEntry(at(2), "stdout", b"hello\n")]
    assert reader.read() is None


def test_follow_across_rotations_loses_and_repeats_nothing(files: LogFiles) -> None:
    write_series(files, lines(2))
    reader = EntryReader(LogReader(files))
    got = follow_all(reader)
    append(files, lines(2, 2))
    rotate(files)  # the reader has not seen l2, l3 yet: it must finish that file first
    append(files, lines(2, 4))
    got += follow_all(reader)
    files.adopt()
    got += follow_all(reader)
    append(files, lines(1, 6))
    rotate(files)
    files.adopt()
    rotate(files)  # two rotations, the reader behind both
    files.adopt()
    append(files, lines(1, 7))
    got += follow_all(reader)
    assert datas(got) == [f"l{i}\n".encode() for i in range(8)]


def test_follow_waits_in_the_live_file_not_in_the_spare(files: LogFiles) -> None:
    write_series(files, lines(1))
    reader = LogReader(files)
    assert reader.read() == lines(1)
    assert reader.read() == b""
    with open(files.spare, "ab") as spare:  # never happens; if it did, it must not be read
        spare.write(b"spare\n")
    assert reader.read() == b""
    append(files, lines(1, 1))
    assert reader.read() == lines(1, 1)


def test_follow_from_the_end(files: LogFiles) -> None:
    write_series(files, lines(3), lines(2, 3))
    reader = EntryReader(LogReader(files, at_end=True))
    assert reader.read() is None
    append(files, line(9, "new"))
    assert follow_all(reader) == [entry(9, "new")]


def test_follow_before_the_first_file_exists(files: LogFiles) -> None:
    reader = EntryReader(LogReader(files))
    assert reader.read() is None
    files.prepare_run(1000)
    append(files, line(0, "first"))
    assert follow_all(reader) == [entry(0, "first")]


def test_follow_until_ends_at_the_first_later_line(files: LogFiles) -> None:
    write_series(files, lines(2))
    reader = EntryReader(LogReader(files), until=at(3))
    assert datas(follow_all(reader)) == [b"l0\n", b"l1\n"]
    append(files, line(3, "l3") + line(5, "late") + line(2, "never"))
    assert datas(follow_all(reader)) == [b"l3\n"]
    assert reader.ended


def test_follow_flush_gives_a_final_partial_line(files: LogFiles) -> None:
    write_series(files, line(0, "a") + line(1, "$ ", tag="P"))
    reader = EntryReader(LogReader(files))
    assert follow_all(reader) == [entry(0, "a")]
    assert reader.flush() == [LogEntry(at(1), "stdout", b"$ ")]


def test_follow_of_a_compressed_backlog(files: LogFiles) -> None:
    write_series(files, lines(2), lines(2, 2))
    (old,) = files.prune(5)
    files.compress(old)
    assert gzip.decompress(files.listing()[0].path.read_bytes()) == lines(2)
    reader = EntryReader(LogReader(files))
    assert datas(follow_all(reader)) == [f"l{i}\n".encode() for i in range(4)]


def test_a_huge_line_comes_in_parts(files: LogFiles) -> None:
    chunk = "x" * 8192  # conmon writes long lines in chunks of its buffer
    chunks = 300  # 2.4 MiB
    write_series(files, b"".join(line(0, chunk, tag="P") for _ in range(chunks)) + line(1, "end"))
    got = list(read_entries(files))
    assert b"".join(e.data for e in got) == chunk.encode() * chunks + b"end\n"
    assert len(got) == 3 and all(len(e.data) <= (1 << 20) + 8192 for e in got)
    assert not got[0].data.endswith(b"\n") and got[-1].data.endswith(b"end\n")
