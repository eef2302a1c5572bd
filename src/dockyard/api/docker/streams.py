"""Copying a hijacked client connection to and from an agent's hijacked stream."""

from __future__ import annotations

import asyncio
import contextlib

from dockyard.controller.agents import RawStream
from dockyard.wire.hijack import HijackedStream, wind_down

__all__ = ["relay"]

_CHUNK = 65536
# docker-py reads the 101 answer through a buffered reader, then reads the stream from the
# raw socket underneath: bytes that arrive together with the answer's head are lost to it.
# Output that is ready at once (an exec that could not start says why straight away) waits
# this long after the head, time enough for the client to have read it.
HEAD_GUARD = 0.05


async def relay(client: HijackedStream, agent: RawStream) -> None:
    """Copy both ways until the agent's side ends or the client goes away.

    The client closing only its write side (stdin at EOF) is passed on as EOF and the
    output keeps flowing; the agent's stream is closed on return.
    """

    loop = asyncio.get_running_loop()
    head_sent = loop.time()

    async def to_client() -> None:
        first = True
        while True:
            data = await agent.reader.read(_CHUNK)
            if not data:
                return
            if first:
                first = False
                early = HEAD_GUARD - (loop.time() - head_sent)
                if early > 0:
                    await asyncio.sleep(early)
            await client.write(data)

    async def to_agent() -> None:
        while True:
            data = await client.read()
            if not data:
                with contextlib.suppress(OSError):
                    agent.writer.write_eof()
                return
            agent.writer.write(data)
            await agent.writer.drain()

    output = asyncio.create_task(to_client())
    inbound = asyncio.create_task(to_agent())
    closed = asyncio.create_task(client.wait_closed())
    try:
        await asyncio.wait({output, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        wind_down((output, inbound, closed), then=agent.close)
