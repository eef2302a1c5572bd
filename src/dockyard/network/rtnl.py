"""Just enough rtnetlink for the start path: a veth into a container, its address, route.

Plumbing one container takes six netlink requests. Through pyroute2 they cost 7-13 ms,
mostly the library's own message handling; here they are packed with ``struct``, sent
in two batches (one per namespace) and answered by acks, which takes well under a
millisecond of our time. pyroute2 stays for everything off the hot path (bridges,
listings, cleanup). Errors become the same kinds ``links.py`` raises.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Sequence

from dockyard.core.errors import AlreadyExists, FailedPrecondition, Unavailable
from dockyard.network.netns import socket_in_netns

__all__ = ["Rtnl", "configure_eth0", "create_veth"]

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")
_ERROR = struct.Struct("=i")

_RTM_NEWLINK, _RTM_GETLINK, _RTM_NEWADDR, _RTM_NEWROUTE = 16, 18, 20, 24
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_F_REQUEST, _F_ACK, _F_EXCL, _F_CREATE = 0x1, 0x4, 0x200, 0x400
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MASTER = 1, 3, 10
_IFLA_LINKINFO, _IFLA_NET_NS_PID = 18, 19
_IFLA_INFO_KIND, _IFLA_INFO_DATA, _VETH_INFO_PEER = 1, 2, 1
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_RTA_OIF, _RTA_GATEWAY = 4, 5
_IFF_UP = 0x1
_LOOPBACK = 1


def _attr(kind: int, payload: bytes) -> bytes:
    size = _RTATTR.size + len(payload)
    return _RTATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


class Rtnl:
    """One NETLINK_ROUTE socket (the caller's netns, or one made with socket_in_netns)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self._sock = sock or socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0
        )
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _message(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        self._seq += 1
        header = _NLMSG.pack(_NLMSG.size + len(body), kind, flags | _F_REQUEST, self._seq, 0)
        return self._seq, header + body

    def transact(
        self, messages: Sequence[tuple[int, int, bytes]], what: str, *, precise: bool = True
    ) -> None:
        """Send ``(type, flags, body)`` requests in one write and check every ack.

        The kernel handles them in order; on the first error the remaining requests are
        still answered, and the first error is raised.
        """
        batch = [self._message(kind, flags | _F_ACK, body) for kind, flags, body in messages]
        self._sock.sendall(b"".join(data for _, data in batch))
        pending = {seq for seq, _ in batch}
        failure = 0
        while pending:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                size, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, offset)
                if kind == _NLMSG_ERROR:
                    (code,) = _ERROR.unpack_from(data, offset + _NLMSG.size)
                    pending.discard(seq)
                    if code and not failure:
                        failure = -code
                offset += max((size + 3) & ~3, _NLMSG.size)
        if failure:
            raise _error(failure, what, precise=precise)

    def link_index(self, name: str) -> int:
        """The ifindex of ``name`` in this socket's namespace."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _name(name))
        seq, data = self._message(_RTM_GETLINK, 0, body)
        self._sock.sendall(data)
        while True:
            reply = self._sock.recv(65536)
            _size, kind, _flags, got, _pid = _NLMSG.unpack_from(reply, 0)
            if got != seq:
                continue
            if kind == _NLMSG_ERROR:
                (code,) = _ERROR.unpack_from(reply, _NLMSG.size)
                raise _error(-code, f"look up {name}")
            _family, _type, index, _iflags, _change = _IFINFO.unpack_from(reply, _NLMSG.size)
            return int(index)


def _veth(*, name: str, peer: str, peer_pid: int, peer_mac: str, master: int) -> bytes:
    peer_info = (
        _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        + _attr(_IFLA_IFNAME, _name(peer))
        + _attr(_IFLA_NET_NS_PID, struct.pack("=I", peer_pid))
        + _attr(_IFLA_ADDRESS, _mac(peer_mac))
    )
    linkinfo = _attr(_IFLA_INFO_KIND, _name("veth")) + _attr(
        _IFLA_INFO_DATA, _attr(_VETH_INFO_PEER, peer_info)
    )
    return (
        _IFINFO.pack(socket.AF_UNSPEC, 0, 0, _IFF_UP, _IFF_UP)
        + _attr(_IFLA_IFNAME, _name(name))
        + _attr(_IFLA_MASTER, struct.pack("=I", master))
        + _attr(_IFLA_LINKINFO, linkinfo)
    )


def _link_up(index: int) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, _IFF_UP, _IFF_UP)


def _address(index: int, ip: str, prefixlen: int) -> bytes:
    packed = ipaddress.IPv4Address(ip).packed
    return (
        _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index)
        + _attr(_IFA_LOCAL, packed)
        + _attr(_IFA_ADDRESS, packed)
    )


def _default_route(gateway: str, oif: int) -> bytes:
    return (
        _RTMSG.pack(socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)  # main table, boot, unicast
        + _attr(_RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        + _attr(_RTA_OIF, struct.pack("=I", oif))
    )


def create_veth(host: Rtnl, *, pid: int, veth: str, master: int, mac: str) -> None:
    """Create ``veth``, up, on bridge ``master``, with its peer as ``eth0`` (MAC ``mac``)
    in ``pid``'s netns. AlreadyExists if the name is taken, FailedPrecondition if the
    process is gone."""
    body = _veth(name=veth, peer="eth0", peer_pid=pid, peer_mac=mac, master=master)
    host.transact([(_RTM_NEWLINK, _F_CREATE | _F_EXCL, body)], f"create {veth}")


def configure_eth0(*, pid: int, ip: str, prefixlen: int, gateway: str) -> None:
    """In ``pid``'s netns: address eth0, bring eth0 and lo up, route through ``gateway``."""
    with Rtnl(socket_in_netns(pid, kind=socket.SOCK_RAW)) as inner:
        eth0 = inner.link_index("eth0")
        inner.transact(
            [
                (_RTM_NEWADDR, _F_CREATE | _F_EXCL, _address(eth0, ip, prefixlen)),
                (_RTM_NEWLINK, 0, _link_up(eth0)),  # up before the route needs it
                (_RTM_NEWLINK, 0, _link_up(_LOOPBACK)),
                (_RTM_NEWROUTE, _F_CREATE | _F_EXCL, _default_route(gateway, eth0)),
            ],
            f"configure eth0 in the netns of pid {pid}",
            precise=False,  # anything refused in there is the environment's fault
        )


def _error(code: int, what: str, *, precise: bool = True) -> Exception:
    text = f"{what}: {os.strerror(code)} (netlink error {code})"
    if precise and code == errno.EEXIST:
        return AlreadyExists(text)
    if precise and code == errno.ESRCH:
        return FailedPrecondition(text)
    return Unavailable(text)
