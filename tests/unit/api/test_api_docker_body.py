"""Reading Docker's JSON request bodies (api.docker.body)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from typing import Any

import pytest
from aiohttp import web

from dockyard.api.docker.body import (
    get_bool,
    get_int,
    get_map,
    get_str,
    get_str_list,
    get_str_map,
    read_json,
)
from dockyard.core.errors import InvalidArgument


def read(raw: bytes | list[bytes], *, empty_ok: bool = False) -> dict[str, Any]:
    """POST ``raw`` (one or several TCP writes) to a handler calling read_json, over a
    Unix socket; return what it read or raise the InvalidArgument it raised."""
    chunks = [raw] if isinstance(raw, bytes) else raw
    outcome: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        try:
            outcome["body"] = await read_json(request, empty_ok=empty_ok)
        except InvalidArgument as exc:
            outcome["error"] = exc
        return web.Response(text="done")

    async def scenario() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/create", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "api.sock")
            await web.UnixSite(runner, path).start()
            try:
                reader, writer = await asyncio.open_unix_connection(path)
                size = sum(len(c) for c in chunks)
                writer.write(
                    b"POST /create HTTP/1.1\r\nHost: docker\r\n"
                    b"Content-Type: application/json\r\n"
                    + f"Content-Length: {size}\r\n\r\n".encode()
                )
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.02)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                writer.close()
                await writer.wait_closed()
            finally:
                await runner.cleanup()

    asyncio.run(scenario())
    if "error" in outcome:
        raise outcome["error"]
    body: dict[str, Any] = outcome["body"]
    return body


def test_read_json_object() -> None:
    assert read(b'{"Image": "busybox", "Cmd": ["true"]}') == {"Image": "busybox", "Cmd": ["true"]}


@pytest.mark.parametrize("raw", [b"", b"  \n", b"null"])
def test_read_json_empty_when_allowed(raw: bytes) -> None:
    assert read(raw, empty_ok=True) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "invalid JSON: request body is empty"),
        (b"{", "invalid JSON: "),
        (b"[1, 2]", "invalid JSON: the request body must be an object"),
        (b"null", "invalid JSON: the request body must be an object"),
        (b'"text"', "invalid JSON: the request body must be an object"),
    ],
)
def test_read_json_refuses_what_is_not_an_object(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        read(raw)
    assert info.value.message.startswith(message)


def test_read_json_waits_for_a_body_sent_in_pieces() -> None:
    # StreamReader.read(n) returns as soon as *some* data is there, not n bytes.
    assert read([b'{"Image": ', b'"busybox", "Cmd": ["true"]}']) == {
        "Image": "busybox",
        "Cmd": ["true"],
    }


def test_read_json_reads_a_body_larger_than_one_socket_read() -> None:
    env = [f"VAR{i}={'x' * 100}" for i in range(2000)]
    big = json.dumps({"Image": "busybox", "Env": env}).encode()
    assert read(big)["Env"] == env


def test_read_json_refuses_huge_bodies() -> None:
    with pytest.raises(InvalidArgument, match="too large"):
        read(b" " * (16 * 1024 * 1024 + 1))


def test_get_str() -> None:
    assert get_str({"a": "x"}, "a") == "x"
    assert get_str({}, "a") == ""
    assert get_str({"a": None}, "a") == ""
    with pytest.raises(InvalidArgument) as info:
        get_str({"a": 1}, "a", "HostConfig")
    assert info.value.message == "invalid type for HostConfig.a: expected a string"


def test_get_bool() -> None:
    assert get_bool({"a": True}, "a") is True
    assert get_bool({}, "a") is False
    for bad in (1, "true", [True]):
        with pytest.raises(InvalidArgument, match="invalid type for a: expected a boolean"):
            get_bool({"a": bad}, "a")


def test_get_int() -> None:
    assert get_int({"a": 5}, "a") == 5
    assert get_int({"a": 5.0}, "a") == 5
    assert get_int({"a": -3}, "a") == -3
    assert get_int({}, "a") == 0
    assert get_int({"a": None}, "a", default=-1) == -1
    assert get_int({"a": (1 << 63) - 1}, "a") == (1 << 63) - 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "invalid type for X.a: expected an integer"),
        ("5", "invalid type for X.a: expected an integer"),
        (5.5, "invalid value for X.a: expected an integer"),
        (1 << 63, "invalid value for X.a: out of range"),
        (-(1 << 64), "invalid value for X.a: out of range"),
    ],
)
def test_get_int_refusals(value: object, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        get_int({"a": value}, "a", "X")
    assert info.value.message == message


def test_get_str_list() -> None:
    assert get_str_list({"Cmd": ["a", "b"]}, "Cmd") == ("a", "b")
    assert get_str_list({"Cmd": "echo hi"}, "Cmd", lone_string=True) == ("echo hi",)
    with pytest.raises(InvalidArgument, match="expected a list of strings"):
        get_str_list({"Env": "A=b"}, "Env")  # only strslice fields take a lone string
    assert get_str_list({"Cmd": []}, "Cmd") == ()
    assert get_str_list({"Cmd": None}, "Cmd") is None
    assert get_str_list({}, "Cmd") is None
    for bad in (["a", 1], {"a": "b"}, 3):
        with pytest.raises(InvalidArgument, match="expected a list of strings"):
            get_str_list({"Cmd": bad}, "Cmd")


def test_get_map_and_str_map() -> None:
    assert get_map({"a": {"k": 1}}, "a") == {"k": 1}
    assert get_map({}, "a") == {}
    assert get_str_map({"Labels": {"k": "v"}}, "Labels") == {"k": "v"}
    with pytest.raises(InvalidArgument, match=r"expected an object$"):
        get_map({"a": []}, "a")
    with pytest.raises(InvalidArgument, match="expected an object of strings"):
        get_str_map({"Labels": {"k": 1}}, "Labels")
