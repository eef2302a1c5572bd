"""Docker's multiplexed stream framing (wire.framing)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.wire import framing
from dockyard.wire.framing import STDERR, STDIN, STDOUT, SYSERR, FrameReader, frame, stream_number

MIB = 1 << 20


def frames(data: bytes) -> list[tuple[int, bytes]]:
    reader = FrameReader()
    out = reader.feed(data)
    assert reader.feed(b"") == []
    return out


def test_public_surface() -> None:
    assert set(framing.__all__) == {
        "RUN_END",
        "STDERR",
        "STDIN",
        "STDOUT",
        "SYSERR",
        "FrameReader",
        "frame",
        "stream_number",
    }
    assert (STDIN, STDOUT, STDERR, SYSERR) == (0, 1, 2, 3)
    assert framing.RUN_END not in (STDIN, STDOUT, STDERR, SYSERR)


def test_header_is_dockers() -> None:
    assert frame(STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert frame(SYSERR, b"x" * 258)[:8] == b"\x03\x00\x00\x00\x00\x00\x01\x02"


def test_stream_number() -> None:
    assert stream_number("stdout") == STDOUT
    assert stream_number("stderr") == STDERR


def test_round_trip_of_several_frames() -> None:
    data = frame(STDOUT, b"out") + frame(STDERR, b"err") + frame(STDOUT, b"")
    assert frames(data) == [(STDOUT, b"out"), (STDERR, b"err"), (STDOUT, b"")]


def test_reader_waits_for_whole_frames_fed_byte_by_byte() -> None:
    data = frame(STDOUT, b"hello") + frame(STDERR, b"world")
    reader = FrameReader()
    got: list[tuple[int, bytes]] = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
    assert got == [(STDOUT, b"hello"), (STDERR, b"world")]


def test_a_partial_header_yields_nothing_yet() -> None:
    reader = FrameReader()
    assert reader.feed(frame(STDOUT, b"abc")[:7]) == []
    assert reader.feed(b"\x03") == []
    assert reader.feed(b"abc") == [(STDOUT, b"abc")]


@pytest.mark.parametrize("size", [MIB - 1, MIB, MIB + 1, 3 * MIB + 5])
def test_large_payloads_are_split_at_one_mebibyte(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    data = frame(STDERR, payload)
    got = frames(data)
    assert b"".join(p for _, p in got) == payload
    assert {s for s, _ in got} == {STDERR}
    assert all(len(p) <= MIB for _, p in got)
    assert len(got) == max(1, -(-size // MIB))
    assert len(data) == size + 8 * len(got)


def test_sizes_are_big_endian_u32() -> None:
    header = frame(STDOUT, b"a" * MIB)[:8]
    assert struct.unpack(">BxxxL", header) == (STDOUT, MIB)


@settings(max_examples=50)
@given(
    st.lists(st.tuples(st.sampled_from([STDIN, STDOUT, STDERR, SYSERR]), st.binary(max_size=64))),
    st.lists(st.integers(1, 40), max_size=20),
)
def test_round_trip_whatever_the_chunking(
    messages: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    data = b"".join(frame(s, p) for s, p in messages)
    reader = FrameReader()
    got: list[tuple[int, bytes]] = []
    position = 0
    for cut in cuts:
        got += reader.feed(data[position : position + cut])
        position += cut
    got += reader.feed(data[position:])
    assert got == messages


def test_a_large_payload_can_stay_whole() -> None:
    data = b"y" * (3 * MIB)
    assert frames(frame(STDOUT, data, split=False)) == [(STDOUT, data)]
    assert len(frames(frame(STDOUT, data))) == 3
