"""The embedded DNS server (dockyard.network.dns), over real sockets on 127.0.0.1.

Upstream resolvers are FakeUpstream servers on random ports; the client side and the
answer parser live in dns_builders, apart from the codec under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dns_builders import (
    AAAA,
    ANY,
    FORMERR,
    MX,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    OPT,
    PTR,
    QR,
    RA,
    RD,
    REFUSED,
    SERVFAIL,
    TC,
    TXT,
    A,
    FakeUpstream,
    Rule,
    ask_tcp,
    ask_udp,
    make_query,
    parse_reply,
    reply_to,
    silent_udp,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.core.errors import FailedPrecondition, InvalidArgument
from dockyard.network import dnswire as wire
from dockyard.network.dns import (
    DOCKER_TTL,
    DnsServer,
    Lookup,
    Outcome,
    Resolver,
    StaticResolver,
    Upstream,
    host_upstreams,
)


@dataclass
class Serving:
    server: DnsServer
    udp: tuple[str, int]
    tcp: tuple[str, int]


@contextlib.asynccontextmanager
async def serving(
    resolver: Resolver, *, upstreams: Iterable[str] = (), **options: float
) -> AsyncIterator[Serving]:
    """A started DnsServer on 127.0.0.1 (random ports), stopped at the end."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    udp_address, tcp_address = udp.getsockname(), tcp.getsockname()
    server = DnsServer(resolver, udp=udp, tcp=tcp, upstreams=list(upstreams), **options)
    async with server:
        yield Serving(server, udp_address, tcp_address)


@contextlib.asynccontextmanager
async def forwarding(
    resolver: Resolver, rule: Rule, **options: float
) -> AsyncIterator[tuple[Serving, FakeUpstream]]:
    """A started DnsServer whose one upstream is a FakeUpstream answering by ``rule``."""
    async with (
        FakeUpstream(rule) as upstream,
        serving(resolver, upstreams=[upstream.address], **options) as dns,
    ):
        yield dns, upstream


NAMES = {
    "web": ["10.10.0.5"],
    "web.mynet": ["10.10.0.5"],
    "db": ["10.10.0.6"],
    "api": ["10.10.0.7", "10.10.0.8", "10.10.0.9"],
    "pending": [],
}
LOCAL = StaticResolver(NAMES)


def example_a(query: bytes) -> bytes:
    return reply_to(query, addresses=["192.0.2.1"])


def nxdomain(query: bytes) -> bytes:
    return reply_to(query, rcode=NXDOMAIN)


def silent(query: bytes) -> None:
    return None


def run(coro: Coroutine[object, object, None]) -> None:
    asyncio.run(coro)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# local answers ------------------------------------------------------------------------


def test_a_answer_echoes_id_and_question() -> None:
    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            raw = await ask_udp(dns.udp, make_query("web", qid=0xBEEF))
        reply = parse_reply(raw)
        assert reply.id == 0xBEEF
        assert reply.flags & QR and reply.flags & RA and reply.flags & RD
        assert reply.rcode == NOERROR
        assert reply.question == ("web", A, 1)
        assert [(r.name, r.rtype, r.ttl, r.data) for r in reply.answers] == [
            ("web", A, DOCKER_TTL, "10.10.0.5")
        ]
        assert DOCKER_TTL == 600

    run(scenario())


def test_names_are_case_insensitive_and_the_spelling_is_echoed() -> None:
    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            reply = parse_reply(await ask_udp(dns.udp, make_query("wEb.MyNet")))
        assert reply.question == ("wEb.MyNet", A, 1)
        assert [(r.name, r.data) for r in reply.answers] == [("wEb.MyNet", "10.10.0.5")]

    run(scenario())


def test_single_label_and_dotted_names_and_the_root_dot() -> None:
    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            for name in ("db", "db.", "web.mynet", "web.mynet."):
                reply = parse_reply(await ask_udp(dns.udp, make_query(name)))
                assert reply.rcode == NOERROR, name
                assert len(reply.addresses) == 1, name

    run(scenario())


