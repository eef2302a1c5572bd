"""Just enough rtnetlink for Dockyard's plumbing: veths, bridges, addresses, routes, dumps.

Plumbing one container takes a handful of netlink requests. Through pyroute2 they cost
7-13 ms, mostly the library's own message handling; here they are packed with
``struct``, sent in batches (one per namespace) and answered by acks, which takes well
under a millisecond of our time. A :class:`Rtnl` talks to the namespace its socket was
made in (see :mod:`dockyard.network.netns`), so one object per router namespace plumbs
that router for life.

Errors become kinds: ``AlreadyExists`` (EEXIST), ``FailedPrecondition`` (ESRCH: a
target process is gone), else ``Unavailable``, with the kernel's text.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from dockyard.core.errors import AlreadyExists, FailedPrecondition, Unavailable
from dockyard.network.netns import socket_in_netns

__all__ = [
    "LOOPBACK_IFINDEX",
    "NLA_F_NESTED",
    "Address",
    "Link",
    "Message",
    "Netlink",
    "Route",
    "Rtnl",
    "add_address",
    "configure_interfaces",
    "default_route",
    "delete_link",
    "delete_route",
    "host_route",
    "link_up",
    "new_bridge",
    "new_veth",
    "pack_attr",
    "parse_attrs",
    "replace_default_route",
    "set_port",
]

LOOPBACK_IFINDEX = 1  # the kernel gives lo index 1 in every netns

Message = tuple[int, int, bytes]
"""One request: ``(type, flags, body)``."""

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")
_ERROR = struct.Struct("=i")
_U32 = struct.Struct("=I")

_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK = 16, 17, 18
_RTM_NEWADDR, _RTM_GETADDR = 20, 22
_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE = 24, 25, 26
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_F_REQUEST, _F_MULTI, _F_ACK, _F_DUMP_INTR = 0x1, 0x2, 0x4, 0x10
_F_DUMP, _F_REPLACE, _F_EXCL, _F_CREATE = 0x300, 0x100, 0x200, 0x400
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MASTER = 1, 3, 10
_IFLA_LINKINFO, _IFLA_NET_NS_PID, _IFLA_IFALIAS, _IFLA_NET_NS_FD = 18, 19, 20, 28
_IFLA_INFO_KIND, _IFLA_INFO_DATA, _IFLA_INFO_SLAVE_KIND, _IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
_VETH_INFO_PEER = 1
_IFLA_BRPORT_ISOLATED = 33
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_TABLE = 1, 4, 5, 15
_MAIN_TABLE, _RTPROT_STATIC, _RT_SCOPE_NOWHERE = 254, 4, 255
NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF
_IFF_UP = 0x1
_RECV = 65536


@dataclass(frozen=True, slots=True)
class Link:
    """An interface as a link dump shows it; ``kind`` is "" for plain devices (lo)."""

    index: int
    name: str
    kind: str = ""
    master: int = 0
    alias: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """An IPv4 route of the main table: ``dst``/``prefixlen`` via ``gateway`` ("" when
    directly connected) on interface ``oif`` (0 when it names none)."""

    dst: str
    prefixlen: int
    oif: int = 0
    gateway: str = ""


@dataclass(frozen=True, slots=True)
class Address:
    """An IPv4 address on interface ``index``."""

    index: int
    address: str
    prefixlen: int


def pack_attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (type ``kind``, ``NLA_F_NESTED`` for a nest), padded."""
    return _attr(kind, payload)


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes in ``data[offset:end]`` by type (flags masked off), payloads raw."""
    return _attrs(data, offset, len(data) if end is None else end)


def _attr(kind: int, payload: bytes) -> bytes:
    size = _RTATTR.size + len(payload)
    return _RTATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + _RTATTR.size <= end:
        size, kind = _RTATTR.unpack_from(data, offset)
        if size < _RTATTR.size:
            break
        found[kind & _NLA_TYPE_MASK] = data[offset + _RTATTR.size : offset + size]
        offset += (size + 3) & ~3
    return found


def _text(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else ""


class Netlink:
    """One netlink socket, of any netlink family: requests sent in batches with their
    acks checked, and dumps. :class:`Rtnl` adds rtnetlink's requests,
    :class:`dockyard.network.conntrack.Conntrack` ctnetlink's.

    Not thread-safe: one thread uses it at a time. ``close()`` is idempotent.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _message(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        self._seq += 1
        header = _NLMSG.pack(_NLMSG.size + len(body), kind, flags | _F_REQUEST, self._seq, 0)
        return self._seq, header + body

    def transact(
        self,
        messages: Sequence[Message],
        what: str,
        *,
        precise: bool = True,
        ignore: tuple[int, ...] = (),
    ) -> None:
        """Send requests in one write and check every ack.

        The kernel handles them in order; on the first error the remaining requests are
        still answered, and the first error not in ``ignore`` (errno values) is raised.
        ``precise=False`` reports every error as ``Unavailable``.
        """
        batch = [self._message(kind, flags | _F_ACK, body) for kind, flags, body in messages]
        self._sock.sendall(b"".join(data for _, data in batch))
        pending = {seq for seq, _ in batch}
        failure = 0
        while pending:
            data = self._sock.recv(_RECV)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                size, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, offset)
                if kind == _NLMSG_ERROR and seq in pending:
                    (code,) = _ERROR.unpack_from(data, offset + _NLMSG.size)
                    pending.discard(seq)
                    if code and -code not in ignore and not failure:
                        failure = -code
                offset += max((size + 3) & ~3, _NLMSG.size)
        if failure:
            raise _error(failure, what, precise=precise)

    def dump(self, kind: int, body: bytes, what: str) -> list[tuple[int, bytes, int]]:
        """``(type, message, offset of its body)`` of every answer to a dump request
        (``kind``, ``body``); an error answer raises as :meth:`transact` does."""
        for _attempt in range(3):
            seq, data = self._message(kind, _F_DUMP, body)
            self._sock.sendall(data)
            found: list[tuple[int, bytes, int]] = []
            interrupted = False
            done = False
            while not done:
                reply = self._sock.recv(_RECV)
                offset = 0
                while offset + _NLMSG.size <= len(reply):
                    size, got, flags, got_seq, _pid = _NLMSG.unpack_from(reply, offset)
                    if got_seq == seq:
                        interrupted |= bool(flags & _F_DUMP_INTR)
                        if got == _NLMSG_DONE:
                            done = True
                        elif got == _NLMSG_ERROR:
                            (code,) = _ERROR.unpack_from(reply, offset + _NLMSG.size)
                            if code:
                                raise _error(-code, what)
                            done = True
                        else:
                            message = reply[offset : offset + size]
                            found.append((got, message, _NLMSG.size))
                    offset += max((size + 3) & ~3, _NLMSG.size)
            if not interrupted:
                return found
        raise Unavailable(f"{what}: the dump kept changing under us")


