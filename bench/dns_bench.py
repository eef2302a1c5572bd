"""The embedded DNS server answering local names on loopback.

    .venv/bin/python bench/dns_bench.py [--seconds 3] [--window 32]

- ``respond``: the answer path alone, in process (parse, resolver lookup, build), per
  query.
- ``udp``/``tcp``: a DnsServer in a child process on 127.0.0.1, asked by this process
  with ``--window`` queries in flight (UDP: datagrams; TCP: pipelined on one
  connection) and with one at a time; answers per second, and the server process's CPU
  time per answer (its getrusage, so the syscalls are in).

The client is Python too and usually the bottleneck: the server's CPU per answer is
the number that says what a busy network costs. Names are local (no upstream).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dockyard.network.dns import DnsServer, StaticResolver

NAMES = {
    "web": ["10.10.0.5"],
    "db.mynet": ["10.10.0.6"],
    "api": ["10.10.0.7", "10.10.0.8", "10.10.0.9"],
}


def query(name: str, qid: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in name.encode().split(b"."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


QUERIES = [query(name, 0) for name in NAMES]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def new_sockets() -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    return udp, tcp


def bench_respond(seconds: float) -> dict[str, float]:
    udp, tcp = new_sockets()
    server = DnsServer(StaticResolver(NAMES), udp=udp, tcp=tcp, upstreams=[])
    count = 0
    started = time.perf_counter()
    cpu = cpu_seconds()
    while time.perf_counter() - started < seconds:
        for message in QUERIES * 100:
            server.respond(message, client="10.10.0.2", server="10.10.0.1")
        count += len(QUERIES) * 100
    used = cpu_seconds() - cpu
    asyncio.run(server.stop())
    return {"queries": count, "us_per_query": round(used / count * 1e6, 2)}


# the server, in a child process --------------------------------------------------------


def serve(udp: socket.socket, tcp: socket.socket, control: socket.socket) -> None:
    """Run a DnsServer until told to stop; answer b"c" with this process's CPU seconds."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        control.setblocking(False)

        def on_control() -> None:
            data = control.recv(1)
            if data == b"c":
                control.send(struct.pack("!d", cpu_seconds()))
            elif not done.done():
                done.set_result(None)

        loop.add_reader(control.fileno(), on_control)
        async with DnsServer(StaticResolver(NAMES), udp=udp, tcp=tcp, upstreams=[]):
            await done

    asyncio.run(main())


def server_cpu(control: socket.socket) -> float:
    control.send(b"c")
    return float(struct.unpack("!d", control.recv(8))[0])


def udp_client(address: tuple[str, int], seconds: float, window: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.settimeout(1.0)
        sent = answered = 0

        def send() -> None:
            nonlocal sent
            message = QUERIES[sent % len(QUERIES)]
            sock.send(struct.pack("!H", sent & 0xFFFF) + message[2:])
            sent += 1

        for _ in range(window):
            send()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            try:
                reply = sock.recv(4096)
            except TimeoutError:  # a lost datagram: refill the window
                send()
                continue
            assert reply[2] & 0x80 and reply[3] & 0x0F == 0
            answered += 1
            send()
        return answered


def tcp_client(address: tuple[str, int], seconds: float, window: int) -> int:
    with socket.create_connection(address) as sock:
        stream = sock.makefile("rb")
        framed = [len(q).to_bytes(2, "big") + q for q in QUERIES]
        sent = answered = 0
        deadline = time.perf_counter() + seconds
        sock.sendall(b"".join(framed[i % len(framed)] for i in range(window)))
        sent = window
        while time.perf_counter() < deadline:
            size = int.from_bytes(stream.read(2), "big")
            reply = stream.read(size)
            assert reply[2] & 0x80 and reply[3] & 0x0F == 0
            answered += 1
            sock.sendall(framed[sent % len(framed)])
            sent += 1
        return answered


def bench_loopback(seconds: float, window: int) -> dict[str, dict[str, float]]:
    udp, tcp = new_sockets()
    addresses = {"udp": udp.getsockname(), "tcp": tcp.getsockname()}
    control, child_control = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the server
        control.close()
        try:
            serve(udp, tcp, child_control)
        finally:
            os._exit(0)
    child_control.close()
    udp.close()
    tcp.close()
    time.sleep(0.3)
    results = {}
    try:
        for kind, client in (("udp", udp_client), ("tcp", tcp_client)):
            for depth in (1, window):
                cpu = server_cpu(control)
                started = time.perf_counter()
                answered = client(addresses[kind], seconds, depth)
                elapsed = time.perf_counter() - started
                used = server_cpu(control) - cpu
                results[f"{kind}_window_{depth}"] = {
                    "queries_per_s": round(answered / elapsed),
                    "server_cpu_us_per_query": round(used / answered * 1e6, 1),
                }
    finally:
        control.send(b"q")
        os.waitpid(pid, 0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=32)
    args = parser.parse_args()
    cpus = os.cpu_count()
    result = {
        "machine": f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}",
        "respond": bench_respond(args.seconds),
        **bench_loopback(args.seconds, args.window),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
