"""Container sizes: the one table of what a container may use.

Named as IBM's container cloud named them. A size fixes a container's memory limit, its
CPU weight and the cap on its writable layer; memory is what tenants' memory quotas count.
A container gets its size from the label ``dockyard.size`` or from ``-m`` (rounded up to
the next size), else the default (``micro``, 256 MiB). CPU shares grow with memory, so
under contention a container gets CPU in proportion to its size (``small``, 1 GiB, has
Docker's default weight of 1024). The writable layer may hold 16 times the memory.

=======  =========  ==========  ==============
size     memory     CPU shares  writable layer
=======  =========  ==========  ==============
pico     64 MiB     64          1 GiB
nano     128 MiB    128         2 GiB
micro    256 MiB    256         4 GiB
tiny     512 MiB    512         8 GiB
small    1 GiB      1024        16 GiB
medium   2 GiB      2048        32 GiB
large    4 GiB      4096        64 GiB
xlarge   8 GiB      8192        128 GiB
2xlarge  16 GiB     16384       256 GiB
=======  =========  ==========  ==============
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument
from dockyard.core.units import format_bytes

__all__ = [
    "DEFAULT_SIZE",
    "LARGEST",
    "SIZES",
    "SIZE_LABEL",
    "Size",
    "choose_size",
    "size_for_memory",
    "size_named",
]

MIB = 1024 * 1024
SIZE_LABEL = "dockyard.size"
DEFAULT_SIZE = "micro"
_WRITABLE_PER_MEMORY = 16
_SHARES_PER_MIB = 1  # 1024 shares per GiB


@dataclass(frozen=True, slots=True)
class Size:
    """``memory`` and ``writable`` are bytes; ``cpu_shares`` is the cgroup CPU weight."""

    name: str
    memory: int
    cpu_shares: int
    writable: int

    def describe(self) -> str:
        return f"{self.name} ({format_bytes(self.memory)})"


def _size(name: str, mib: int) -> Size:
    return Size(
        name=name,
        memory=mib * MIB,
        cpu_shares=mib * _SHARES_PER_MIB,
        writable=mib * MIB * _WRITABLE_PER_MEMORY,
    )


SIZES: tuple[Size, ...] = (
    _size("pico", 64),
    _size("nano", 128),
    _size("micro", 256),
    _size("tiny", 512),
    _size("small", 1024),
    _size("medium", 2048),
    _size("large", 4096),
    _size("xlarge", 8192),
    _size("2xlarge", 16384),
)
"""Smallest first."""

LARGEST = SIZES[-1]
_BY_NAME = {s.name: s for s in SIZES}


def size_named(name: str) -> Size:
    """The size called ``name``; InvalidArgument listing the sizes otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        names = ", ".join(s.name for s in SIZES)
        raise InvalidArgument(f"unknown container size {name!r}: choose one of {names}") from None


def size_for_memory(memory: int) -> Size:
    """The smallest size with at least ``memory`` bytes; InvalidArgument beyond the largest."""
    for size in SIZES:
        if memory <= size.memory:
            return size
    raise InvalidArgument(
        f"memory limit {format_bytes(memory)} ({memory}) exceeds the largest container "
        f"size, {LARGEST.describe()}"
    )


def choose_size(*, label: str, memory: int, default: str = DEFAULT_SIZE) -> Size:
    """A container's size from its ``dockyard.size`` label and its memory request (bytes,
    0 for none). A label wins; a memory request larger than the labelled size is refused,
    a smaller one gets the size's memory."""
    if label:
        size = size_named(label.strip())
        if memory > size.memory:
            raise InvalidArgument(
                f"memory limit {format_bytes(memory)} does not fit size {size.describe()}: "
                f"ask for a larger {SIZE_LABEL} or leave -m out"
            )
        return size
    if memory:
        return size_for_memory(memory)
    return size_named(default)
