"""Who is working in a container's root filesystem from the host side (``docker cp``).

A copy or export holds the container's rootfs for as long as it streams. Deleting the
container must not pull the files from under it, nor wait for a slow client: the deletion
aborts every holder and waits until they have let go, then unmounts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

__all__ = ["RootfsUsers"]


class RootfsUsers:
    """Holders of containers' root filesystems, each with a way to abort it."""

    def __init__(self) -> None:
        self._holders: dict[str, dict[object, Callable[[], None]]] = {}
        self._released: dict[str, asyncio.Event] = {}

    @contextlib.contextmanager
    def hold(self, container_id: str, abort: Callable[[], None]) -> Iterator[None]:
        """Hold ``container_id``'s rootfs for the ``with`` block; ``abort`` is called (at
        most once, from the event loop) if the container is deleted meanwhile."""
        key = object()
        holders = self._holders.setdefault(container_id, {})
        holders[key] = abort
        try:
            yield
        finally:
            holders.pop(key, None)
            if not holders:
                self._holders.pop(container_id, None)
                released = self._released.pop(container_id, None)
                if released is not None:
                    released.set()

    def busy(self, container_id: str) -> bool:
        return bool(self._holders.get(container_id))

    async def evict(self, container_id: str) -> None:
        """Abort every holder of ``container_id`` and wait until none is left."""
        holders = self._holders.get(container_id)
        if not holders:
            return
        released = self._released.setdefault(container_id, asyncio.Event())
        for abort in list(holders.values()):
            abort()
        await released.wait()
