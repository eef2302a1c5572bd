"""DNS messages on the wire, as far as the embedded server needs them: pure, no I/O.

RFC 1035 section 4 for the layout, RFC 6891 for EDNS(0)'s OPT record, RFC 2308 for
what NXDOMAIN and NODATA look like. The server reads queries and writes answers; of a
forwarded query's answer it only checks the header and the question and relays the
rest untouched, so there is no general record parser here.

A query is read strictly: exactly one question whose name uses no compression pointer,
no answer or authority records, additional records that fit the message exactly, at
most one OPT and that one owned by the root. Anything else raises
:class:`MalformedMessage` (the server answers FORMERR).

Names reach the resolver in presentation form: labels lowercased (ASCII only: DNS
compares names that way, RFC 4343), joined by dots, no trailing dot (the root is "").
A byte other than a letter, digit, ``-`` or ``_`` is escaped as in zone files (``\\.``,
``\\DDD``), so no hostile label can pass for another name ("a.b" as one label is
``a\\.b``).

Answers point their owner names at the question (offset 12), so they echo the asker's
spelling of the name: stub resolvers that randomise its case (the "0x20" hardening)
match their answers.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from dockyard.core.errors import InvalidArgument

__all__ = [
    "AA",
    "CD",
    "CLASS_IN",
    "EDNS_PAYLOAD",
    "HEADER_SIZE",
    "MAX_MESSAGE",
    "MIN_UDP_PAYLOAD",
    "QR",
    "RA",
    "RD",
    "TC",
    "Edns",
    "MalformedMessage",
    "Query",
    "Rcode",
    "Type",
    "a_record",
    "answer",
    "encode_name",
    "error",
    "is_answer_to",
    "opcode",
    "parse_query",
    "peek_header",
    "ptr_address",
    "ptr_record",
    "rcode",
    "relay_truncated",
    "with_id",
]

HEADER_SIZE = 12
MAX_MESSAGE = 65535  # a TCP message's length prefix is 16 bits
MIN_UDP_PAYLOAD = 512  # RFC 1035 4.2.1: what every UDP client accepts
EDNS_PAYLOAD = 1232  # what we advertise in our OPT (the 2020 DNS flag day's size)
CLASS_IN = 1

# Header flag bits (RFC 1035 4.1.1, RFC 4035 for CD).
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
CD = 0x0010
_OPCODE = 0x7800


class Type(IntEnum):
    """Record types the server treats by name; any other number is just a number."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    OPT = 41
    IXFR = 251
    AXFR = 252
    ANY = 255


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16  # extended: the low 4 bits in the header, the rest in the OPT record


class MalformedMessage(InvalidArgument):
    """The bytes are not a DNS query this module can read."""


@dataclass(frozen=True, slots=True)
class Edns:
    """The requester's OPT record: its UDP payload size, EDNS version and DO bit."""

    payload: int
    version: int
    dnssec_ok: bool


class Query(NamedTuple):
    """A parsed query. ``question`` is the question section as received, echoed in answers.

    A named tuple rather than a frozen dataclass: it is built for every query, and a
    frozen dataclass's ``__init__`` costs a tenth of a local answer.
    """

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes
    edns: Edns | None

    @property
    def udp_limit(self) -> int:
        """The largest UDP answer this asker accepts (RFC 6891 6.2.5: never below 512)."""
        if self.edns is None:
            return MIN_UDP_PAYLOAD
        return max(self.edns.payload, MIN_UDP_PAYLOAD)


_HEADER = struct.Struct("!HHHHHH")
_FLAGS = struct.Struct("!H")
_TYPE_CLASS = struct.Struct("!HH")
_RR = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_POINTER_TO_QUESTION = b"\xc0\x0c"
_PLAIN = b"abcdefghijklmnopqrstuvwxyz0123456789-_"
_SPECIAL = '.\\"();@$'  # escaped in zone files (RFC 1035 5.1, and dig's output)


def opcode(flags: int) -> int:
    return (flags & _OPCODE) >> 11


def rcode(message: bytes) -> int:
    """The header's RCODE (low 4 bits) of a message of at least a header's length."""
    return message[3] & 0x0F


