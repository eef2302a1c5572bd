"""Settings of one controller: where it keeps things and the defaults it applies."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.layout import Layout

__all__ = [
    "DEFAULT_BRIDGE_SUBNET",
    "DEFAULT_EVENTS_KEEP",
    "DEFAULT_EVENTS_MAX_AGE",
    "DEFAULT_UID_RANGE_START",
    "ControllerConfig",
]

MIB = 1024 * 1024
DEFAULT_EVENTS_KEEP = 10_000
DEFAULT_EVENTS_MAX_AGE = 7 * 24 * 3600 * 1_000_000_000  # a week, in ns
DEFAULT_BRIDGE_SUBNET = "10.89.0.0/16"
DEFAULT_UID_RANGE_START = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """``bridge_subnet`` is the default network's IPv4 subnet on every host; two instances
    on one host need different ones. ``uid_range_start`` is the first host uid handed to
    tenants. The ``default_*`` limits apply when a create asks for none, so that one
    container can never take the host down (a fork bomb meets ``default_pids``)."""

    layout: Layout
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET
    uid_range_start: int = DEFAULT_UID_RANGE_START
    default_memory: int = 256 * MIB
    default_pids: int = 1024
    max_memory: int = 16 * 1024 * MIB
    default_stop_timeout: int = 10
    log_max_size: int = 16 * MIB
    """Log files of a container that asks for no ``max-size`` hold this many bytes each."""
    log_max_files: int = 3
    """... and at most this many files are kept (``max-file``)."""
    log_max_bytes: int = 256 * MIB
    """The ceiling of ``max-size`` x ``max-file`` for any container (a larger request gets a
    smaller ``max-size`` and a warning)."""
    log_max_files_limit: int = 16
    """The ceiling of ``max-file`` (a larger request is cut down, with a warning)."""
    memory_overcommit: float = 4.0
    """Placement counts a host's memory this many times over: limits are ceilings, and
    most containers use a fraction of theirs (the operator's choice; 1.0 = none)."""
    events_keep: int = DEFAULT_EVENTS_KEEP
    """Events each tenant keeps at most (0: no bound by count)."""
    events_max_age: int = DEFAULT_EVENTS_MAX_AGE
    """Events older than this (ns) are dropped (0: no bound by age)."""