def test_several_addresses_come_in_rotating_order() -> None:
    expected = NAMES["api"]
    rotations = {tuple(expected[i:] + expected[:i]) for i in range(len(expected))}

    async def scenario() -> None:
        firsts = set()
        async with serving(LOCAL) as dns:
            for _ in range(60):
                reply = parse_reply(await ask_udp(dns.udp, make_query("api")))
                assert tuple(reply.addresses) in rotations
                firsts.add(reply.addresses[0])
        assert firsts == set(expected)

    run(scenario())


@pytest.mark.parametrize("qtype", [AAAA, MX, TXT, 65])
def test_other_types_of_a_known_name_are_nodata(qtype: int) -> None:
    async def scenario() -> None:
        async with forwarding(LOCAL, nxdomain) as (dns, upstream):
            reply = parse_reply(await ask_udp(dns.udp, make_query("web", qtype)))
            assert upstream.received == []
        assert reply.rcode == NOERROR
        assert reply.answers == []
        assert reply.question == ("web", qtype, 1)

    run(scenario())


def test_a_known_name_without_address_is_nodata() -> None:
    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            reply = parse_reply(await ask_udp(dns.udp, make_query("pending")))
        assert (reply.rcode, reply.answers) == (NOERROR, [])

    run(scenario())


def test_any_gives_the_a_records() -> None:
    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            reply = parse_reply(await ask_udp(dns.udp, make_query("db", ANY)))
        assert reply.addresses == ["10.10.0.6"]

    run(scenario())


def test_ptr_of_a_container_address() -> None:
    resolver = StaticResolver(NAMES, addresses={"10.10.0.5": ["web.mynet"]})

    async def scenario() -> None:
        async with serving(resolver) as dns:
            reply = parse_reply(await ask_udp(dns.udp, make_query("5.0.10.10.in-addr.arpa", PTR)))
        assert reply.rcode == NOERROR
        assert [(r.name, r.rtype, r.ttl, r.data) for r in reply.answers] == [
            ("5.0.10.10.in-addr.arpa", PTR, DOCKER_TTL, "web.mynet")
        ]

    run(scenario())


def test_reverse_table_is_derived_from_the_names() -> None:
    assert LOCAL.reverse(client="c", server="s", address="10.10.0.6") == Lookup.found(["db"])
    assert LOCAL.reverse(client="c", server="s", address="10.10.9.9") is Lookup.FORWARD


def test_ptr_of_an_unknown_address_follows_the_resolver() -> None:
    internal = StaticResolver(NAMES, otherwise=Lookup.NO_FORWARD)

    async def scenario() -> None:
        async with serving(internal) as dns:
            for name in ("9.9.10.10.in-addr.arpa", "10.in-addr.arpa", "1.0.0.0.ip6.arpa"):
                reply = parse_reply(await ask_udp(dns.udp, make_query(name, PTR)))
                assert reply.rcode == SERVFAIL, name

    run(scenario())


# not ours: NXDOMAIN, forward, no forward ----------------------------------------------


def test_nxdomain_when_the_resolver_says_so() -> None:
    closed = StaticResolver(NAMES, otherwise=Lookup.NXDOMAIN)

    async def scenario() -> None:
        async with forwarding(closed, example_a) as (dns, upstream):
            reply = parse_reply(await ask_udp(dns.udp, make_query("nope")))
            assert upstream.received == []
        assert (reply.rcode, reply.answers) == (NXDOMAIN, [])
        assert reply.question == ("nope", A, 1)

    run(scenario())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_forward_relays_the_upstream_answer_with_the_client_id(transport: str) -> None:
    async def scenario() -> None:
        async with forwarding(LOCAL, example_a) as (dns, upstream):
            query = make_query("Example.COM", qid=0x4242)
            if transport == "udp":
                raw = await ask_udp(dns.udp, query)
            else:
                [raw] = await ask_tcp(dns.tcp, query)
            [(used, sent)] = upstream.received
        assert used == transport
        assert sent[2:] == query[2:]  # the query's bytes, under an id of our own
        assert raw == reply_to(query, addresses=["192.0.2.1"])  # unchanged, client's id

    run(scenario())