def peek_header(message: bytes) -> tuple[int, int] | None:
    """``(id, flags)`` of a message, or None when it is shorter than a header."""
    if len(message) < HEADER_SIZE:
        return None
    return (message[0] << 8) | message[1], (message[2] << 8) | message[3]


def parse_query(message: bytes) -> Query:
    """Read a query (see the module docstring for how strictly). Raises MalformedMessage."""
    if len(message) < HEADER_SIZE:
        raise MalformedMessage("shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(message)
    if qdcount != 1:
        raise MalformedMessage(f"{qdcount} questions")
    if ancount or nscount:
        raise MalformedMessage("a query with answer or authority records")
    name, end = _question_name(message)
    if end + 4 > len(message):
        raise MalformedMessage("question cut short")
    qtype, qclass = _TYPE_CLASS.unpack_from(message, end)
    end += 4
    edns: Edns | None = None
    pos = end
    for _ in range(arcount):
        owner = pos
        pos = _skip_name(message, pos)
        if pos + _RR.size > len(message):
            raise MalformedMessage("additional record cut short")
        rtype, rclass, ttl, rdlength = _RR.unpack_from(message, pos)
        pos += _RR.size + rdlength
        if pos > len(message):
            raise MalformedMessage("additional record data cut short")
        if rtype == Type.OPT:
            if edns is not None:
                raise MalformedMessage("two OPT records")  # RFC 6891 6.1.1
            if message[owner] != 0:
                raise MalformedMessage("OPT record not owned by the root")
            edns = Edns(payload=rclass, version=(ttl >> 16) & 0xFF, dnssec_ok=bool(ttl & 0x8000))
    if pos != len(message):
        raise MalformedMessage(f"{len(message) - pos} bytes after the last record")
    return Query(qid, flags, name, qtype, qclass, bytes(message[HEADER_SIZE:end]), edns)


def _question_name(message: bytes) -> tuple[str, int]:
    labels: list[str] = []
    pos = HEADER_SIZE
    size = len(message)
    while True:
        if pos >= size:
            raise MalformedMessage("name cut short")
        length = message[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            # 0xC0: a compression pointer, pointless in a query's only name; 0x40 and
            # 0x80: extended label types nobody uses (RFC 6891 5).
            raise MalformedMessage("compressed or extended label in the question")
        end = pos + 1 + length
        if end > size:
            raise MalformedMessage("label cut short")
        labels.append(_label_text(message[pos + 1 : end]))
        pos = end
    if pos - HEADER_SIZE > 255:
        raise MalformedMessage("name longer than 255 bytes")
    return ".".join(labels), pos


def _label_text(label: bytes) -> str:
    low = label.lower()  # bytes.lower() changes ASCII letters only, as DNS does
    if not low.translate(None, _PLAIN):
        return low.decode("ascii")
    out = []
    for byte in low:
        char = chr(byte)
        if char in _SPECIAL:
            out.append("\\" + char)
        elif 0x21 <= byte <= 0x7E:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _skip_name(message: bytes, pos: int) -> int:
    """The offset after a (possibly compressed) name; pointers are not followed."""
    size = len(message)
    start = pos
    while True:
        if pos >= size:
            raise MalformedMessage("name cut short")
        length = message[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 2 > size:
                raise MalformedMessage("pointer cut short")
            return pos + 2
        if length > 63:
            raise MalformedMessage("extended label type")
        pos += 1 + length
        if pos - start > 255:
            raise MalformedMessage("name longer than 255 bytes")


def encode_name(name: str) -> bytes:
    """Wire form of a presentation name (plain labels, one trailing dot allowed).

    Raises InvalidArgument for empty or over-long labels, names over 255 bytes and
    anything that is not ASCII; escapes are not supported (no name we serve needs them).
    """
    text = name[:-1] if name.endswith(".") else name
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"DNS name {name!r} is not ASCII") from exc
    if not raw:
        return b"\x00"
    out = bytearray()
    for label in raw.split(b"."):
        if not 0 < len(label) <= 63:
            raise InvalidArgument(f"DNS name {name!r} has an empty or over-long label")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > 255:
        raise InvalidArgument(f"DNS name {name!r} is longer than 255 bytes")
    return bytes(out)


def ptr_address(name: str) -> str | None:
    """The IPv4 address of ``d.c.b.a.in-addr.arpa``, or None if ``name`` is not one."""
    labels = name.split(".")
    if len(labels) != 6 or labels[4] != "in-addr" or labels[5] != "arpa":
        return None
    octets = labels[3::-1]
    for octet in octets:
        # Canonical decimal only: "010" or "+1" is some other name, not an address.
        if not (octet.isdigit() and octet.isascii() and str(int(octet)) == octet):
            return None
        if int(octet) > 255:
            return None
    return ".".join(octets)


def a_record(address: str, ttl: int) -> bytes:
    """An A record owned by the question's name. Raises OSError for a non-IPv4 address."""
    return _POINTER_TO_QUESTION + _RR.pack(Type.A, CLASS_IN, ttl, 4) + socket.inet_aton(address)


def ptr_record(target: str, ttl: int) -> bytes:
    """A PTR record owned by the question's name. Raises InvalidArgument for a bad name."""
    rdata = encode_name(target)
    return _POINTER_TO_QUESTION + _RR.pack(Type.PTR, CLASS_IN, ttl, len(rdata)) + rdata


def answer(
    query: Query,
    *,
    code: int = Rcode.NOERROR,
    records: Sequence[bytes] = (),
    limit: int = MAX_MESSAGE,
) -> bytes:
    """A reply to ``query``: its question, as many ``records`` as fit in ``limit`` bytes.

    When some records do not fit, TC is set (the asker retries over TCP); the records
    that fit are kept, as miekg/dns's Truncate (Docker's) keeps them. An OPT record is
    added when the query had one (RFC 6891 7), carrying the extended rcode.
    """
    flags = QR | RA | (query.flags & (RD | CD)) | (code & 0x0F)
    opt = b""
    if query.edns is not None:
        ttl = ((code >> 4) << 24) | (0x8000 if query.edns.dnssec_ok else 0)
        opt = b"\x00" + _RR.pack(Type.OPT, EDNS_PAYLOAD, ttl, 0)
    size = HEADER_SIZE + len(query.question) + len(opt)
    kept = 0
    for record in records:
        if size + len(record) > limit:
            flags |= TC
            break
        size += len(record)
        kept += 1
    head = _HEADER.pack(query.id, flags, 1, kept, 0, 1 if opt else 0)
    return b"".join((head, query.question, *records[:kept], opt))


def error(qid: int, flags: int, code: int) -> bytes:
    """A header-only reply (FORMERR, NOTIMP) for a query that could not be read."""
    return _HEADER.pack(qid, QR | (flags & (_OPCODE | RD)) | (code & 0x0F), 0, 0, 0, 0)


def with_id(message: bytes, qid: int) -> bytes:
    """``message`` with its id replaced."""
    return qid.to_bytes(2, "big") + message[2:]


def is_answer_to(message: bytes, *, qid: int, question: bytes) -> bool:
    """Whether ``message`` answers the query with this id and question section.

    The name is compared without regard to case (some servers lowercase it); an answer
    without a question (a header-only FORMERR or NOTIMP) is accepted on its id alone.
    """
    head = peek_header(message)
    if head is None or head[0] != qid or not head[1] & QR:
        return False
    qdcount = (message[4] << 8) | message[5]
    if qdcount == 0:
        return True
    end = HEADER_SIZE + len(question)
    if qdcount != 1 or len(message) < end:
        return False
    got = message[HEADER_SIZE:end]
    return got[:-4].lower() == question[:-4].lower() and got[-4:] == question[-4:]


def relay_truncated(query: Query, upstream: bytes) -> bytes:
    """An upstream answer too big for the asker's UDP limit, cut to its header and question.

    The upstream's flags and rcode are kept and TC is set, so the asker retries over
    TCP and gets the whole answer there.
    """
    (flags,) = _FLAGS.unpack_from(upstream, 2)
    return _HEADER.pack(query.id, flags | TC, 1, 0, 0, 0) + query.question