class Rtnl(Netlink):
    """One NETLINK_ROUTE socket (the caller's netns, or one made with the netns helpers)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__(
            sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        )

    def links(self) -> list[Link]:
        """Every interface of this socket's namespace."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        links = []
        for kind, message, offset in self.dump(_RTM_GETLINK, body, "list links"):
            if kind != _RTM_NEWLINK:
                continue
            _family, _type, index, _flags, _change = _IFINFO.unpack_from(message, offset)
            attrs = _attrs(message, offset + _IFINFO.size, len(message))
            info = attrs.get(_IFLA_LINKINFO)
            link_kind = _text(_attrs(info, 0, len(info)).get(_IFLA_INFO_KIND)) if info else ""
            master = attrs.get(_IFLA_MASTER)
            links.append(
                Link(
                    index=int(index),
                    name=_text(attrs.get(_IFLA_IFNAME)),
                    kind=link_kind,
                    master=_U32.unpack(master)[0] if master else 0,
                    alias=_text(attrs.get(_IFLA_IFALIAS)),
                )
            )
        return links

    def addresses(self) -> list[Address]:
        """Every IPv4 address of this socket's namespace."""
        body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
        found = []
        for kind, message, offset in self.dump(_RTM_GETADDR, body, "list addresses"):
            if kind != _RTM_NEWADDR:
                continue
            family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(message, offset)
            if family != socket.AF_INET:
                continue
            attrs = _attrs(message, offset + _IFADDR.size, len(message))
            raw = attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)
            if raw and len(raw) == 4:
                found.append(Address(int(index), str(ipaddress.IPv4Address(raw)), prefixlen))
        return found

    def link_index(self, name: str) -> int:
        """The ifindex of ``name`` in this socket's namespace (``Unavailable`` if absent)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _name(name))
        seq, data = self._message(_RTM_GETLINK, 0, body)
        self._sock.sendall(data)
        while True:
            reply = self._sock.recv(_RECV)
            _size, kind, _flags, got, _pid = _NLMSG.unpack_from(reply, 0)
            if got != seq:
                continue
            if kind == _NLMSG_ERROR:
                (code,) = _ERROR.unpack_from(reply, _NLMSG.size)
                raise _error(-code, f"look up {name}", precise=False)
            _family, _type, index, _iflags, _change = _IFINFO.unpack_from(reply, _NLMSG.size)
            return int(index)

    def routes(self) -> list[Route]:
        """The IPv4 routes of the main table of this socket's namespace."""
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        found = []
        for kind, message, offset in self.dump(_RTM_GETROUTE, body, "list routes"):
            if kind != _RTM_NEWROUTE:
                continue
            family, dst_len, _src, _tos, table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(
                message, offset
            )
            attrs = _attrs(message, offset + _RTMSG.size, len(message))
            if _RTA_TABLE in attrs:
                table = _U32.unpack(attrs[_RTA_TABLE])[0]
            if family != socket.AF_INET or table != _MAIN_TABLE:
                continue
            dst = attrs.get(_RTA_DST, bytes(4))
            gateway = attrs.get(_RTA_GATEWAY)
            oif = attrs.get(_RTA_OIF)
            found.append(
                Route(
                    dst=str(ipaddress.IPv4Address(dst)),
                    prefixlen=dst_len,
                    oif=_U32.unpack(oif)[0] if oif else 0,
                    gateway=str(ipaddress.IPv4Address(gateway)) if gateway else "",
                )
            )
        return found