def test_forward_relays_nxdomain_and_other_types() -> None:
    async def scenario() -> None:
        async with forwarding(LOCAL, nxdomain) as (dns, upstream):
            nx = parse_reply(await ask_udp(dns.udp, make_query("nope.example")))
            txt = parse_reply(await ask_udp(dns.udp, make_query("example.org", TXT)))
        assert nx.rcode == NXDOMAIN and txt.rcode == NXDOMAIN
        assert txt.question == ("example.org", TXT, 1)
        assert len(upstream.received) == 2

    run(scenario())


def test_internal_network_gets_servfail_and_nothing_leaves() -> None:
    internal = StaticResolver(NAMES, otherwise=Lookup.NO_FORWARD)

    async def scenario() -> None:
        async with forwarding(internal, example_a) as (dns, upstream):
            reply = parse_reply(await ask_udp(dns.udp, make_query("example.com")))
            local = parse_reply(await ask_udp(dns.udp, make_query("web")))
            assert upstream.received == []
        assert (reply.rcode, reply.answers) == (SERVFAIL, [])
        assert local.addresses == ["10.10.0.5"]

    run(scenario())


def test_next_upstream_after_servfail_or_refused() -> None:
    async def scenario() -> None:
        async with (
            FakeUpstream(lambda q: reply_to(q, rcode=SERVFAIL)) as first,
            FakeUpstream(lambda q: reply_to(q, rcode=REFUSED)) as second,
            FakeUpstream(lambda q: reply_to(q, addresses=["192.0.2.7"])) as third,
        ):
            upstreams = [first.address, second.address, third.address]
            async with serving(LOCAL, upstreams=upstreams) as dns:
                reply = parse_reply(await ask_udp(dns.udp, make_query("example.com")))
            assert [len(u.received) for u in (first, second, third)] == [1, 1, 1]
        assert reply.addresses == ["192.0.2.7"]

    run(scenario())


def test_forward_timeout_gives_servfail() -> None:
    async def scenario() -> None:
        async with forwarding(LOCAL, silent, timeout=0.2) as (dns, _upstream):
            started = time.monotonic()
            reply = parse_reply(await ask_udp(dns.udp, make_query("example.com")))
            elapsed = time.monotonic() - started
        assert reply.rcode == SERVFAIL
        assert reply.question == ("example.com", A, 1)
        assert 0.15 < elapsed < 2

    run(scenario())


def test_every_upstream_down_or_none_gives_servfail() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"  # nobody listens once closed

    async def scenario() -> None:
        async with serving(LOCAL, upstreams=[closed], timeout=5) as dns:
            started = time.monotonic()
            down = parse_reply(await ask_udp(dns.udp, make_query("example.com")))
            assert time.monotonic() - started < 2  # ICMP unreachable, no timeout
        async with serving(LOCAL, upstreams=[]) as dns:
            none = parse_reply(await ask_udp(dns.udp, make_query("example.com")))
        assert down.rcode == SERVFAIL and none.rcode == SERVFAIL

    run(scenario())


def test_in_flight_forwards_are_bounded() -> None:
    async def scenario() -> None:
        options = {"timeout": 2.0, "max_forwards": 1}
        async with forwarding(LOCAL, silent, **options) as (dns, upstream):
            pending = asyncio.create_task(ask_udp(dns.udp, make_query("a.example")))
            await wait_until(lambda: len(upstream.received) == 1)
            refused = parse_reply(await ask_udp(dns.udp, make_query("b.example", qid=7)))
            local = parse_reply(await ask_udp(dns.udp, make_query("web")))
            [tcp] = await ask_tcp(dns.tcp, make_query("c.example", qid=8))
            assert parse_reply(await pending).rcode == SERVFAIL  # the upstream's timeout
            assert len(upstream.received) == 1
        assert (refused.id, refused.rcode) == (7, REFUSED)
        assert parse_reply(tcp).rcode == REFUSED
        assert local.addresses == ["10.10.0.5"]

    run(scenario())


