"""rtnetlink packing and parsing against a scripted kernel (dockyard.network.rtnl)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from dockyard.core.errors import AlreadyExists, FailedPrecondition, Unavailable
from dockyard.network.rtnl import (
    Address,
    Link,
    Rtnl,
    default_route,
    delete_link,
    new_veth,
    set_port,
)

_NLMSG = struct.Struct("=IHHII")


def _attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _message(kind: int, seq: int, body: bytes, flags: int = 0) -> bytes:
    return _NLMSG.pack(16 + len(body), kind, flags, seq, 0) + body


def _ack(seq: int, code: int = 0) -> bytes:
    return _message(2, seq, struct.pack("=i", -code) + b"\0" * 16)


class ScriptedKernel:
    """Stands in for a NETLINK_ROUTE socket: records requests, answers from a script."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.answers: list[bytes] = []
        self.respond = lambda seqs: [b"".join(_ack(s) for s in seqs)]

    def bind(self, _address: object) -> None:
        pass

    def close(self) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        seqs = []
        offset = 0
        while offset < len(data):
            size, _kind, _flags, seq, _pid = _NLMSG.unpack_from(data, offset)
            seqs.append(seq)
            offset += size
        self.answers.extend(self.respond(seqs))

    def recv(self, _size: int) -> bytes:
        return self.answers.pop(0)


def _rtnl(kernel: ScriptedKernel) -> Rtnl:
    return Rtnl(kernel)  # type: ignore[arg-type]


def test_transact_sends_one_batch_and_reads_every_ack() -> None:
    kernel = ScriptedKernel()
    rtnl = _rtnl(kernel)
    rtnl.transact([new_veth("ve1", peer="eth0", peer_pid=42), set_port("ve1", alias="c1")], "x")
    assert len(kernel.sent) == 1
    (data,) = kernel.sent
    assert b"ve1\0" in data and b"eth0\0" in data and b"veth\0" in data and b"c1" in data


@pytest.mark.parametrize(
    ("code", "kind"),
    [(errno.EEXIST, AlreadyExists), (errno.ESRCH, FailedPrecondition), (errno.EPERM, Unavailable)],
)
def test_errors_become_kinds(code: int, kind: type[Exception]) -> None:
    kernel = ScriptedKernel()
    kernel.respond = lambda seqs: [_ack(seqs[0], code)]
    with pytest.raises(kind, match=f"netlink error {code}"):
        _rtnl(kernel).transact([delete_link("x")], "delete x")


def test_ignored_errors_and_the_first_error_wins() -> None:
    kernel = ScriptedKernel()
    kernel.respond = lambda seqs: [_ack(seqs[0], errno.ENODEV) + _ack(seqs[1], errno.EPERM)]
    with pytest.raises(Unavailable, match="netlink error 1"):
        _rtnl(kernel).transact([delete_link("a"), delete_link("b")], "x", ignore=(errno.ENODEV,))
    kernel.respond = lambda seqs: [_ack(seqs[0], errno.ENODEV)]
    _rtnl(kernel).transact([delete_link("a")], "x", ignore=(errno.ENODEV,))


def _link(
    seq: int, index: int, name: str, *, kind: str = "", master: int = 0, alias: str = ""
) -> bytes:
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, 0, 0) + _attr(
        3, name.encode() + b"\0"
    )
    if kind:
        body += _attr(18, _attr(1, kind.encode() + b"\0"))
    if master:
        body += _attr(10, struct.pack("=I", master))
    if alias:
        body += _attr(20, alias.encode() + b"\0")
    return _message(16, seq, body, flags=0x2)


def test_link_dump_is_parsed_across_reads() -> None:
    kernel = ScriptedKernel()
    kernel.respond = lambda seqs: [
        _link(seqs[0], 1, "lo") + _link(seqs[0], 2, "br-1", kind="bridge"),
        _link(seqs[0], 3, "ve1", kind="veth", master=2, alias="c1"),
        _message(3, seqs[0], b"\0\0\0\0"),
    ]
    assert _rtnl(kernel).links() == [
        Link(1, "lo"),
        Link(2, "br-1", kind="bridge"),
        Link(3, "ve1", kind="veth", master=2, alias="c1"),
    ]


def test_address_dump_is_parsed() -> None:
    def respond(seqs: list[int]) -> list[bytes]:
        body = struct.pack("=BBBBI", socket.AF_INET, 31, 0, 0, 7) + _attr(
            2, socket.inet_aton("100.64.0.1")
        )
        return [_message(20, seqs[0], body, flags=0x2) + _message(3, seqs[0], b"\0\0\0\0")]

    kernel = ScriptedKernel()
    kernel.respond = respond
    assert _rtnl(kernel).addresses() == [Address(7, "100.64.0.1", 31)]


def test_interrupted_dumps_are_retried() -> None:
    kernel = ScriptedKernel()
    calls = []

    def respond(seqs: list[int]) -> list[bytes]:
        calls.append(seqs)
        flags = 0x2 | (0x10 if len(calls) == 1 else 0)
        return [
            _message(16, seqs[0], _link(seqs[0], 1, "lo")[16:], flags=flags)
            + _message(3, seqs[0], b"\0" * 4)
        ]

    kernel.respond = respond
    assert _rtnl(kernel).links() == [Link(1, "lo")]
    assert len(calls) == 2


def test_default_route_adds_exclusively_or_replaces() -> None:
    create, excl, replace = 0x400, 0x200, 0x100
    kind, flags, _body = default_route("10.0.0.1", 2)
    assert (kind, flags) == (24, create | excl)
    kind, flags, body = default_route("10.0.0.1", 2, replace=True)
    assert (kind, flags) == (24, create | replace)
    assert socket.inet_aton("10.0.0.1") in body
