"""The embedded DNS server of tenant networks: container names, answered at the gateway.

A :class:`DnsServer` answers on one UDP and one TCP socket it is given (the agent
binds them to port 53 of a network's gateway address inside the tenant's router
netns; this module does not care where they come from). What a name means is asked
of a :class:`Resolver`, synchronously, on the event loop: it must answer from memory.
Local answers are computed in the socket's callback, no task or thread per query;
only forwarded queries get a task.

What the server answers, next to what Docker's embedded DNS (libnetwork's
``resolver.go``, moby 28) does:

============================  ======================================================
query                         answer
============================  ======================================================
shorter than a header, or     nothing (an answer to a response is how loops and
a response (QR set)           reflection start; miekg/dns drops these too)
opcode other than QUERY       NOTIMP, header only
unreadable (see dnswire)      FORMERR, header only
EDNS version above 0          BADVERS (RFC 6891 6.1.3)
class other than IN,          NOTIMP
AXFR or IXFR
A, resolver FOUND             the addresses as A records, TTL 600 (Docker's
                              ``respTTL``), rotated to start at a random one (Docker
                              shuffles; either spreads clients over the containers
                              that share an alias)
AAAA, resolver FOUND          NOERROR, no answer (NODATA): we hand out no IPv6
                              address; Docker answers this way for its IPv4-only names
PTR of d.c.b.a.in-addr.arpa   ``Resolver.reverse`` of a.b.c.d; FOUND names become
                              PTR records
ANY, resolver FOUND           the A records
any other type, FOUND         NODATA (Docker does this for MX only and forwards the
                              other types even for its own names, so TXT of a
                              container name comes back NXDOMAIN from upstream)
resolver NODATA               NOERROR, no answer
resolver NXDOMAIN             NXDOMAIN (no SOA: nobody caches the negative answer,
                              RFC 2308 5, so a container that starts is found at once)
resolver NO_FORWARD           SERVFAIL: Docker's answer for a name it does not know on
                              an ``--internal`` network (CVE-2024-29018: the forward
                              would leave from the host, out of a network meant to
                              have no way out)
resolver FORWARD              the query's bytes, under a fresh random id, to each
                              upstream in turn over the asker's transport (a new
                              socket per try: a random source port, RFC 5452); the
                              first answer that is not SERVFAIL or REFUSED is relayed
                              unchanged but for the id (NXDOMAIN included, as Docker
                              since 24.0); SERVFAIL when every upstream failed or
                              timed out, or there are none; REFUSED at once when
                              ``max_forwards`` forwards are already in flight
                              (Docker waits up to 4 s for a slot, then REFUSED)
============================  ======================================================

Forwards leave from the network namespace of the thread that runs the loop, not from
the one the served sockets live in: for the agent, the host's root netns, so the
host's own resolvers (systemd-resolved's 127.0.0.53) are reachable, and so is
everything else the host reaches. That is why NO_FORWARD exists.

Sizes: over UDP an answer is at most 512 bytes, or the asker's EDNS payload size if
larger. A local answer that does not fit keeps the records that fit and sets TC (as
Docker, through miekg's ``Truncate``); a forwarded answer that does not fit is cut
to its header and question with TC set (Docker relays it whole, which a client
without EDNS may reject; the asker retries over TCP either way). Over TCP (RFC 7766)
a connection carries any number of queries, answered in order, and is closed after
``idle_timeout`` without a complete query, or at the first message that cannot be
answered; at most ``max_connections`` are open at once, more are closed on accept.

Names are compared in lowercase; single-label names ("web") are looked up like any
other, with no search domain appended: containers are to get ``options ndots:0`` as
Docker gives them, so a stub resolver sends the name as typed first, and a resolver
that does not know one decides like for any name (Docker forwards them). Answers
echo the question's spelling.

Lifecycle: :meth:`DnsServer.start` serves on the running loop, :meth:`DnsServer.stop`
cancels every forward and connection and closes the sockets. The server owns the two
sockets from its construction on, started or not: :meth:`stop` closes them, and the
caller must not use them after passing them in.

Errors: the constructor raises ``InvalidArgument`` for a socket of the wrong kind or
bound to a wildcard address (the resolver is told which gateway was asked, and a
socket bound to 0.0.0.0 cannot say) and for an unreadable upstream. A resolver that
raises gets its asker a SERVFAIL and a logged traceback: one query's bug must not
stop DNS for the whole network.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import random
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self, cast

from dockyard.core.errors import FailedPrecondition, InvalidArgument
from dockyard.network import dnswire as wire
from dockyard.network.dnswire import Query, Rcode, Type

__all__ = [
    "DOCKER_TTL",
    "MAX_UPSTREAMS",
    "DnsServer",
    "Lookup",
    "Outcome",
    "Resolver",
    "StaticResolver",
    "Upstream",
    "host_upstreams",
]

log = logging.getLogger("dockyard.network.dns")

DOCKER_TTL = 600  # libnetwork's respTTL
MAX_UPSTREAMS = 3  # glibc's MAXNS, and Docker's maxExtDNS


class Outcome(enum.Enum):
    """What a resolver knows about a name (or an address, for a reverse lookup)."""

    FOUND = "found"  # records: IPv4 addresses (lookup) or names (reverse)
    NODATA = "nodata"  # the name is ours but has no record of the asked type
    NXDOMAIN = "nxdomain"  # the name would be ours and does not exist
    FORWARD = "forward"  # not ours: ask the upstream resolvers
    NO_FORWARD = "no_forward"  # not ours, and the asker must not reach upstream


@dataclass(frozen=True, slots=True)
class Lookup:
    """A resolver's answer: an :class:`Outcome`, and the records when it is FOUND.

    Build FOUND answers with :meth:`found`; the others are the class constants
    ``Lookup.NODATA``, ``Lookup.NXDOMAIN``, ``Lookup.FORWARD``, ``Lookup.NO_FORWARD``.
    """

    outcome: Outcome
    records: tuple[str, ...] = ()

    NODATA: ClassVar[Lookup]
    NXDOMAIN: ClassVar[Lookup]
    FORWARD: ClassVar[Lookup]
    NO_FORWARD: ClassVar[Lookup]

    def __post_init__(self) -> None:
        if (self.outcome is Outcome.FOUND) != bool(self.records):
            raise InvalidArgument("a FOUND lookup has records, and only a FOUND lookup")

    @classmethod
    def found(cls, records: Iterable[str]) -> Lookup:
        """FOUND with ``records`` in the resolver's order; NODATA if there are none."""
        kept = tuple(records)
        return cls(Outcome.FOUND, kept) if kept else cls.NODATA


