"""Placement: choose a host for a new container from a read-only view of the cluster.

Pipeline: feasible hosts (enough unreserved memory, and the host that holds the
container's volumes if it has any) -> rank (most free memory first, then fewest
containers, then id for a stable order) -> plan. Pure: the caller gathers the view.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.errors import FailedPrecondition, Unavailable

__all__ = ["HostView", "PlacementRequest", "Plan", "place"]


@dataclass(frozen=True, slots=True)
class HostView:
    """What placement knows of one host: capacity and what is already reserved on it."""

    id: str
    mem_total: int
    mem_reserved: int
    containers: int
    ready: bool = True


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    memory: int
    pinned_host: str = ""  # the host that already holds the container's volumes


@dataclass(frozen=True, slots=True)
class Plan:
    host: str


def place(hosts: list[HostView], request: PlacementRequest) -> Plan:
    """Pick a host, or raise Unavailable (no host at all / none fits) or
    FailedPrecondition (the pinned host is not available)."""
    ready = [h for h in hosts if h.ready]
    if not ready:
        raise Unavailable("no agent is available to run containers")
    if request.pinned_host:
        pinned = [h for h in ready if h.id == request.pinned_host]
        if not pinned:
            raise FailedPrecondition("the container's volumes live on a host that is not available")
        ready = pinned
    feasible = [h for h in ready if h.mem_total - h.mem_reserved >= request.memory]
    if not feasible:
        raise Unavailable(f"no host has {request.memory} bytes of memory free for this container")
    best = min(feasible, key=lambda h: (-(h.mem_total - h.mem_reserved), h.containers, h.id))
    return Plan(host=best.id)
