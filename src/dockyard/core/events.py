"""Events: every state change of a tenant's objects, as ``docker events`` reports it.

An event names the kind of object (``type``: container, image, volume, network), what
happened to it (``action``: Docker's verb, such as ``create`` or ``die``; exec and health
actions carry a suffix, ``exec_start: sh``), the object (``actor_id``: a container or
image id, a volume name, a network id) and Docker's ``attributes`` (a container's name,
image and labels, ``exitCode`` of a ``die``, ``signal`` of a ``kill``...).

``seq`` orders the log: it increases by one per event. ``time`` is ns since the epoch and
never decreases along ``seq``, so a time range is a contiguous stretch of the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["EVENT_TYPES", "Event"]

EVENT_TYPES: Final = ("container", "image", "volume", "network")
"""The types Dockyard emits (Docker has more: daemon, plugin, service, node, ...)."""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    tenant: str
    time: int
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