# request builders ---------------------------------------------------------------------


def new_veth(
    name: str,
    *,
    peer: str,
    peer_pid: int = 0,
    peer_netns_fd: int = -1,
    peer_mac: str = "",
    master: int = 0,
) -> Message:
    """Create veth ``name``, up (on bridge ``master`` if given), its peer named ``peer``
    in the netns of process ``peer_pid`` or of the open namespace file ``peer_netns_fd``
    (else here), with MAC ``peer_mac`` if given. Fails if a name is taken."""
    peer_info = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _name(peer))
    if peer_pid:
        peer_info += _attr(_IFLA_NET_NS_PID, _U32.pack(peer_pid))
    elif peer_netns_fd >= 0:
        peer_info += _attr(_IFLA_NET_NS_FD, _U32.pack(peer_netns_fd))
    if peer_mac:
        peer_info += _attr(_IFLA_ADDRESS, _mac(peer_mac))
    linkinfo = _attr(_IFLA_INFO_KIND, _name("veth")) + _attr(
        _IFLA_INFO_DATA, _attr(_VETH_INFO_PEER, peer_info)
    )
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, _IFF_UP, _IFF_UP) + _attr(_IFLA_IFNAME, _name(name))
    if master:
        body += _attr(_IFLA_MASTER, _U32.pack(master))
    return _RTM_NEWLINK, _F_CREATE | _F_EXCL, body + _attr(_IFLA_LINKINFO, linkinfo)


def new_bridge(name: str, *, mac: str) -> Message:
    """Create bridge ``name``, up, with the fixed MAC ``mac``. Fails if the name is taken."""
    body = (
        _IFINFO.pack(socket.AF_UNSPEC, 0, 0, _IFF_UP, _IFF_UP)
        + _attr(_IFLA_IFNAME, _name(name))
        + _attr(_IFLA_ADDRESS, _mac(mac))
        + _attr(_IFLA_LINKINFO, _attr(_IFLA_INFO_KIND, _name("bridge")))
    )
    return _RTM_NEWLINK, _F_CREATE | _F_EXCL, body


def set_port(name: str, *, alias: str, isolated: bool = False) -> Message:
    """Give interface ``name`` the alias ``alias`` and, if ``isolated``, make it an
    isolated port of its bridge (IFLA_BRPORT_ISOLATED: it cannot reach other isolated
    ports; the kernel applies bridge-port data of an existing link through its master's
    ``slave_changelink``)."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _name(name))
    body += _attr(_IFLA_IFALIAS, alias.encode())
    if isolated:
        port = _attr(_IFLA_BRPORT_ISOLATED, b"\x01")
        body += _attr(
            _IFLA_LINKINFO,
            _attr(_IFLA_INFO_SLAVE_KIND, _name("bridge")) + _attr(_IFLA_INFO_SLAVE_DATA, port),
        )
    return _RTM_NEWLINK, 0, body


def delete_link(name: str) -> Message:
    """Delete interface ``name`` (a veth takes its peer with it)."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _name(name))
    return _RTM_DELLINK, 0, body