# The hot path compares plain ints and module globals: an enum attribute or an IntEnum
# comparison costs a few hundred nanoseconds each, a tenth of a local answer in all.
_FOUND = Outcome.FOUND
_NODATA = Outcome.NODATA
_PTR = int(Type.PTR)
_ADDRESS_TYPES = frozenset({int(Type.A), int(Type.ANY)})
_NOT_SERVED = frozenset({int(Type.AXFR), int(Type.IXFR)})

Lookup.NODATA = Lookup(Outcome.NODATA)
Lookup.NXDOMAIN = Lookup(Outcome.NXDOMAIN)
Lookup.FORWARD = Lookup(Outcome.FORWARD)
Lookup.NO_FORWARD = Lookup(Outcome.NO_FORWARD)


class Resolver(Protocol):
    """What names mean on a tenant network, as the agent knows it.

    Both methods are called on the event loop for every query and must return at
    once, from memory. ``client`` is the asking container's address, ``server`` the
    gateway address the query arrived at (it names the network).
    """

    def lookup(self, *, client: str, server: str, name: str) -> Lookup:
        """The IPv4 addresses of ``name`` (lowercase, no trailing dot, see dnswire)."""
        ...

    def reverse(self, *, client: str, server: str, address: str) -> Lookup:
        """The names of IPv4 ``address`` (for a PTR query of its in-addr.arpa name)."""
        ...


class StaticResolver:
    """A :class:`Resolver` over fixed tables, the same for every client and gateway.

    ``names`` maps a name to its addresses (an empty list: the name exists but has no
    address, NODATA). Reverse lookups give, for an address, the names that list it, in
    ``names`` order, unless ``addresses`` maps it. Anything else gets ``otherwise``:
    FORWARD by default, NO_FORWARD for an internal network, NXDOMAIN for a closed one.
    For tests, benchmarks and as the smallest example of the protocol.
    """

    def __init__(
        self,
        names: Mapping[str, Sequence[str]],
        *,
        addresses: Mapping[str, Sequence[str]] | None = None,
        otherwise: Lookup = Lookup.FORWARD,
    ) -> None:
        self._names = {_key(name): Lookup.found(found) for name, found in names.items()}
        if addresses is None:
            derived: dict[str, list[str]] = {}
            for name, found in names.items():
                for address in found:
                    derived.setdefault(address, []).append(_key(name))
            addresses = derived
        self._addresses = {address: Lookup.found(found) for address, found in addresses.items()}
        self._otherwise = otherwise

    def lookup(self, *, client: str, server: str, name: str) -> Lookup:
        return self._names.get(name, self._otherwise)

    def reverse(self, *, client: str, server: str, address: str) -> Lookup:
        return self._addresses.get(address, self._otherwise)


