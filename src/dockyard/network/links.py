"""Network interfaces over netlink (pyroute2 ``AsyncIPRoute``): the host's and eth0 inside.

pyroute2 errors are translated here, at the adapter: ``NetlinkError`` and ``OSError``
become ``Unavailable`` (or a more precise kind where the errno says so), re-raised
``from`` the original.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dockyard.core.errors import AlreadyExists, FailedPrecondition, Unavailable
from dockyard.network.names import random_mac

__all__ = ["LOOPBACK_IFINDEX", "HostLinks", "netlink_errors"]

LOOPBACK_IFINDEX = 1  # the kernel gives lo index 1 in every netns


@contextlib.contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    """Translate pyroute2 and socket errors raised in the block into ``Unavailable``."""
    try:
        yield
    except NetlinkError as exc:
        raise Unavailable(f"{what}: {exc.args[-1]} (netlink error {exc.code})") from exc
    except OSError as exc:
        raise Unavailable(f"{what}: {exc}") from exc


class HostLinks:
    """Interfaces of the host's network namespace, over one netlink socket.

    The socket is opened on first use and bound to the running event loop; it joins no
    multicast group, so nothing accumulates in it between requests. ``close()`` is
    idempotent; a later call opens a new socket.
    """

    def __init__(self) -> None:
        self._ipr: Any = None
        self._echo: Any = None  # NLM_F_ECHO on: creations answer with the new link

    def close(self) -> None:
        for ipr in (self._ipr, self._echo):
            if ipr is not None:
                ipr.close()
        self._ipr = self._echo = None

    def _sock(self) -> Any:
        if self._ipr is None:
            self._ipr = AsyncIPRoute(groups=0)
        return self._ipr

    def _echo_sock(self) -> Any:
        if self._echo is None:
            self._echo = AsyncIPRoute(groups=0, nlm_echo=True)
        return self._echo

    async def get(self, name: str) -> Any:
        """The link message of ``name``, or None if there is no such interface."""
        try:
            links = await self._sock().link("get", ifname=name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise Unavailable(f"look up {name}: {exc.args[-1]}") from exc
        return links[0]

    async def add(self, **spec: Any) -> int | None:
        """Create a link (``AsyncIPRoute.link("add", **spec)``).

        Returns the new link's IFLA_LINK (for a veth: the peer's ifindex in the peer's
        netns) when the kernel echoes the creation (Linux >= 6.1), else None.
        Raises ``AlreadyExists`` if the name (or a veth peer's name) is taken,
        ``FailedPrecondition`` if a peer's target process is gone.
        """
        name = spec["ifname"]
        try:
            answer = await self._echo_sock().link("add", **spec)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                raise AlreadyExists(f"interface {name} already exists") from exc
            if exc.code == errno.ESRCH:
                raise FailedPrecondition(f"target process of {name}'s peer is gone") from exc
            raise Unavailable(f"create {name}: {exc.args[-1]} (netlink error {exc.code})") from exc
        for msg in answer:
            if msg.get("event") == "RTM_NEWLINK" and msg.get("ifname") == name:
                link = msg.get("link")
                return int(link) if link else None
        return None

    async def delete(self, name: str) -> None:
        """Delete ``name`` if it exists (idempotent)."""
        try:
            await self._sock().link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise Unavailable(f"delete {name}: {exc.args[-1]}") from exc

    async def ensure_bridge(self, name: str, *, address: str, prefixlen: int) -> int:
        """Make bridge ``name`` exist and be up with ``address/prefixlen``; return its index.

        A new bridge gets a fixed random MAC (see :func:`random_mac`). Other addresses
        already on the bridge are left alone. Raises ``FailedPrecondition`` if ``name``
        is some other kind of interface.
        """
        link = await self.get(name)
        if link is None:
            with contextlib.suppress(AlreadyExists):  # lost a race with another caller
                await self.add(ifname=name, kind="bridge", address=random_mac())
            link = await self.get(name)
            if link is None:
                raise Unavailable(f"bridge {name} vanished while being created")
        if link.get(("linkinfo", "kind")) != "bridge":
            raise FailedPrecondition(f"interface {name} exists and is not a bridge")
        index = int(link["index"])
        with netlink_errors(f"configure bridge {name}"):
            try:
                await self._sock().addr("add", index=index, address=address, prefixlen=prefixlen)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            await self._sock().link("set", index=index, state="up")
        return index

    async def veths_on(self, *, prefix: str, bridges: set[str]) -> list[str]:
        """Names of veths starting with ``prefix`` whose master is one of ``bridges``."""
        with netlink_errors("list links"):
            links = [link async for link in await self._sock().link("dump")]
        by_name = {str(link.get("ifname")): link for link in links}
        masters = {int(by_name[b]["index"]) for b in bridges if b in by_name}
        return [
            name
            for name, link in by_name.items()
            if name.startswith(prefix)
            and link.get(("linkinfo", "kind")) == "veth"
            and link.get("master") in masters
        ]