def test_a_mismatched_upstream_answer_is_ignored() -> None:
    def wrong_id(query: bytes) -> bytes:
        answer = reply_to(query, addresses=["192.0.2.66"])
        return struct.pack("!H", struct.unpack_from("!H", answer)[0] ^ 1) + answer[2:]

    async def scenario() -> None:
        async with forwarding(LOCAL, wrong_id, timeout=0.2) as (dns, _spoofer):
            reply = parse_reply(await ask_udp(dns.udp, make_query("example.com")))
        assert reply.rcode == SERVFAIL

    run(scenario())


# sizes and TCP --------------------------------------------------------------------------

MANY = StaticResolver({"crowd": [f"10.20.{i // 250}.{i % 250 + 1}" for i in range(60)]})


def test_udp_answer_over_512_bytes_is_truncated() -> None:
    async def scenario() -> None:
        async with serving(MANY) as dns:
            raw = await ask_udp(dns.udp, make_query("crowd"))
            big = await ask_udp(dns.udp, make_query("crowd", payload=4096))
            [tcp] = await ask_tcp(dns.tcp, make_query("crowd"))
        cut = parse_reply(raw)
        assert len(raw) <= 512 and cut.flags & TC
        assert 0 < len(cut.addresses) < 60
        assert len(raw) + 16 > 512  # as many as fit
        whole = parse_reply(big)
        assert not whole.flags & TC and len(whole.addresses) == 60
        assert [r.rtype for r in whole.additional] == [OPT]
        assert not parse_reply(tcp).flags & TC and len(parse_reply(tcp).addresses) == 60

    run(scenario())


def test_edns_payload_below_512_still_gets_512() -> None:
    async def scenario() -> None:
        async with serving(MANY) as dns:
            raw = await ask_udp(dns.udp, make_query("crowd", payload=100))
        assert 400 < len(raw) <= 512

    run(scenario())


def test_forwarded_answer_too_big_for_udp_is_cut_to_the_question() -> None:
    many = [f"192.0.2.{i}" for i in range(1, 60)]

    async def scenario() -> None:
        async with forwarding(LOCAL, lambda q: reply_to(q, addresses=many)) as (dns, _upstream):
            udp = parse_reply(await ask_udp(dns.udp, make_query("big.example", qid=9)))
            [tcp] = await ask_tcp(dns.tcp, make_query("big.example"))
        assert udp.id == 9 and udp.flags & TC and udp.answers == []
        assert udp.question == ("big.example", A, 1)
        assert len(parse_reply(tcp).addresses) == 59

    run(scenario())


def test_tcp_pipelined_and_split_queries_are_answered_in_order() -> None:
    async def scenario() -> None:
        queries = [make_query(n, qid=i) for i, n in enumerate(["web", "db", "api", "nope"])]
        async with forwarding(LOCAL, nxdomain) as (dns, _upstream):
            together = await ask_tcp(dns.tcp, *queries)
            dribbled = await ask_tcp(dns.tcp, *queries, chunk=3)
        for answers in (together, dribbled):
            replies = [parse_reply(raw) for raw in answers]
            assert [r.id for r in replies] == [0, 1, 2, 3]
            assert replies[0].addresses == ["10.10.0.5"]
            assert replies[1].addresses == ["10.10.0.6"]
            assert len(replies[2].addresses) == 3
            assert replies[3].rcode == NXDOMAIN

    run(scenario())


def test_tcp_connection_closed_at_an_unanswerable_message_and_when_idle() -> None:
    async def scenario() -> None:
        async with serving(LOCAL, idle_timeout=0.2) as dns:
            reader, writer = await asyncio.open_connection(*dns.tcp)
            writer.write(b"\x00\x03abc")  # shorter than a header: no answer, goodbye
            assert await asyncio.wait_for(reader.read(), 2) == b""
            writer.close()
            reader, writer = await asyncio.open_connection(*dns.tcp)
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 2) == b""
            assert time.monotonic() - started < 1.5
            writer.close()

    run(scenario())


