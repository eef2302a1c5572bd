"""Interface counters of a container's network namespace, for ``docker stats``.

Read from ``/proc/<pid>/net/dev`` of a process in the namespace: procfs shows the netns of
the process, so the host reads the container's counters without entering it (and nothing
runs inside the container). Loopback is left out, as Docker leaves it out.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.core.protocol import InterfaceStats

__all__ = ["interface_counters", "parse_net_dev"]

# Columns of /proc/net/dev after "name:", in the kernel's order (net/core/net-procfs.c).
_RX_BYTES, _RX_PACKETS, _RX_ERRS, _RX_DROP = 0, 1, 2, 3
_TX_BYTES, _TX_PACKETS, _TX_ERRS, _TX_DROP = 8, 9, 10, 11
_COLUMNS = 16


def parse_net_dev(text: str) -> dict[str, InterfaceStats]:
    """Counters per interface from ``/proc/net/dev`` text (two header lines), without lo."""
    found: dict[str, InterfaceStats] = {}
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if not colon or not name or name == "lo" or len(values) < _COLUMNS:
            continue
        if not all(v.isdigit() for v in values[:_COLUMNS]):
            continue
        n = [int(v) for v in values[:_COLUMNS]]
        found[name] = InterfaceStats(
            rx_bytes=n[_RX_BYTES],
            rx_packets=n[_RX_PACKETS],
            rx_errors=n[_RX_ERRS],
            rx_dropped=n[_RX_DROP],
            tx_bytes=n[_TX_BYTES],
            tx_packets=n[_TX_PACKETS],
            tx_errors=n[_TX_ERRS],
            tx_dropped=n[_TX_DROP],
        )
    return found


def interface_counters(pid: int, *, proc: Path = Path("/proc")) -> dict[str, InterfaceStats]:
    """Counters of the interfaces in ``pid``'s network namespace; empty if the process is
    gone (the container exited between the caller's check and this read)."""
    try:
        text = (proc / str(pid) / "net" / "dev").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return parse_net_dev(text)
