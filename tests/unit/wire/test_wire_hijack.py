"""wire.hijack: the end of a hijacked stream reaches the peer at once (docker run waits
for it), and a stream's copy tasks wind down after their caller has moved on."""

from __future__ import annotations

import asyncio
import socket

from dockyard.wire.hijack import HijackedStream, wind_down


def test_close_sends_the_end_before_the_loop_turns() -> None:
    """asyncio closes a transport's socket on a later loop turn; the peer gets EOF now."""

    async def scenario() -> bytes:
        ours, theirs = socket.socketpair()
        theirs.settimeout(0)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        stream = HijackedStream(transport)
        transport.set_protocol(stream)
        stream.close()
        try:
            return theirs.recv(16)  # no await between: the loop has not run since close
        finally:
            theirs.close()

    assert asyncio.run(scenario()) == b""


def test_close_with_unsent_output_leaves_the_end_to_the_transport() -> None:
    """Output still buffered is not cut: the transport sends it, then closes."""

    async def scenario() -> bytes:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        stream = HijackedStream(transport)
        transport.set_protocol(stream)
        payload = b"x" * (1 << 20)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        stream.close()
        theirs.setblocking(False)
        received = bytearray()
        while chunk := await loop.sock_recv(theirs, 65536):
            received += chunk
        theirs.close()
        return bytes(received)

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == b"x" * (1 << 20)


def test_wind_down_returns_at_once_and_closes_after_the_tasks() -> None:
    events: list[str] = []

    async def copier(name: str, *, fail: bool = False) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # ending takes a few loop turns
            events.append(f"{name} ended")
            if fail:
                raise OSError("socket gone") from None
            raise

    async def scenario() -> None:
        tasks = [asyncio.create_task(copier("out")), asyncio.create_task(copier("in", fail=True))]
        await asyncio.sleep(0)
        wind_down(tasks, then=lambda: events.append("closed"))
        events.append("returned")
        while "closed" not in events:
            await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert events[0] == "returned"
    assert sorted(events[1:3]) == ["in ended", "out ended"]
    assert events[3:] == ["closed"]