# malformed input -------------------------------------------------------------------------


def test_garbage_with_a_header_gets_formerr_and_the_server_keeps_serving() -> None:
    bad = [
        make_query("web")[:-2],  # question cut short
        make_query("web") + b"\x00",  # trailing byte
        b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00" + b"\x00" * 10,  # two questions
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # pointer
    ]

    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            for message in bad:
                reply = parse_reply(await ask_udp(dns.udp, message))
                assert (reply.id, reply.rcode, reply.question) == (0x1234, FORMERR, None)
                assert reply.flags & QR
            [tcp] = await ask_tcp(dns.tcp, bad[0])
            assert parse_reply(tcp).rcode == FORMERR
            assert await silent_udp(dns.udp, b"\x01")  # no header: nobody to answer
            response = make_query("web", flags=QR)
            assert await silent_udp(dns.udp, response)  # never answer an answer
            assert parse_reply(await ask_udp(dns.udp, make_query("web"))).addresses

    run(scenario())


def test_other_opcodes_classes_and_edns_versions() -> None:
    update = make_query("web", flags=5 << 11)
    chaos = make_query("version.bind", TXT)[:-2] + b"\x00\x03"
    axfr = make_query("web", 252)

    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            notimp = parse_reply(await ask_udp(dns.udp, update))
            assert notimp.rcode == NOTIMP and (notimp.flags >> 11) & 0xF == 5
            assert parse_reply(await ask_udp(dns.udp, chaos)).rcode == NOTIMP
            assert parse_reply(await ask_udp(dns.udp, axfr)).rcode == NOTIMP
            badvers = parse_reply(
                await ask_udp(dns.udp, make_query("web", payload=1232, version=1))
            )
            assert badvers.rcode == 16 and badvers.answers == []

    run(scenario())


class Broken:
    def lookup(self, *, client: str, server: str, name: str) -> Lookup:
        raise RuntimeError("resolver bug")

    def reverse(self, *, client: str, server: str, address: str) -> Lookup:
        return Lookup.found(["not a valid..name"])


