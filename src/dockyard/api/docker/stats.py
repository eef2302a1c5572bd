"""``GET /containers/{id}/stats`` (ContainerStats): Docker's stats JSON, streamed or once.

Docker's behaviour, kept here:

- ``stream`` (default true): one JSON document per second, each with ``precpu_stats`` and
  ``preread`` from the previous one (zero in the first). The stream ends when the container
  is removed or the client goes; a container that is not running streams zero samples
  (name and id only), as Docker's collector publishes them, until it runs again.
- ``stream=false``: two samples a second apart, the second sent with the first as
  ``precpu_stats``, so a client can compute CPU% from one answer (``docker stats
  --no-stream`` does). With ``one-shot=true`` (API 1.41+) one sample, sent at once, with
  zero ``precpu_stats``. A container that is not running answers a zero sample at once.
- Fields Go's encoder omits when zero (``omitempty`` in Docker's types) are omitted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.errors import json_response
from dockyard.core.clock import format_rfc3339
from dockyard.core.errors import DockyardError, NotFound
from dockyard.core.protocol import BlkioEntry, BlkioStats, ContainerStats, CpuStats, MemoryStats
from dockyard.wire.query import flag

__all__ = ["INTERVAL", "routes", "stats_json"]

routes = web.RouteTableDef()
log = logging.getLogger("dockyard.api")

INTERVAL = 1.0
"""Seconds between two samples of a stream, as Docker's collector takes them."""
_ONE_SHOT_SINCE = (1, 41)
_BLKIO_FIELDS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)


# JSON ------------------------------------------------------------------------------------


def _nonzero(values: dict[str, Any]) -> dict[str, Any]:
    """Go's ``omitempty``: zero numbers, empty lists and maps are left out."""
    return {key: value for key, value in values.items() if value}


def _cpu(cpu: CpuStats) -> dict[str, Any]:
    usage: dict[str, Any] = {"total_usage": cpu.usage}
    if cpu.percpu_usage:
        usage["percpu_usage"] = list(cpu.percpu_usage)
    usage["usage_in_kernelmode"] = cpu.kernel_usage
    usage["usage_in_usermode"] = cpu.user_usage
    out: dict[str, Any] = {"cpu_usage": usage}
    out.update(_nonzero({"system_cpu_usage": cpu.system_usage, "online_cpus": cpu.online_cpus}))
    out["throttling_data"] = {
        "periods": cpu.periods,
        "throttled_periods": cpu.throttled_periods,
        "throttled_time": cpu.throttled_time,
    }
    return out


def _memory(memory: MemoryStats) -> dict[str, Any]:
    return _nonzero(
        {
            "usage": memory.usage,
            "max_usage": memory.max_usage,
            "stats": dict(memory.stats),
            "failcnt": memory.failcnt,
            "limit": memory.limit,
        }
    )


def _blkio_entries(entries: list[BlkioEntry] | None) -> list[dict[str, Any]] | None:
    if entries is None:
        return None
    return [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in entries]


def _blkio(blkio: BlkioStats) -> dict[str, Any]:
    return {name: _blkio_entries(getattr(blkio, name)) for name in _BLKIO_FIELDS}


def stats_json(
    sample: ContainerStats, previous: ContainerStats | None, *, name: str
) -> dict[str, Any]:
    """Docker's stats document for ``sample``; ``previous`` (the sample sent before, if
    any) gives ``preread`` and ``precpu_stats``. ``name`` is the container's name."""
    before = previous if previous is not None else ContainerStats(id=sample.id, read=0)
    out: dict[str, Any] = {
        "read": format_rfc3339(sample.read if sample.running else 0),
        "preread": format_rfc3339(before.read if before.running else 0),
        "pids_stats": _nonzero({"current": sample.pids_current, "limit": sample.pids_limit}),
        "blkio_stats": _blkio(sample.blkio),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(sample.cpu),
        "precpu_stats": _cpu(before.cpu),
        "memory_stats": _memory(sample.memory),
        "name": f"/{name}",
        "id": sample.id,
    }
    if sample.networks:
        out["networks"] = {
            interface: {
                "rx_bytes": n.rx_bytes,
                "rx_packets": n.rx_packets,
                "rx_errors": n.rx_errors,
                "rx_dropped": n.rx_dropped,
                "tx_bytes": n.tx_bytes,
                "tx_packets": n.tx_packets,
                "tx_errors": n.tx_errors,
                "tx_dropped": n.tx_dropped,
            }
            for interface, n in sorted(sample.networks.items())
        }
    return out


def _encode(document: dict[str, Any]) -> bytes:
    # As Go's json.Encoder writes it: compact, one document per line.
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


# handler ---------------------------------------------------------------------------------


def _version_at_least(request: web.Request, wanted: tuple[int, int]) -> bool:
    version = request.match_info.get("version")
    if not version:
        return True  # a bare path speaks the newest version
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0)) >= wanted


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@routes.get("/containers/{id}/stats")
async def container_stats(request: web.Request) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    containers = ctx.controller.containers
    tenant = tenant_of(request).id
    container = containers.get(tenant=tenant, ref=request.match_info["id"])
    stream = "stream" not in request.query or flag(request, "stream")
    one_shot = flag(request, "one-shot") and _version_at_least(request, _ONE_SHOT_SINCE)
    first = await containers.stats(container)

    if not stream:
        if not first.running or one_shot:
            return json_response(stats_json(first, None, name=container.name))
        await asyncio.sleep(INTERVAL)
        second = await containers.stats(container)
        return json_response(stats_json(second, first, name=container.name))

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    loop = asyncio.get_running_loop()
    due = loop.time()
    previous: ContainerStats | None = None
    current = first
    try:
        await response.prepare(request)
        while True:
            await response.write(_encode(stats_json(current, previous, name=container.name)))
            previous = current
            due = max(due + INTERVAL, loop.time())
            await asyncio.sleep(due - loop.time())
            if _client_gone(request):
                return response
            try:
                # Again by id each time: a removal ends the stream, a rename shows.
                container = containers.get(tenant=tenant, ref=container.id)
                current = await containers.stats(container)
            except NotFound:
                break  # removed
            except DockyardError as exc:
                # The agent is away: Docker's collector publishes zero samples then.
                log.info("stats of %s: %s", container.id[:12], exc)
                current = ContainerStats(id=container.id, read=0)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went while we wrote
    return response
