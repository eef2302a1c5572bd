"""Interface counters from /proc/<pid>/net/dev (network.counters)."""

from __future__ import annotations

from pathlib import Path

from dockyard.core.protocol import InterfaceStats
from dockyard.network.counters import interface_counters, parse_net_dev

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     560       8    0    0    0     0          0         0      560       8    0    0    0     0       0          0
  eth0:  538526     394    1    2    0     0          0         0   531016     372    3    4    0     0       0          0
 vxlan7:10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0
"""  # noqa: E501  (as the kernel writes it)


def test_parse_net_dev_skips_headers_and_loopback() -> None:
    got = parse_net_dev(NET_DEV)
    assert set(got) == {"eth0", "vxlan7"}
    assert got["eth0"] == InterfaceStats(
        rx_bytes=538526,
        rx_packets=394,
        rx_errors=1,
        rx_dropped=2,
        tx_bytes=531016,
        tx_packets=372,
        tx_errors=3,
        tx_dropped=4,
    )
    # A name running into its numbers (the kernel pads names to 6 columns).
    assert got["vxlan7"].rx_bytes == 10 and got["vxlan7"].tx_bytes == 20


def test_parse_net_dev_ignores_malformed_lines() -> None:
    assert parse_net_dev("") == {}
    assert parse_net_dev("eth0: 1 2 3\nbad line\neth1: a b c d e f g h i j k l m n o p\n") == {}


def test_interface_counters_reads_the_process_view(tmp_path: Path) -> None:
    (tmp_path / "42" / "net").mkdir(parents=True)
    (tmp_path / "42" / "net" / "dev").write_text(NET_DEV)
    assert interface_counters(42, proc=tmp_path)["eth0"].tx_packets == 372
    assert interface_counters(43, proc=tmp_path) == {}  # the process is gone


def test_interface_counters_of_this_process() -> None:
    # Any process's netns has at least loopback, which is left out.
    assert "lo" not in interface_counters(1)
