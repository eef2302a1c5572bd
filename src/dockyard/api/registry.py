"""The registry front (ADR 0021): the controller's listener on ``--registry-address``.

- ``GET /token`` is the realm of Docker token authentication: ``service``, any number of
  ``scope`` parameters, and optional basic auth (a user's name and a Dockyard API token).
  Good credentials get what :class:`~dockyard.controller.registry_auth.RegistryAuthorizer`
  grants that user, no credentials what it grants anyone (pull of curated images); wrong
  ones 401 (counted per source with the API's :class:`~dockyard.api.auth.FailureLimiter`).
  ``POST /token`` is the OAuth2 form of the same (``grant_type=password``); refresh tokens
  are not issued, so ``grant_type=refresh_token`` is refused.
- ``/v2/...`` (every method) is passed through, streaming both ways, to the registry
  process's socket: the registry itself checks the bearer token of every request. The
  registry writes relative ``Location`` headers, so nothing needs rewriting.

Errors are in the registry's form, ``{"errors": [{"code", "message", "detail"}]}`` (the
token endpoint's OAuth2 form answers ``{"error", "error_description"}``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web

from dockyard.api.auth import FailureLimiter, source_of
from dockyard.controller.app import Controller
from dockyard.controller.registry_auth import authenticate_basic, subject_of
from dockyard.core.errors import InvalidArgument, RateLimited, Unauthenticated
from dockyard.core.identity import Principal
from dockyard.core.registry import Access, format_scope, parse_scope

__all__ = ["make_registry_app"]

log = logging.getLogger("dockyard.api.registry")

_CONTROLLER: Final = web.AppKey("controller", Controller)
_LIMITER: Final = web.AppKey("limiter", FailureLimiter)
_SESSION: Final = web.AppKey("session", aiohttp.ClientSession)
_CHUNK = 256 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's.
_HOP = frozenset(
    {
        "connection",
        "expect",  # answered by this server already
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def make_registry_app(controller: Controller) -> web.Application:
    """The front's aiohttp app; its client session to the registry socket is made at
    startup and closed at cleanup."""
    app = web.Application(client_max_size=64 * 1024)  # /token forms only: /v2/ streams
    app[_CONTROLLER] = controller
    app[_LIMITER] = FailureLimiter()
    app.router.add_get("/token", token)
    app.router.add_post("/token", oauth_token)
    app.router.add_route("*", "/v2", passthrough)
    app.router.add_route("*", "/v2/{tail:.*}", passthrough)
    app.cleanup_ctx.append(_session)
    return app


async def _session(app: web.Application) -> AsyncIterator[None]:
    # No pool limit: a slow client holds its registry connection, never anyone else's.
    connector = aiohttp.UnixConnector(path=str(app[_CONTROLLER].registry.socket), limit=0)
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )
    app[_SESSION] = session
    yield
    await session.close()


# token service ------------------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    """Docker token authentication: ``GET /token?service=...&scope=...``."""
    controller = request.app[_CONTROLLER]
    service = request.query.get("service", "")
    if service and service != controller.registry_tokens.service:
        return registry_error(400, "UNSUPPORTED", f"unknown service {service!r}")
    try:
        requested = [parse_scope(s) for s in request.query.getall("scope", [])]
        principal = _basic_principal(request)
    except InvalidArgument as exc:
        return registry_error(400, "UNSUPPORTED", exc.message)
    except RateLimited as exc:
        return registry_error(429, "TOOMANYREQUESTS", exc.message)
    except Unauthenticated as exc:
        return registry_error(
            401, "UNAUTHORIZED", exc.message, headers={"WWW-Authenticate": 'Basic realm="dockyard"'}
        )
    issued = _issue(controller, principal, requested)
    return web.json_response(
        {
            "token": issued.text,
            "access_token": issued.text,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
        }
    )


async def oauth_token(request: web.Request) -> web.Response:
    """The OAuth2 form: ``POST /token`` with ``grant_type=password``, ``username``,
    ``password``, ``service``, ``scope`` (space-separated), ``client_id``."""
    controller = request.app[_CONTROLLER]
    form = await request.post()

    def field(name: str) -> str:
        return str(form.get(name, ""))

    grant_type = field("grant_type")
    if grant_type != "password":
        return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
    service = field("service")
    if service and service != controller.registry_tokens.service:
        return _oauth_error(400, "invalid_request", f"unknown service {service!r}")
    limiter, source = request.app[_LIMITER], source_of(request)
    try:
        limiter.check(source)
        requested = [parse_scope(s) for s in field("scope").split()]
        try:
            principal = authenticate_basic(
                controller.identity, field("username"), field("password")
            )
        except Unauthenticated:
            limiter.failed(source)
            raise
    except InvalidArgument as exc:
        return _oauth_error(400, "invalid_request", exc.message)
    except RateLimited as exc:
        return _oauth_error(429, "slow_down", exc.message)
    except Unauthenticated as exc:
        return _oauth_error(401, "invalid_grant", exc.message)
    issued = _issue(controller, principal, requested)
    return web.json_response(
        {
            "access_token": issued.text,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
            "scope": " ".join(format_scope(a) for a in issued.granted),
        }
    )


def _basic_principal(request: web.Request) -> Principal | None:
    """The caller named by basic auth (None without any); Unauthenticated (counted as a
    failure of its source) for bad credentials, RateLimited for a blocked source."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    limiter, source = request.app[_LIMITER], source_of(request)
    limiter.check(source)
    try:
        username, password = _basic_credentials(value)
    except ValueError:
        limiter.failed(source)
        raise Unauthenticated("malformed basic credentials") from None
    try:
        return authenticate_basic(request.app[_CONTROLLER].identity, username, password)
    except Unauthenticated:
        limiter.failed(source)
        raise


