"""AgentClient.update_network: the container's whole network spec, PUT to the agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.controller.agents import AgentClient
from dockyard.core.protocol import EndpointSpec, NetworkSpec, PortMapping
from dockyard.core.serde import from_data


def test_update_network_puts_the_whole_spec(tmp_path: Path) -> None:
    spec = NetworkSpec(
        mode="tenant",
        router="t1",
        endpoints=(
            EndpointSpec(
                endpoint_id="e1",
                network_id="n1",
                bridge="br-n1",
                subnet="172.18.0.0/16",
                gateway="172.18.0.1",
                ip="172.18.0.2",
            ),
        ),
        public_ip="198.18.0.1",
        public_ports=(PortMapping("tcp", 22, "", 10022),),
    )
    seen: list[tuple[str, str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, await request.json()))
        return web.Response(status=204)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_put("/v1/containers/{id}/network", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        socket = str(tmp_path / "agent.sock")
        await web.UnixSite(runner, socket).start()
        client = AgentClient(f"unix://{socket}")
        try:
            await client.update_network("c" * 64, spec)
        finally:
            await client.close()
            await runner.cleanup()

    asyncio.run(scenario())
    [(method, path, body)] = seen
    assert (method, path) == ("PUT", f"/v1/containers/{'c' * 64}/network")
    assert from_data(NetworkSpec, json.loads(json.dumps(body))) == spec