def _key(name: str) -> str:
    return name.lower().removesuffix(".")


@dataclass(frozen=True, slots=True)
class Upstream:
    """A resolver to forward to: a numeric address and a port."""

    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """``"1.2.3.4"``, ``"1.2.3.4:5353"``, ``"::1"``, ``"[::1]:5353"``, ``"fe80::1%eth0"``.

        Only numeric addresses: resolving an upstream's name would itself need DNS.
        Raises InvalidArgument otherwise.
        """
        host, port = text.strip(), "53"
        if host.startswith("["):
            host, _, rest = host[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise InvalidArgument(f"invalid upstream {text!r}")
                port = rest[1:]
        elif host.count(":") == 1:
            host, port = host.split(":")
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError as exc:
            raise InvalidArgument(f"invalid upstream {text!r} (want address[:port])") from exc
        if not 0 < number < 65536:
            raise InvalidArgument(f"invalid upstream port in {text!r}")
        return cls(host, number)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def host_upstreams(path: str | Path = "/etc/resolv.conf") -> tuple[Upstream, ...]:
    """The host's resolvers: the first :data:`MAX_UPSTREAMS` ``nameserver`` lines.

    The agent forwards from the host's root netns, so loopback resolvers (systemd's
    127.0.0.53) work and are kept. With no usable line, 127.0.0.1 as glibc does; an
    unreadable file raises OSError.
    """
    found: list[Upstream] = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            with contextlib.suppress(InvalidArgument):
                found.append(Upstream.parse(fields[1]))
    return tuple(found[:MAX_UPSTREAMS]) or (Upstream("127.0.0.1"),)


class DnsServer:
    """DNS for one tenant network on a bound UDP socket and a bound TCP socket.

    ``upstreams`` default to :func:`host_upstreams`; they are tried in order, each for
    at most ``timeout`` seconds (2: two tries fit in glibc's 5 s per query; Docker
    gives each 4). ``ttl`` is the TTL of local answers. Every forward in
    flight and every TCP connection holds a file descriptor, so ``max_forwards`` and
    ``max_connections`` bound what one network can take of the agent's (Docker's 1024
    forwards are per container, in a daemon without a descriptor limit). See the module
    docstring for the answers, the limits and who closes the sockets.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        udp: socket.socket,
        tcp: socket.socket,
        upstreams: Iterable[str | Upstream] | None = None,
        ttl: int = DOCKER_TTL,
        timeout: float = 2.0,
        max_forwards: int = 256,
        max_connections: int = 64,
        idle_timeout: float = 10.0,
    ) -> None:
        self._udp_sock = udp
        self._tcp_sock = tcp
        self._closed = False
        try:
            self._udp_address = _bound_address(udp, socket.SOCK_DGRAM)
            self._tcp_address = _bound_address(tcp, socket.SOCK_STREAM)
            self._upstreams = _upstream_list(upstreams)
            self._ttl = _checked_ttl(ttl)
        except BaseException:
            self._close_sockets()
            raise
        self._resolver = resolver
        self._timeout = timeout
        self._max_forwards = max_forwards
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._forwards = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = 0
        self._udp: _UdpProtocol | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def upstreams(self) -> tuple[Upstream, ...]:
        return self._upstreams

    async def start(self) -> None:
        """Serve on the running loop until :meth:`stop`; call once.

        Raises ``FailedPrecondition`` when called twice or after :meth:`stop`, and the
        loop's OSError when a socket cannot serve (the server is then stopped).
        """
        if self._closed or self._udp is not None:
            raise FailedPrecondition("a DnsServer starts once, before it is stopped")
        loop = asyncio.get_running_loop()
        try:
            _, self._udp = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=self._udp_sock
            )
            self._tcp = await asyncio.start_server(self._serve_connection, sock=self._tcp_sock)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Cancel forwards and connections, close both sockets; idempotent.

        When it returns, the forwards and connections have ended and both sockets are
        closed (a connection accepted at the very last moment is closed on the loop's
        next turn, unanswered).
        """
        if self._closed:
            return
        self._closed = True
        if self._tcp is not None:
            self._tcp.close()  # closes the listening socket at once
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._udp is not None:
            await self._udp.close()
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._close_sockets()

    def close_now(self) -> None:
        """Stop at once, from synchronous code (the sockets' owner is about to close
        them): when this returns the loop no longer watches either socket and both are
        closed; forwards and connections are cancelled and end on the loop's next turns.
        Idempotent; :meth:`stop` afterwards returns at once."""
        if self._closed:
            return
        self._closed = True
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        if self._udp is not None:
            self._udp.abort()
        self._close_sockets()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _close_sockets(self) -> None:
        self._closed = True
        self._udp_sock.close()
        self._tcp_sock.close()

    # answers --------------------------------------------------------------------------

    def respond(
        self, message: bytes, *, client: str, server: str, tcp: bool = False
    ) -> bytes | Query | None:
        """What to do with one message, without I/O: the answer to send, the parsed
        query when it must be forwarded, or None to send nothing.

        ``tcp`` lifts the UDP size limit. Never raises: a resolver's error becomes a
        SERVFAIL (logged).
        """
        try:
            return self._respond(message, client=client, server=server, tcp=tcp)
        except Exception:  # the top of one query: its bug must not stop the network's DNS
            log.exception("DNS query from %s to %s failed", client, server)
            head = wire.peek_header(message)
            return None if head is None else wire.error(head[0], head[1], Rcode.SERVFAIL)

    def _respond(
        self, message: bytes, *, client: str, server: str, tcp: bool
    ) -> bytes | Query | None:
        head = wire.peek_header(message)
        if head is None or head[1] & wire.QR:
            return None
        if wire.opcode(head[1]) != 0:
            return wire.error(head[0], head[1], Rcode.NOTIMP)
        try:
            query = wire.parse_query(message)
        except wire.MalformedMessage:
            return wire.error(head[0], head[1], Rcode.FORMERR)
        if query.edns is not None and query.edns.version != 0:
            return wire.answer(query, code=Rcode.BADVERS)
        qtype = query.qtype
        if query.qclass != wire.CLASS_IN or qtype in _NOT_SERVED:
            return wire.answer(query, code=Rcode.NOTIMP)
        records: list[bytes] = []
        address = wire.ptr_address(query.name) if qtype == _PTR else None
        if address is not None:
            found = self._resolver.reverse(client=client, server=server, address=address)
            if found.outcome is _FOUND:
                records = [wire.ptr_record(name, self._ttl) for name in found.records]
        else:
            found = self._resolver.lookup(client=client, server=server, name=query.name)
            if found.outcome is _FOUND and qtype in _ADDRESS_TYPES:
                records = [wire.a_record(ip, self._ttl) for ip in _rotated(found.records)]
        outcome = found.outcome
        if outcome is _FOUND or outcome is _NODATA:
            limit = wire.MAX_MESSAGE if tcp else query.udp_limit
            return wire.answer(query, records=records, limit=limit)
        if outcome is Outcome.NXDOMAIN:
            return wire.answer(query, code=Rcode.NXDOMAIN)
        if outcome is Outcome.FORWARD and self._upstreams:
            return query
        return wire.answer(query, code=Rcode.SERVFAIL)

    # forwarding -----------------------------------------------------------------------

    async def _forward(self, query: Query, message: bytes, *, tcp: bool) -> bytes:
        """The answer to relay for ``query`` (its bytes are ``message``)."""
        for upstream in self._upstreams:
            qid = secrets.randbits(16)
            try:
                async with asyncio.timeout(self._timeout):
                    exchange = _exchange_tcp if tcp else _exchange_udp
                    reply = await exchange(upstream, wire.with_id(message, qid), qid, query)
            except (OSError, TimeoutError, wire.MalformedMessage) as exc:
                log.debug("upstream %s failed for %s: %r", upstream, query.name, exc)
                continue
            if wire.rcode(reply) in (Rcode.SERVFAIL, Rcode.REFUSED):
                continue
            relayed = wire.with_id(reply, query.id)
            if not tcp and len(relayed) > query.udp_limit:
                return wire.relay_truncated(query, reply)
            return relayed
        return wire.answer(query, code=Rcode.SERVFAIL)

    def _spawn(self, work: asyncio.Task[None]) -> None:
        self._tasks.add(work)
        work.add_done_callback(self._tasks.discard)

    def _udp_message(self, message: bytes, peer: tuple[str, int]) -> None:
        result = self.respond(message, client=peer[0], server=self._udp_address)
        if result is None:
            return
        if isinstance(result, bytes):
            self._udp_send(result, peer)
        elif self._forwards >= self._max_forwards or self._closed:
            self._udp_send(wire.answer(result, code=Rcode.REFUSED), peer)
        else:
            self._forwards += 1
            self._spawn(asyncio.create_task(self._udp_forward(result, message, peer)))

    async def _udp_forward(self, query: Query, message: bytes, peer: tuple[str, int]) -> None:
        try:
            reply = await self._forward(query, message, tcp=False)
        finally:
            self._forwards -= 1
        self._udp_send(reply, peer)

    def _udp_send(self, reply: bytes, peer: tuple[str, int]) -> None:
        udp = self._udp
        if udp is not None:
            udp.send(reply, peer)

    # TCP ------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if self._closed or task is None or self._connections >= self._max_connections:
            writer.close()
            return
        self._spawn(task)
        self._connections += 1
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        try:
            while await self._serve_one(reader, writer, client):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client left, or said nothing for idle_timeout
        finally:
            self._connections -= 1
            writer.close()

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> bool:
        async with asyncio.timeout(self._idle_timeout):
            size = int.from_bytes(await reader.readexactly(2), "big")
            message = await reader.readexactly(size)
        result = self.respond(message, client=client, server=self._tcp_address, tcp=True)
        if result is None:
            return False
        if not isinstance(result, bytes):
            if self._forwards >= self._max_forwards:
                result = wire.answer(result, code=Rcode.REFUSED)
            else:
                self._forwards += 1
                try:
                    result = await self._forward(result, message, tcp=True)
                finally:
                    self._forwards -= 1
        writer.write(len(result).to_bytes(2, "big") + result)
        async with asyncio.timeout(self._idle_timeout):
            await writer.drain()
        return True


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None
        self._paused = False
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._server._udp_message(data, addr)  # the server's own protocol

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for answers to clients that went away: nothing to do.
        log.debug("DNS UDP socket error: %r", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    def send(self, reply: bytes, peer: tuple[str, int]) -> None:
        transport = self._transport
        # Paused: the socket is full and the transport buffers past its high-water mark
        # (64 KiB). A flood then costs its own answers, not our memory.
        if transport is not None and not self._paused and not transport.is_closing():
            transport.sendto(reply, peer)

    def abort(self) -> None:
        """Drop the socket from the loop now (unsent answers are dropped)."""
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # drops unsent answers; close() would wait for them
            await self._lost


def _bound_address(sock: socket.socket, kind: socket.SocketKind) -> str:
    if sock.type != kind:
        raise InvalidArgument("DnsServer wants a UDP socket and a TCP socket")
    host = str(sock.getsockname()[0])
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - refusing the wildcard, not binding it
        raise InvalidArgument(f"a DNS socket must be bound to one address, not {host!r}")
    return host


def _upstream_list(upstreams: Iterable[str | Upstream] | None) -> tuple[Upstream, ...]:
    if upstreams is None:
        return host_upstreams()
    return tuple(up if isinstance(up, Upstream) else Upstream.parse(up) for up in upstreams)


def _checked_ttl(ttl: int) -> int:
    if not 0 <= ttl < 2**31:  # RFC 2181 8
        raise InvalidArgument(f"invalid TTL {ttl}")
    return ttl


def _rotated(records: tuple[str, ...]) -> Sequence[str]:
    if len(records) < 2:
        return records
    start = random.randrange(len(records))  # noqa: S311 - load spreading, not a secret
    return records[start:] + records[:start]


async def _exchange_udp(upstream: Upstream, message: bytes, qid: int, query: Query) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(upstream.family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        # Connected: the kernel drops datagrams from any other address and reports ICMP
        # "port unreachable" as ConnectionRefusedError, so a dead upstream fails fast.
        sock.connect((upstream.host, upstream.port))
        await loop.sock_sendall(sock, message)
        while True:
            # Docker reads up to 64 KiB too: some servers send oversized UDP answers to
            # queries without EDNS, and the asker may still take them.
            reply = await loop.sock_recv(sock, wire.MAX_MESSAGE)
            if wire.is_answer_to(reply, qid=qid, question=query.question):
                return reply


async def _exchange_tcp(upstream: Upstream, message: bytes, qid: int, query: Query) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(upstream.family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (upstream.host, upstream.port))
        await loop.sock_sendall(sock, len(message).to_bytes(2, "big") + message)
        size = int.from_bytes(await _recv_exactly(loop, sock, 2), "big")
        reply = await _recv_exactly(loop, sock, size)
    if not wire.is_answer_to(reply, qid=qid, question=query.question):
        raise wire.MalformedMessage(f"{upstream} answered another question")
    return reply


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionResetError("upstream closed the connection")
        data += chunk
    return bytes(data)
