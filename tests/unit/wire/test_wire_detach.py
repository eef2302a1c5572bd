"""wire.detach: Docker's detach-key syntax and finding the sequence in input."""

from __future__ import annotations

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.wire.detach import DEFAULT_DETACH_KEYS, EscapeMatcher, parse_detach_keys


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", DEFAULT_DETACH_KEYS),
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-a", b"\x01"),
        ("CTRL-Z,x", b"\x1a" + b"x"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 27, 28, 29, 30, 31])),
        ("a,b", b"ab"),
    ],
)
def test_parse(text: str, keys: bytes) -> None:
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "ab", "ctrl-pq", ",", "a,,b", "é"])
def test_parse_refuses_what_docker_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        parse_detach_keys(text)


def test_sequence_in_one_chunk_stops_the_input_there() -> None:
    matcher = EscapeMatcher(b"\x10\x11")
    assert matcher.feed(b"ls\r\x10\x11exit\r") == (b"ls\r", True)


def test_sequence_split_across_chunks_and_false_starts() -> None:
    matcher = EscapeMatcher(b"\x10\x11")
    assert matcher.feed(b"a\x10") == (b"a", False)  # held: may be the start
    assert matcher.feed(b"b") == (b"\x10b", False)  # a false start is passed on
    assert matcher.feed(b"\x10\x10") == (b"\x10", False)  # the second may start it
    assert matcher.feed(b"\x11") == (b"", True)


def test_longer_sequences_restart_on_a_mismatch() -> None:
    matcher = EscapeMatcher(b"abc")
    assert matcher.feed(b"ababc") == (b"ab", True)
    other = EscapeMatcher(b"abc")
    assert other.feed(b"abx") == (b"abx", False)