def test_a_resolver_that_fails_costs_one_servfail(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with serving(Broken()) as dns:
            for query in (make_query("web"), make_query("1.0.0.10.in-addr.arpa", PTR)):
                reply = parse_reply(await ask_udp(dns.udp, query))
                assert reply.rcode == SERVFAIL and reply.id == 0x1234

    run(scenario())
    assert "resolver bug" in caplog.text


@pytest.fixture(scope="module")
def offline() -> Iterator[DnsServer]:
    """A server that is never started: respond() is pure."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    server = DnsServer(LOCAL, udp=udp, tcp=tcp, upstreams=["127.0.0.1:9"])
    yield server
    asyncio.run(server.stop())


def check_response(server: DnsServer, message: bytes) -> None:
    for tcp in (False, True):
        result = server.respond(message, client="10.10.0.2", server="10.10.0.1", tcp=tcp)
        if result is None or not isinstance(result, bytes):
            continue  # dropped, or to be forwarded (a parsed query)
        assert len(result) >= 12
        assert result[:2] == message[:2]
        assert result[2] & 0x80  # QR
        assert result[3] & 0x0F != SERVFAIL  # only a crash gives SERVFAIL with this resolver
        if not tcp:
            try:
                limit = wire.parse_query(message).udp_limit
            except wire.MalformedMessage:
                limit = 512
            assert len(result) <= limit


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(offline: DnsServer, message: bytes) -> None:
    check_response(offline, message)


VALID = [
    make_query("web"),
    make_query("api", payload=4096),
    make_query("5.0.10.10.in-addr.arpa", PTR),
    make_query("example.com", MX),
]


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 8),
)
def test_mutated_queries_never_crash(
    offline: DnsServer, query: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    message = bytearray(query)
    for index, value in edits:
        if index < len(message):
            message[index] = value
    check_response(offline, bytes(message[: len(message) - cut]))


def test_malformed_flood_over_udp_then_service() -> None:
    async def scenario() -> None:
        async with serving(LOCAL) as dns:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for i in range(500):
                    sock.sendto(bytes([i % 256]) * (i % 40), dns.udp)
            await asyncio.sleep(0.05)
            assert parse_reply(await ask_udp(dns.udp, make_query("web"))).addresses

    run(scenario())


# lifecycle and configuration ------------------------------------------------------------


def test_stop_cancels_forwards_and_closes_the_sockets() -> None:
    async def scenario() -> None:
        async with forwarding(LOCAL, silent, timeout=30) as (dns, upstream):
            server = dns.server
            asking = asyncio.create_task(ask_udp(dns.udp, make_query("example.com")))
            reader, writer = await asyncio.open_connection(*dns.tcp)
            await wait_until(lambda: len(upstream.received) == 1 and len(server._tasks) == 2)
            udp_sock, tcp_sock = server._udp_sock, server._tcp_sock
            started = time.monotonic()
            await server.stop()
            assert time.monotonic() - started < 1
            assert udp_sock.fileno() == -1 and tcp_sock.fileno() == -1
            assert server._tasks == set()
            assert await asyncio.wait_for(reader.read(), 2) == b""  # connection closed
            writer.close()
            asking.cancel()
            await server.stop()  # idempotent
            with pytest.raises(FailedPrecondition):
                await server.start()

    run(scenario())


def test_stop_before_start_closes_the_sockets() -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    server = DnsServer(LOCAL, udp=udp, tcp=tcp, upstreams=[])
    asyncio.run(server.stop())
    assert udp.fileno() == -1 and tcp.fileno() == -1


@pytest.mark.parametrize("problem", ["wildcard", "swapped", "upstream", "ttl"])
def test_bad_construction_closes_the_sockets(problem: str) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0" if problem == "wildcard" else "127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    pair = (tcp, udp) if problem == "swapped" else (udp, tcp)
    upstreams = ["dns.example:53"] if problem == "upstream" else []
    ttl = -1 if problem == "ttl" else 600
    with pytest.raises(InvalidArgument):
        DnsServer(LOCAL, udp=pair[0], tcp=pair[1], upstreams=upstreams, ttl=ttl)
    assert udp.fileno() == -1 and tcp.fileno() == -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", Upstream("1.2.3.4", 53)),
        ("127.0.0.53:5353", Upstream("127.0.0.53", 5353)),
        ("::1", Upstream("::1", 53)),
        ("[2001:db8::1]:54", Upstream("2001:db8::1", 54)),
        ("fe80::1%eth0", Upstream("fe80::1%eth0", 53)),
    ],
)
def test_upstream_parse(text: str, expected: Upstream) -> None:
    assert Upstream.parse(text) == expected


@pytest.mark.parametrize("text", ["", "dns.google", "1.2.3.4:0", "1.2.3.4:x", "[::1]x", "1.2.3"])
def test_upstream_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        Upstream.parse(text)


def test_host_upstreams_reads_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch corp.example\nnameserver 127.0.0.53\nnameserver bogus\n"
        "nameserver ::1\noptions edns0\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n"
    )
    assert host_upstreams(conf) == (
        Upstream("127.0.0.53"),
        Upstream("::1"),
        Upstream("10.0.0.1"),
    )
    conf.write_text("search x\n")
    assert host_upstreams(conf) == (Upstream("127.0.0.1"),)


def test_lookup_values() -> None:
    assert Lookup.found([]) is Lookup.NODATA
    assert Lookup.found(iter(["10.0.0.1"])).records == ("10.0.0.1",)
    assert Lookup.FORWARD.outcome is Outcome.FORWARD
    with pytest.raises(InvalidArgument):
        Lookup(Outcome.FORWARD, ("10.0.0.1",))
    with pytest.raises(InvalidArgument):
        Lookup(Outcome.FOUND)
