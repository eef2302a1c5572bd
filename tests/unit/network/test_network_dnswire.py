"""The DNS codec (dockyard.network.dnswire): pure, bytes in and out."""

from __future__ import annotations

import struct

import pytest
from dns_builders import PTR, TC, A, make_query, parse_reply, wire_name
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core.errors import InvalidArgument
from dockyard.network import dnswire as wire
from dockyard.network.dnswire import Edns, MalformedMessage, Rcode, Type


def header(*, qid: int = 1, flags: int = 0x0100, qd: int = 1, an: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, 0, ar)


def test_parse_a_query() -> None:
    query = wire.parse_query(make_query("Web.MyNet", qid=77))
    assert (query.id, query.flags, query.name) == (77, 0x0100, "web.mynet")
    assert (query.qtype, query.qclass, query.edns) == (Type.A, 1, None)
    assert query.question == wire_name("Web.MyNet") + b"\x00\x01\x00\x01"
    assert query.udp_limit == 512


def test_parse_edns() -> None:
    query = wire.parse_query(make_query("web", payload=4096, version=0))
    assert query.edns == Edns(payload=4096, version=0, dnssec_ok=False)
    assert query.udp_limit == 4096
    assert wire.parse_query(make_query("web", payload=10)).udp_limit == 512


def test_root_name() -> None:
    assert wire.parse_query(make_query("")).name == ""


@pytest.mark.parametrize(
    ("label", "text"),
    [
        (b"a.b", "a\\.b"),
        (b"sp ace", "sp\\032ace"),
        (b"\xff\x00", "\\255\\000"),
        (b'q"(x);@$\\', 'q\\"\\(x\\)\\;\\@\\$\\\\'),
        (b"UP_down-9", "up_down-9"),
        (b"\xc3\x89t\xc3\xa9", "\\195\\137t\\195\\169"),  # only ASCII letters fold
    ],
)
def test_unusual_labels_are_escaped(label: bytes, text: str) -> None:
    message = header() + bytes([len(label)]) + label + b"\x00" + b"\x00\x01\x00\x01"
    assert wire.parse_query(message).name == text


# Few symbols, so that random names often collide if the text form could make them.
labels = st.lists(
    st.sampled_from([b"a", b"A", b".", b"\\", b"0", b"\x00", b"046", b" "]), min_size=1, max_size=4
).map(b"".join)


def text_of(parts: list[bytes]) -> str:
    raw = b"".join(bytes([len(p)]) + p for p in parts) + b"\x00"
    return wire.parse_query(header() + raw + b"\x00\x01\x00\x01").name


@given(st.lists(labels, max_size=3), st.lists(labels, max_size=3))
def test_names_are_equal_only_for_equal_wire_names(one: list[bytes], two: list[bytes]) -> None:
    """The text form is case-blind and nothing else: "a" "b" is not the label "a.b"."""
    same_wire = [p.lower() for p in one] == [p.lower() for p in two]
    assert (text_of(one) == text_of(two)) == same_wire


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"\x00" * 11, "short"),
        (header(qd=0), "no question"),
        (header(qd=2) + wire_name("a") + b"\x00\x01\x00\x01" * 2, "two questions"),
        (header(an=1) + wire_name("a") + b"\x00\x01\x00\x01", "answers"),
        (header() + b"\xc0\x0c\x00\x01\x00\x01", "pointer"),
        (header() + b"\x40" + b"x" * 64 + b"\x00\x00\x01\x00\x01", "long label"),
        (header() + (b"\x3f" + b"x" * 63) * 4 + b"\x00\x00\x01\x00\x01", "256-byte name"),
        (header() + b"\x03ab", "label cut"),
        (header() + b"\x01a", "name cut"),
        (header() + wire_name("a") + b"\x00\x01\x00", "type cut"),
        (header() + wire_name("a") + b"\x00\x01\x00\x01\x00", "trailing"),
        (header(ar=1) + wire_name("a") + b"\x00\x01\x00\x01", "missing additional"),
        (
            header(ar=2)
            + wire_name("a")
            + b"\x00\x01\x00\x01"
            + 2 * (b"\x00" + b"\x00\x29" + b"\x10\x00" + b"\x00" * 6),
            "two OPT",
        ),
        (
            header(ar=1)
            + wire_name("a")
            + b"\x00\x01\x00\x01"
            + b"\x01x\x00\x00\x29\x10\x00"
            + b"\x00" * 6,
            "OPT not at the root",
        ),
        (
            header(ar=1)
            + wire_name("a")
            + b"\x00\x01\x00\x01"
            + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x05ab",
            "OPT data cut",
        ),
    ],
)
def test_malformed_queries(message: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage):
        wire.parse_query(message)


def test_additional_records_with_pointers_are_skipped() -> None:
    cookie = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x01\x02\x03\x04"
    message = header(ar=1) + wire_name("web") + b"\x00\x01\x00\x01" + cookie
    assert wire.parse_query(message).edns is None


