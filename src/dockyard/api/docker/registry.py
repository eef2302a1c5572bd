"""Docker Engine API: the registry flows done by the daemon side (ADR 0021).

``POST /auth`` (``docker login``), ``POST /images/create?fromImage=`` (``docker pull``),
``POST /images/{name}/push`` and ``GET /images/search``. Pull and push answer with Docker's
JSON progress stream; an error before any progress is an ordinary HTTP error (as dockerd
answers it), an error after is an ``errorDetail`` message in the stream.

Registry credentials come from ``X-Registry-Auth`` (what ``docker login`` stored); without
them the call acts with the API caller's own identity, which the endpoint already knows.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.api.docker.context import ApiContext, principal_of, tenant_of
from dockyard.api.docker.filters import parse_filters
from dockyard.api.errors import json_response
from dockyard.controller.registry_auth import authenticate_basic
from dockyard.core.errors import DockyardError, InvalidArgument, Unauthenticated
from dockyard.core.identity import Principal

__all__ = ["ProgressStream", "pull", "registry_principal", "routes"]

routes = web.RouteTableDef()
_NAME = "{name:.+}"


def _auth_header(request: web.Request) -> dict[str, Any]:
    text = request.headers.get("X-Registry-Auth", "").strip()
    if not text:
        return {}
    padded = text + "=" * (-len(text) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument("invalid X-Registry-Auth header: not base64 JSON") from exc
    return data if isinstance(data, dict) else {}


def registry_principal(request: web.Request) -> Principal:
    """Who the registry sees: the credentials sent in ``X-Registry-Auth`` if any, else
    the API caller."""
    auth = _auth_header(request)
    username = str(auth.get("username") or "")
    password = str(auth.get("password") or "")
    if username or password:
        identity = ApiContext.of(request).controller.identity
        try:
            return authenticate_basic(identity, username, password)
        except Unauthenticated as exc:
            raise Unauthenticated(
                f"unauthorized: incorrect username or password for {username or '(none)'}"
            ) from exc
    return principal_of(request)


class ProgressStream:
    """Docker's JSON message stream, begun lazily: until the first message the handler may
    still fail with an ordinary HTTP error."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response: web.StreamResponse | None = None
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()

    def __call__(self, message: dict[str, Any]) -> None:
        self._pending.append(json.dumps(message).encode() + b"\n")
        self._wake.set()

    async def _flush(self) -> None:
        if not self._pending:
            return
        if self._response is None:
            self._response = web.StreamResponse(headers={"Content-Type": "application/json"})
            self._response.enable_chunked_encoding()
            await self._response.prepare(self._request)
        data, self._pending = b"".join(self._pending), []
        await self._response.write(data)

    async def run(self, work: Callable[[], Awaitable[None]]) -> web.StreamResponse:
        task = asyncio.ensure_future(work())
        try:
            while not task.done():
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                self._wake.clear()
                await self._flush()
        except BaseException:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        error = task.exception()
        if error is not None and (self._response is None and not self._pending):
            raise error
        if isinstance(error, DockyardError):
            self({"errorDetail": {"message": error.message}, "error": error.message})
        elif error is not None:
            raise error
        await self._flush()
        if self._response is None:  # nothing to say: an empty stream still answers
            self._response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await self._response.prepare(self._request)
        await self._response.write_eof()
        return self._response


async def pull(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=NAME&tag=TAG`` (from images.image_create)."""
    ctx = ApiContext.of(request)
    name = request.query["fromImage"]
    tag = request.query.get("tag", "")
    platform = request.query.get("platform", "")
    if platform and platform.split("/")[:2] not in (["linux", "amd64"], ["linux"]):
        raise InvalidArgument(f"no matching manifest for {platform} in this cloud (linux/amd64)")
    principal = registry_principal(request)
    tenant = tenant_of(request).id
    stream = ProgressStream(request)

    async def work() -> None:
        await ctx.controller.registry_service.pull(
            tenant=tenant, principal=principal, name=name, tag=tag, progress=stream
        )

    return await stream.run(work)


@routes.post(f"/images/{_NAME}/push")
async def push(request: web.Request) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    principal = registry_principal(request)
    tenant = tenant_of(request).id
    stream = ProgressStream(request)

    async def work() -> None:
        await ctx.controller.registry_service.push(
            tenant=tenant,
            principal=principal,
            name=request.match_info["name"],
            tag=request.query.get("tag", ""),
            progress=stream,
        )

    return await stream.run(work)


@routes.post("/auth")
async def login(request: web.Request) -> web.Response:
    """``docker login``: checks the user name and token against the token service."""
    ctx = ApiContext.of(request)
    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidArgument("invalid JSON body") from exc
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON body: expected an object")
    ctx.controller.registry_service.check_server(str(body.get("serveraddress") or ""))
    username = str(body.get("username") or "")
    password = str(body.get("password") or "")
    try:
        authenticate_basic(ctx.controller.identity, username, password)
    except Unauthenticated as exc:
        raise Unauthenticated(
            "login attempt failed: unauthorized: incorrect username or password "
            "(the password is a Dockyard token: dockyard token create)"
        ) from exc
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


@routes.get("/images/search")
async def search(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    term = request.query.get("term", "")
    if not term:
        raise InvalidArgument("term is required")
    try:
        limit = int(request.query.get("limit") or 25)
    except ValueError as exc:
        raise InvalidArgument("invalid limit") from exc
    if not 1 <= limit <= 100:
        raise InvalidArgument("limit must be between 1 and 100")
    f = parse_filters(request.query.get("filters", ""), ("is-official", "is-automated", "stars"))
    found = await ctx.controller.registry_service.search(
        principal=principal_of(request), term=term, limit=100
    )
    official = f.bool("is-official")
    if official is not None:
        found = [r for r in found if r["is_official"] == official]
    automated = f.bool("is-automated")
    if automated is not None:
        found = [r for r in found if r["is_automated"] == automated]
    if f.has("stars") and int(f.one("stars") or 0) > 0:
        found = []  # nothing here has stars
    return json_response(found[:limit])
