"""A DNS client and a fake upstream server for the embedded DNS tests, written apart
from dockyard.network.dnswire so that the tests do not check the codec against itself."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

A, NS, PTR, MX, TXT, AAAA, OPT, ANY = 1, 2, 12, 15, 16, 28, 41, 255
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

_HEADER = struct.Struct("!HHHHHH")


def wire_name(name: str) -> bytes:
    labels = [label.encode() for label in name.split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def make_query(
    name: str,
    qtype: int = A,
    *,
    qid: int = 0x1234,
    flags: int = RD,
    payload: int | None = None,
    version: int = 0,
) -> bytes:
    """A query for ``name``; with ``payload``, an OPT record advertising it."""
    additional = 0 if payload is None else 1
    message = _HEADER.pack(qid, flags, 1, 0, 0, additional)
    message += wire_name(name) + struct.pack("!HH", qtype, 1)
    if payload is not None:
        message += b"\x00" + struct.pack("!HHIH", OPT, payload, version << 16, 0)
    return message


@dataclass
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: str | bytes  # an address or a name when the type is known, raw bytes otherwise


@dataclass
class Reply:
    id: int
    flags: int
    question: tuple[str, int, int] | None
    answers: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)

    @property
    def rcode(self) -> int:
        opt = [r for r in self.additional if r.rtype == OPT]
        high = (opt[0].ttl >> 24) << 4 if opt else 0
        return high | (self.flags & 0x0F)

    @property
    def addresses(self) -> list[str]:
        return [str(r.data) for r in self.answers if r.rtype == A]


def read_name(message: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):
        length = message[pos]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | message[pos + 1]
            continue
        if length == 0:
            return ".".join(labels), end if end is not None else pos + 1
        labels.append(message[pos + 1 : pos + 1 + length].decode("latin-1"))
        pos += 1 + length
    raise ValueError("pointer loop")


def parse_reply(message: bytes) -> Reply:
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(message)
    pos = 12
    question = None
    if qd:
        qname, pos = read_name(message, pos)
        qtype, qclass = struct.unpack_from("!HH", message, pos)
        pos += 4
        question = (qname, qtype, qclass)
    sections: list[list[Record]] = [[], [], []]
    for index, count in enumerate((an, ns, ar)):
        for _ in range(count):
            name, pos = read_name(message, pos)
            rtype, rclass, ttl, size = struct.unpack_from("!HHIH", message, pos)
            pos += 10
            rdata: str | bytes = message[pos : pos + size]
            if rtype == A:
                rdata = socket.inet_ntoa(message[pos : pos + size])
            elif rtype == PTR:
                rdata = read_name(message, pos)[0]
            pos += size
            sections[index].append(Record(name, rtype, rclass, ttl, rdata))
    assert pos == len(message), "bytes after the last record"
    return Reply(qid, flags, question, sections[0], sections[2])


def reply_to(query: bytes, *, rcode: int = NOERROR, addresses: Iterable[str] = ()) -> bytes:
    """What a well-behaved upstream answers: the question echoed, A records, no OPT."""
    pos = 12
    while query[pos]:
        pos += 1 + query[pos]
    question = query[12 : pos + 5]
    records = [
        b"\xc0\x0c" + struct.pack("!HHIH", A, 1, 300, 4) + socket.inet_aton(ip) for ip in addresses
    ]
    flags = QR | RA | (struct.unpack_from("!H", query, 2)[0] & RD) | rcode
    head = _HEADER.pack(struct.unpack_from("!H", query)[0], flags, 1, len(records), 0, 0)
    return head + question + b"".join(records)


Rule = Callable[[bytes], "bytes | None"]


class FakeUpstream:
    """A DNS server on 127.0.0.1, UDP and TCP on one port, answering by ``rule``.

    ``rule(query) -> answer`` (None: stay silent). ``received`` lists
    ``(transport, query)`` in arrival order.
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.received: list[tuple[str, bytes]] = []
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                upstream.received.append(("udp", data))
                answer = upstream.rule(data)
                if answer is not None:
                    self.transport.sendto(answer, addr)

        for _ in range(20):  # find a port free for both UDP and TCP
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            break
        self.port = port
        self._udp, _ = await loop.create_datagram_endpoint(Udp, sock=udp)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        return self

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                self.received.append(("tcp", data))
                answer = self.rule(data)
                if answer is not None:
                    writer.write(len(answer).to_bytes(2, "big") + answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aexit__(self, *exc: object) -> None:
        assert self._udp is not None and self._tcp is not None
        self._udp.close()
        self._tcp.close()


async def ask_udp(address: tuple[str, int], message: bytes, *, timeout: float = 3.0) -> bytes:
    """Send ``message`` and return the first datagram that comes back."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(address)
        await loop.sock_sendall(sock, message)
        async with asyncio.timeout(timeout):
            return await loop.sock_recv(sock, 65535)


async def silent_udp(address: tuple[str, int], message: bytes, *, wait: float = 0.3) -> bool:
    """Whether ``message`` gets no answer within ``wait`` seconds."""
    try:
        await ask_udp(address, message, timeout=wait)
    except TimeoutError:
        return True
    return False


async def ask_tcp(
    address: tuple[str, int], *messages: bytes, timeout: float = 3.0, chunk: int = 0
) -> list[bytes]:
    """Send ``messages`` framed on one connection (all at once, or ``chunk`` bytes at a
    time) and read one answer per message."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        data = b"".join(len(m).to_bytes(2, "big") + m for m in messages)
        if chunk:
            for start in range(0, len(data), chunk):
                writer.write(data[start : start + chunk])
                await writer.drain()
                await asyncio.sleep(0.001)
        else:
            writer.write(data)
        answers = []
        async with asyncio.timeout(timeout):
            for _ in messages:
                size = int.from_bytes(await reader.readexactly(2), "big")
                answers.append(await reader.readexactly(size))
        return answers
    finally:
        writer.close()
