"""Reading container output back from conmon's k8s-file log (runtime.logs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from dockyard.runtime.logs import LogEntry, follow_entries, parse_line, read_entries

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
def log(tmp_path: Path) -> Path:
    return tmp_path / "ctr.log"


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


def test_missing_file_has_no_entries(log: Path) -> None:
    assert list(read_entries(log)) == []


def test_whole_lines_with_time_and_stream(log: Path) -> None:
    log.write_bytes(line(0, "one") + line(1, "two", stream="stderr") + line(2, ""))
    assert list(read_entries(log)) == [
        entry(0, "one"),
        entry(1, "two", "stderr"),
        entry(2, ""),
    ]


def test_partial_chunks_are_joined_per_stream(log: Path) -> None:
    log.write_bytes(
        line(0, "hel", tag="P")
        + line(1, "oops", stream="stderr", tag="P")
        + line(2, "lo", tag="P")
        + line(3, "!", stream="stderr")
        + line(4, " world")
    )
    assert list(read_entries(log)) == [
        LogEntry(time=at(1), stream="stderr", data=b"oops!\n"),
        LogEntry(time=at(0), stream="stdout", data=b"hello world\n"),
    ]


def test_a_final_partial_line_without_newline_is_still_returned(log: Path) -> None:
    log.write_bytes(line(0, "done") + line(1, "prompt> ", tag="P"))
    assert list(read_entries(log)) == [
        entry(0, "done"),
        LogEntry(time=at(1), stream="stdout", data=b"prompt> "),
    ]


def test_malformed_lines_are_skipped(log: Path) -> None:
    log.write_bytes(line(0, "a") + b"garbage\n" + line(1, "b"))
    assert [e.data for e in read_entries(log)] == [b"a\n", b"b\n"]


def test_since_and_until(log: Path) -> None:
    log.write_bytes(b"".join(line(i, f"l{i}") for i in range(6)))
    assert [e.data for e in read_entries(log, since=at(2))] == [b"l2\n", b"l3\n", b"l4\n", b"l5\n"]
    assert [e.data for e in read_entries(log, until=at(2))] == [b"l0\n", b"l1\n"]
    assert [e.data for e in read_entries(log, since=at(1), until=at(3))] == [b"l1\n", b"l2\n"]


def test_tail(log: Path) -> None:
    log.write_bytes(b"".join(line(i, f"l{i}") for i in range(6)))
    assert [e.data for e in read_entries(log, tail=2)] == [b"l4\n", b"l5\n"]
    assert list(read_entries(log, tail=0)) == []
    assert len(list(read_entries(log, tail=100))) == 6
    assert len(list(read_entries(log, tail=-1))) == 6


def test_tail_counts_after_the_time_filter(log: Path) -> None:
    log.write_bytes(b"".join(line(i, f"l{i}") for i in range(6)))
    assert [e.data for e in read_entries(log, until=at(3), tail=2)] == [b"l1\n", b"l2\n"]


def test_tail_includes_a_final_partial_line(log: Path) -> None:
    log.write_bytes(line(0, "a") + line(1, "b") + line(2, "c", tag="P"))
    assert [e.data for e in read_entries(log, tail=2)] == [b"b\n", b"c"]


# follow_entries ---------------------------------------------------------------------------


def collect(
    log: Path, *, finished_after: float = 0.0, writes: Sequence[bytes] = (), **options: int
) -> list[LogEntry]:
    """Follow ``log`` while a writer appends ``writes`` one by one, then finishes."""

    async def scenario() -> list[LogEntry]:
        done = asyncio.Event()

        async def writer() -> None:
            for chunk in writes:
                await asyncio.sleep(0.02)
                with log.open("ab") as handle:
                    handle.write(chunk)
            await asyncio.sleep(finished_after)
            done.set()

        task = asyncio.create_task(writer())
        got = [e async for e in follow_entries(log, finished=done.is_set, **options)]
        task.cancel()  # ``until`` may end the follow before the writer is done
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return got

    return asyncio.run(asyncio.wait_for(scenario(), timeout=5))


def test_follow_reads_what_is_there_and_what_comes(log: Path) -> None:
    log.write_bytes(line(0, "old"))
    got = collect(
        log, writes=[line(1, "new"), line(2, "hel", tag="P") + line(3, "lo"), line(4, "end")]
    )
    assert got == [
        entry(0, "old"),
        entry(1, "new"),
        LogEntry(at(2), "stdout", b"hello\n"),
        entry(4, "end"),
    ]


def test_follow_waits_for_the_file_to_appear(log: Path) -> None:
    assert collect(log, writes=[line(0, "first")]) == [entry(0, "first")]


def test_follow_ends_with_a_final_partial_line(log: Path) -> None:
    got = collect(log, writes=[line(0, "a"), line(1, "$ ", tag="P")])
    assert got == [entry(0, "a"), LogEntry(at(1), "stdout", b"$ ")]


def test_follow_of_a_finished_container_reads_to_the_end(log: Path) -> None:
    log.write_bytes(line(0, "a") + line(1, "b"))

    async def scenario() -> list[LogEntry]:
        return [e async for e in follow_entries(log, finished=lambda: True)]

    assert asyncio.run(scenario()) == [entry(0, "a"), entry(1, "b")]


def test_follow_tail_applies_to_the_existing_content_only(log: Path) -> None:
    log.write_bytes(b"".join(line(i, f"l{i}") for i in range(5)))
    got = collect(log, writes=[line(5, "l5"), line(6, "l6")], tail=2)
    assert [e.data for e in got] == [b"l3\n", b"l4\n", b"l5\n", b"l6\n"]


def test_follow_since(log: Path) -> None:
    log.write_bytes(b"".join(line(i, f"l{i}") for i in range(3)))
    got = collect(log, writes=[line(3, "l3")], since=at(2))
    assert [e.data for e in got] == [b"l2\n", b"l3\n"]


def test_follow_until_stops_at_the_first_later_line(log: Path) -> None:
    got = collect(
        log, writes=[line(0, "a"), line(1, "b"), line(5, "late")], finished_after=10, until=at(3)
    )
    assert [e.data for e in got] == [b"a\n", b"b\n"]


def test_follow_until_keeps_earlier_lines_already_in_the_file(log: Path) -> None:
    # Same content as read_entries(until=...) would return, even though the later line
    # is read in the same chunk as the earlier ones.
    log.write_bytes(line(0, "a") + line(1, "b") + line(5, "late"))
    got = collect(log, finished_after=10, until=at(3))
    assert [e.data for e in got] == [b"a\n", b"b\n"]


def test_follow_copes_with_truncation(log: Path) -> None:
    log.write_bytes(line(0, "a") + line(1, "b"))

    async def scenario() -> list[LogEntry]:
        done = asyncio.Event()
        got: list[LogEntry] = []

        async def rotate() -> None:
            await asyncio.sleep(0.08)
            log.write_bytes(line(2, "c"))  # truncated and rewritten, shorter
            await asyncio.sleep(0.12)
            done.set()

        task = asyncio.create_task(rotate())
        got = [e async for e in follow_entries(log, finished=done.is_set)]
        await task
        return got

    assert [e.data for e in asyncio.run(scenario())] == [b"a\n", b"b\n", b"c\n"]