def test_malformed_is_invalid_argument() -> None:
    assert issubclass(MalformedMessage, InvalidArgument)


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("5.0.10.10.in-addr.arpa", "10.10.0.5"),
        ("255.255.255.255.in-addr.arpa", "255.255.255.255"),
        ("0.0.0.0.in-addr.arpa", "0.0.0.0"),
        ("10.in-addr.arpa", None),
        ("256.0.0.10.in-addr.arpa", None),
        ("05.0.0.10.in-addr.arpa", None),
        ("a.0.0.10.in-addr.arpa", None),
        ("\\049.0.0.10.in-addr.arpa", None),
        ("1.0.0.10.in-addr.arpa.example", None),
        ("web", None),
    ],
)
def test_ptr_address(name: str, address: str | None) -> None:
    assert wire.ptr_address(name) == address


def test_encode_name() -> None:
    assert wire.encode_name("web.mynet") == b"\x03web\x05mynet\x00"
    assert wire.encode_name("web.mynet.") == b"\x03web\x05mynet\x00"
    assert wire.encode_name("") == b"\x00"
    for bad in ("a..b", "x" * 64, ".".join(["x" * 63] * 4), "é"):
        with pytest.raises(InvalidArgument):
            wire.encode_name(bad)


def test_answer_with_records_and_opt() -> None:
    query = wire.parse_query(make_query("Web", qid=5, payload=4096))
    raw = wire.answer(query, records=[wire.a_record("10.0.0.1", 600)])
    reply = parse_reply(raw)
    assert (reply.id, reply.rcode, reply.question) == (5, 0, ("Web", A, 1))
    assert [(r.name, r.ttl, r.data) for r in reply.answers] == [("Web", 600, "10.0.0.1")]
    [opt] = reply.additional
    assert opt.rtype == Type.OPT and opt.rclass == wire.EDNS_PAYLOAD


def test_answer_badvers_goes_in_the_opt() -> None:
    query = wire.parse_query(make_query("web", payload=4096, version=1))
    raw = wire.answer(query, code=Rcode.BADVERS)
    assert raw[3] & 0x0F == 0
    assert parse_reply(raw).rcode == Rcode.BADVERS


def test_answer_truncates_to_the_limit() -> None:
    query = wire.parse_query(make_query("web"))
    records = [wire.a_record(f"10.0.0.{i}", 600) for i in range(1, 100)]
    raw = wire.answer(query, records=records, limit=512)
    reply = parse_reply(raw)
    assert reply.flags & TC and len(raw) <= 512 and len(raw) + 16 > 512
    assert reply.addresses == [f"10.0.0.{i}" for i in range(1, len(reply.addresses) + 1)]
    assert not parse_reply(wire.answer(query, records=records)).flags & TC


def test_ptr_record() -> None:
    query = wire.parse_query(make_query("1.0.0.10.in-addr.arpa", PTR))
    reply = parse_reply(wire.answer(query, records=[wire.ptr_record("web.net", 60)]))
    assert [(r.rtype, r.data) for r in reply.answers] == [(PTR, "web.net")]


def test_error_keeps_opcode_and_rd() -> None:
    raw = wire.error(9, (4 << 11) | 0x0100 | 0x0400, Rcode.NOTIMP)
    assert raw == struct.pack("!HHHHHH", 9, 0x8000 | (4 << 11) | 0x0100 | 4, 0, 0, 0, 0)


def test_is_answer_to() -> None:
    query = make_query("example.com", qid=0x1111)
    question = wire.parse_query(query).question
    good = bytearray(query)
    good[2] |= 0x80
    assert wire.is_answer_to(bytes(good), qid=0x1111, question=question)
    upper = bytes(good).replace(b"example", b"EXAMPLE")
    assert wire.is_answer_to(upper, qid=0x1111, question=question)
    assert not wire.is_answer_to(bytes(good), qid=0x1112, question=question)
    assert not wire.is_answer_to(query, qid=0x1111, question=question)  # not a response
    other = bytes(good).replace(b"example", b"exampla")
    assert not wire.is_answer_to(other, qid=0x1111, question=question)
    other_type = bytes(good[:-3]) + b"\x1c\x00\x01"
    assert not wire.is_answer_to(other_type, qid=0x1111, question=question)
    header_only = struct.pack("!HHHHHH", 0x1111, 0x8001, 0, 0, 0, 0)
    assert wire.is_answer_to(header_only, qid=0x1111, question=question)
    assert not wire.is_answer_to(b"\x11\x11\x80", qid=0x1111, question=question)


def test_relay_truncated_and_with_id() -> None:
    query = wire.parse_query(make_query("big.example", qid=3))
    upstream = struct.pack("!HHHHHH", 0xAAAA, 0x8180, 1, 40, 0, 0) + query.question + b"x" * 600
    cut = wire.relay_truncated(query, upstream)
    assert cut == struct.pack("!HHHHHH", 3, 0x8180 | 0x0200, 1, 0, 0, 0) + query.question
    assert wire.with_id(upstream, 3)[:2] == b"\x00\x03"
    assert wire.with_id(upstream, 3)[2:] == upstream[2:]