@dataclass(frozen=True, slots=True)
class _Issued:
    text: str
    granted: list[Access]
    expires_in: int
    issued_at: str  # RFC 3339


def _basic_credentials(value: str) -> tuple[str, str]:
    """``(username, password)`` of a basic credential; ValueError if malformed."""
    try:
        text = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    username, sep, password = text.partition(":")
    if not sep:
        raise ValueError("no colon")
    return username, password


def _issue(
    controller: Controller, principal: Principal | None, requested: Sequence[Access]
) -> _Issued:
    """A token with what the caller is granted of ``requested`` (entries granted nothing
    are left out)."""
    granted = [a for a in controller.registry_auth.grant(principal, requested) if a.actions]
    tokens = controller.registry_tokens
    now = datetime.datetime.now(datetime.UTC)
    return _Issued(
        text=tokens.mint(subject_of(principal), granted),
        granted=granted,
        expires_in=tokens.ttl,
        issued_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


def registry_error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """An error in the registry's form."""
    body = {"errors": [{"code": code, "message": message, "detail": None}]}
    return web.json_response(body, status=status, headers=headers)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


# pass-through -------------------------------------------------------------------------------


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Forward the request to the registry socket as it came and stream the answer back.
    Bodies are never held whole: a blob goes through in :data:`_CHUNK` pieces."""
    controller = request.app[_CONTROLLER]
    if not controller.registry.available:
        return registry_error(503, "UNAVAILABLE", "the registry is not running")
    if request.method in _READS:
        return await _forward(request)
    # Writes wait while garbage is collected, and hold collection off while they run.
    async with controller.registry_service.gate.writing():
        return await _forward(request)


async def _forward(request: web.Request) -> web.StreamResponse:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    body = request.content if request.body_exists else None
    session = request.app[_SESSION]
    try:
        upstream = await session.request(
            request.method,
            f"http://registry{request.raw_path}",
            headers=headers,
            data=body,
            allow_redirects=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
    except aiohttp.ClientConnectionError as exc:
        log.warning("registry unreachable: %s", exc)
        return registry_error(503, "UNAVAILABLE", "the registry is not reachable")
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP:
                response.headers.add(key, value)
        bodiless = request.method == "HEAD" or upstream.status in (204, 304)
        if upstream.content_length is None and not bodiless:
            response.enable_chunked_encoding()
        await response.prepare(request)
        if not bodiless:
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
        await response.write_eof()
    return response
