"""The conntrack entries of an address, found and deleted over ctnetlink.

Unbinding a floating IP must cut its traffic at once (ADR 0018). Deleting its NAT
elements stops new connections, but packets of established ones follow their conntrack
entry, NAT included, for as long as it lives. Deleting the entries makes the next packet
of such a connection "new" (``nf_conntrack_tcp_loose`` picks up mid-stream TCP): it meets
the rules as they are now, finds no DNAT, SNAT or route for the address and is dropped
or leaves from another address, which the peer does not know.

Which entries: those whose original destination is the address (connections to it) and
those whose reply destination is it (connections from it: in the router the SNAT makes
the reply go to it; in the host's namespace, where nothing translates it, the original
source is the address too). Each is looked for by a dump the kernel filters
(``CTA_FILTER``, Linux 5.8) and deleted by its original tuple, as the dump gave it. A
kernel that refuses the filter gets one unfiltered dump, filtered here.

Why not ``conntrack -D``: the tool is not among the host's dependencies
(scripts/setup-host.sh), and a process per call costs milliseconds. A
:class:`Conntrack` talks to the namespace its socket was made in (see
:mod:`dockyard.network.netns`).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from dockyard.core.errors import Unavailable
from dockyard.network.rtnl import NLA_F_NESTED, Message, Netlink, pack_attr, parse_attrs

__all__ = ["NETLINK_NETFILTER", "Conntrack", "Entry"]

NETLINK_NETFILTER = 12

_NFGENMSG = struct.Struct("=BBH")  # family, version, resource id (big-endian, unused)
_NFNETLINK_V0 = 0
_CTNETLINK = 1 << 8  # NFNL_SUBSYS_CTNETLINK in the message type's high byte
_CT_NEW, _CT_GET, _CT_DELETE = 0, 1, 2
_CTA_TUPLE_ORIG, _CTA_TUPLE_REPLY, _CTA_ZONE, _CTA_FILTER = 1, 2, 18, 25
_CTA_TUPLE_IP = 1
_CTA_IP_V4_SRC, _CTA_IP_V4_DST = 1, 2
_CTA_FILTER_ORIG_FLAGS, _CTA_FILTER_REPLY_FLAGS = 1, 2
_FILTER_IP_DST = 1 << 1  # CTA_FILTER_F_CTA_IP_DST
_U32 = struct.Struct("=I")
_DELETES_AT_ONCE = 32  # acks must fit the socket's receive buffer


@dataclass(frozen=True, slots=True)
class Entry:
    """One conntrack entry: its addresses, and what deleting it takes (the original
    tuple's attribute payload and the zone attribute, as the kernel sent them)."""

    orig_src: str
    orig_dst: str
    reply_src: str
    reply_dst: str
    tuple_payload: bytes
    zone: bytes = b""


class Conntrack(Netlink):
    """One NETLINK_NETFILTER socket (the caller's netns, or one made with the netns
    helpers). Not thread-safe."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__(
            sock
            or socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER
            )
        )

    def entries(self, address: str) -> list[Entry]:
        """IPv4 entries whose original or reply destination is ``address``."""
        try:
            found = [
                *self._filtered(address, reply=False),
                *self._filtered(address, reply=True),
            ]
        except Unavailable:
            found = [e for e in self._all() if address in (e.orig_dst, e.reply_dst)]
        unique = {e.tuple_payload + e.zone: e for e in found}
        return list(unique.values())

    def delete_address(self, address: str) -> int:
        """Delete the entries of :meth:`entries` (those gone meanwhile are fine); how many
        there were. Raises ``Unavailable`` if the kernel refuses."""
        found = self.entries(address)
        for start in range(0, len(found), _DELETES_AT_ONCE):
            batch = found[start : start + _DELETES_AT_ONCE]
            self.transact(
                [_delete(e) for e in batch],
                f"delete the conntrack entries of {address}",
                ignore=(errno.ENOENT,),
            )
        return len(found)

    def _filtered(self, address: str, *, reply: bool) -> list[Entry]:
        packed = ipaddress.IPv4Address(address).packed
        ip = pack_attr(_CTA_TUPLE_IP | NLA_F_NESTED, pack_attr(_CTA_IP_V4_DST, packed))
        flags = (_CTA_FILTER_REPLY_FLAGS if reply else _CTA_FILTER_ORIG_FLAGS, _FILTER_IP_DST)
        body = (
            _NFGENMSG.pack(socket.AF_INET, _NFNETLINK_V0, 0)
            + pack_attr((_CTA_TUPLE_REPLY if reply else _CTA_TUPLE_ORIG) | NLA_F_NESTED, ip)
            + pack_attr(_CTA_FILTER | NLA_F_NESTED, pack_attr(flags[0], _U32.pack(flags[1])))
        )
        what = f"list the conntrack entries of {address}"
        return _parse(self.dump(_CTNETLINK | _CT_GET, body, what))

    def _all(self) -> list[Entry]:
        body = _NFGENMSG.pack(socket.AF_INET, _NFNETLINK_V0, 0)
        return _parse(self.dump(_CTNETLINK | _CT_GET, body, "list conntrack entries"))


def _parse(answers: list[tuple[int, bytes, int]]) -> list[Entry]:
    entries = []
    for kind, message, offset in answers:
        if kind != _CTNETLINK | _CT_NEW:
            continue
        attrs = parse_attrs(message, offset + _NFGENMSG.size)
        orig, reply = attrs.get(_CTA_TUPLE_ORIG), attrs.get(_CTA_TUPLE_REPLY)
        if orig is None or reply is None:
            continue
        orig_src, orig_dst = _addresses(orig)
        reply_src, reply_dst = _addresses(reply)
        if not orig_dst:
            continue  # not IPv4
        zone = attrs.get(_CTA_ZONE)
        entries.append(
            Entry(
                orig_src=orig_src,
                orig_dst=orig_dst,
                reply_src=reply_src,
                reply_dst=reply_dst,
                tuple_payload=orig,
                zone=pack_attr(_CTA_ZONE, zone) if zone is not None else b"",
            )
        )
    return entries


def _addresses(tuple_payload: bytes) -> tuple[str, str]:
    ip = parse_attrs(tuple_payload).get(_CTA_TUPLE_IP)
    if ip is None:
        return "", ""
    found = parse_attrs(ip)
    src, dst = found.get(_CTA_IP_V4_SRC), found.get(_CTA_IP_V4_DST)
    if src is None or dst is None or len(src) != 4 or len(dst) != 4:
        return "", ""
    return str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst))


def _delete(entry: Entry) -> Message:
    body = (
        _NFGENMSG.pack(socket.AF_INET, _NFNETLINK_V0, 0)
        + pack_attr(_CTA_TUPLE_ORIG | NLA_F_NESTED, entry.tuple_payload)
        + entry.zone
    )
    return _CTNETLINK | _CT_DELETE, 0, body