def link_up(index: int) -> Message:
    return _RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, _IFF_UP, _IFF_UP)


def add_address(index: int, ip: str, prefixlen: int) -> Message:
    """Add ``ip/prefixlen`` to interface ``index`` (EEXIST if it is there)."""
    packed = ipaddress.IPv4Address(ip).packed
    body = (
        _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index)
        + _attr(_IFA_LOCAL, packed)
        + _attr(_IFA_ADDRESS, packed)
    )
    return _RTM_NEWADDR, _F_CREATE | _F_EXCL, body


def host_route(dst: str, *, gateway: str, oif: int) -> Message:
    """Route ``dst``/32 via ``gateway`` on interface ``oif`` in the main table, replacing
    a route to ``dst`` there (so adding it twice is fine)."""
    body = (
        _RTMSG.pack(socket.AF_INET, 32, 0, 0, _MAIN_TABLE, _RTPROT_STATIC, 0, 1, 0)
        + _attr(_RTA_DST, ipaddress.IPv4Address(dst).packed)
        + _attr(_RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        + _attr(_RTA_OIF, _U32.pack(oif))
    )
    return _RTM_NEWROUTE, _F_CREATE | _F_REPLACE, body


def delete_route(dst: str, *, oif: int = 0) -> Message:
    """Delete the route to ``dst``/32 of the main table (through ``oif`` only, if not 0):
    ESRCH when there is none."""
    body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, _MAIN_TABLE, 0, _RT_SCOPE_NOWHERE, 0, 0)
    body += _attr(_RTA_DST, ipaddress.IPv4Address(dst).packed)
    if oif:
        body += _attr(_RTA_OIF, _U32.pack(oif))
    return _RTM_DELROUTE, 0, body


def default_route(gateway: str, oif: int, *, replace: bool = False) -> Message:
    """Add the default route via ``gateway`` on interface ``oif`` (EEXIST if one exists),
    or with ``replace`` put it in place of the one there (if any)."""
    body = (
        _RTMSG.pack(socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)  # main table, boot, unicast
        + _attr(_RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        + _attr(_RTA_OIF, _U32.pack(oif))
    )
    return _RTM_NEWROUTE, _F_CREATE | (_F_REPLACE if replace else _F_EXCL), body


# the container side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Interface:
    name: str
    ip: str
    prefixlen: int
    gateway: str  # "" : no default route through it


def configure_interfaces(pid: int, interfaces: Sequence[tuple[str, str, int, str]]) -> None:
    """In ``pid``'s netns, for each ``(name, ip, prefixlen, gateway)``: address the
    interface and bring it up, then the default route via ``gateway`` where it is not
    "" (at most one); lo up. One netns switch, one lookup per interface, one batch.

    Anything refused in there is the environment's fault: ``Unavailable``;
    ``FailedPrecondition`` if the process is gone.
    """
    wanted = [_Interface(*item) for item in interfaces]
    with Rtnl(socket_in_netns(pid, kind=socket.SOCK_RAW)) as inner:
        indexes = [inner.link_index(item.name) for item in wanted]
        messages: list[Message] = []
        for item, index in zip(wanted, indexes, strict=True):
            messages.append(add_address(index, item.ip, item.prefixlen))
            messages.append(link_up(index))  # up before the route needs it
        messages.append(link_up(LOOPBACK_IFINDEX))
        for item, index in zip(wanted, indexes, strict=True):
            if item.gateway:
                messages.append(default_route(item.gateway, index))
        inner.transact(messages, f"configure interfaces in the netns of pid {pid}", precise=False)


def replace_default_route(pid: int, *, interface: str, gateway: str) -> None:
    """In ``pid``'s netns, make the default route go via ``gateway`` on ``interface``
    (replacing the one there, if any), in one request: the container is never without
    one. ``Unavailable`` if refused, ``FailedPrecondition`` if the process is gone."""
    with Rtnl(socket_in_netns(pid, kind=socket.SOCK_RAW)) as inner:
        index = inner.link_index(interface)
        inner.transact(
            [default_route(gateway, index, replace=True)],
            f"move the default route in the netns of pid {pid} to {interface}",
            precise=False,
        )


def _error(code: int, what: str, *, precise: bool = True) -> Exception:
    text = f"{what}: {os.strerror(code)} (netlink error {code})"
    if precise and code == errno.EEXIST:
        return AlreadyExists(text)
    if precise and code == errno.ESRCH:
        return FailedPrecondition(text)
    return Unavailable(text)
