"""Agent protocol messages survive the JSON round trip (core.protocol with core.serde)."""

from __future__ import annotations

import json

from dockyard.core.protocol import (
    BlkioEntry,
    BlkioStats,
    ContainerStats,
    CpuStats,
    InterfaceStats,
    MemoryStats,
)
from dockyard.core.serde import from_data, to_data


def test_container_stats_round_trip() -> None:
    sample = ContainerStats(
        id="c1",
        read=1_700_000_000_123_456_789,
        running=True,
        cpu=CpuStats(usage=10, percpu_usage=[4, 6], system_usage=99, online_cpus=2, periods=1),
        memory=MemoryStats(usage=5, max_usage=7, limit=9, stats={"cache": 1}),
        pids_current=3,
        pids_limit=1024,
        blkio=BlkioStats(io_service_bytes_recursive=[BlkioEntry(8, 0, "Read", 512)]),
        networks={"eth0": InterfaceStats(rx_bytes=1, tx_bytes=2)},
    )
    wire = json.loads(json.dumps(to_data(sample)))
    assert from_data(ContainerStats, wire) == sample
    # "Not kept" (None) and "kept, empty" ([]) stay apart: Docker sends null and [].
    assert wire["blkio"]["io_serviced_recursive"] is None
    empty = ContainerStats(id="c2", read=1, blkio=BlkioStats(io_serviced_recursive=[]))
    assert from_data(ContainerStats, to_data(empty)).blkio.io_serviced_recursive == []


def test_container_stats_defaults_are_a_zero_sample() -> None:
    sample = from_data(ContainerStats, {"id": "c1", "read": 5})
    assert not sample.running
    assert sample.cpu == CpuStats() and sample.memory == MemoryStats()
    assert sample.networks == {}
