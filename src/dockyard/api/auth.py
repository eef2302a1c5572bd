"""Authentication of every API call, and the brake on guessing.

A caller proves who it is with a token, sent the way the ``docker`` CLI sends headers from
its config file (``HttpHeaders``): ``X-Dockyard-Token: dyk_...`` (``Authorization: Bearer
dyk_...`` works too). ``/_ping`` and ``/version`` answer anyone (clients probe them before
anything else, to pick an API version; they say nothing about any tenant).
Everything else without a valid token is 401; a token's scopes then decide: ``read`` for
GET and HEAD, ``write`` for the rest.

On the TLS listener the handshake already demanded a client certificate signed by
Dockyard's CA; its record (``dockyard.controller.certs``) names the caller. A token sent
over TLS as well must name the same user, and the call gets the scopes both hold.

Failed attempts (a token or a certificate presented and refused) are counted per source
(the peer's address over TCP, its uid on the unix socket): after :data:`MAX_FAILURES`
within :data:`WINDOW` seconds the source gets 429 for :data:`BLOCK` seconds, even with a
good token. Calls without any token (or certificate) are refused but not counted: they
guess nothing.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.api.docker.context import PRINCIPAL_KEY, TENANT_KEY
from dockyard.controller.certs import CertificateService
from dockyard.controller.identity import IdentityService
from dockyard.core.errors import PermissionDenied, RateLimited, Unauthenticated
from dockyard.core.identity import TOKEN_HEADER, Principal

__all__ = ["BLOCK", "MAX_FAILURES", "WINDOW", "FailureLimiter", "auth_middleware", "source_of"]

MAX_FAILURES = 10
WINDOW = 60.0
BLOCK = 60.0
_OPEN_PATHS = ("/_ping", "/version")  # what clients probe before anything else
_READ_METHODS = ("GET", "HEAD")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FailureLimiter:
    """Counts failed authentications per source and blocks a source that fails too often."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        block: float = BLOCK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._block = block
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._blocked: dict[str, float] = {}

    def check(self, source: str) -> None:
        until = self._blocked.get(source)
        if until is None:
            return
        left = until - self._clock()
        if left > 0:
            raise RateLimited(f"too many failed authentications; try again in {math.ceil(left)}s")
        del self._blocked[source]

    def failed(self, source: str) -> None:
        now = self._clock()
        recent = [t for t in self._failures.get(source, []) if now - t < self._window]
        recent.append(now)
        if len(recent) >= self._max:
            self._blocked[source] = now + self._block
            recent = []
        self._failures[source] = recent
        if len(self._failures) > 65536:  # a flood of sources: forget the quiet ones
            self._failures = {k: v for k, v in self._failures.items() if v}


def auth_middleware(
    identity: IdentityService, limiter: FailureLimiter, certs: CertificateService | None = None
) -> Any:
    """``certs``: who client certificates name (the TLS listener's app needs it)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.endswith(_OPEN_PATHS):
            return await handler(request)
        source = _source(request)
        limiter.check(source)
        text = _token_text(request)
        der = _peer_certificate(request)
        if not text and der is None:  # not a guess: nothing to count
            raise Unauthenticated(
                "authentication required: send a Dockyard token in the X-Dockyard-Token "
                "header (dockyard login writes it into your docker config)"
            )
        try:
            principal = _principal(identity, certs, text, der)
        except Unauthenticated:
            limiter.failed(source)
            raise
        # Known before the scope check, so that a refusal is recorded as this user's.
        request[PRINCIPAL_KEY] = principal
        request[TENANT_KEY] = principal.tenant
        needed = "read" if request.method in _READ_METHODS else "write"
        if not principal.may(needed):
            raise PermissionDenied(f"this token lacks the {needed!r} scope")
        return await handler(request)

    return authenticate


def _principal(
    identity: IdentityService, certs: CertificateService | None, text: str, der: bytes | None
) -> Principal:
    if der is None:
        return identity.authenticate(text)
    if certs is None:  # a TLS listener built without its certificate service
        raise Unauthenticated("client certificates are not accepted here")
    by_cert = certs.authenticate(der)
    if not text:
        return by_cert
    by_token = identity.authenticate(text)
    if by_token.user.id != by_cert.user.id:
        raise Unauthenticated("the token and the client certificate name different users")
    both = tuple(s for s in by_token.scopes if s in by_cert.scopes)
    return dataclasses.replace(by_token, scopes=both, cert_serial=by_cert.cert_serial)


def _peer_certificate(request: web.Request) -> bytes | None:
    """The client certificate of a TLS connection (DER), verified by the handshake."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return der if isinstance(der, bytes) and der else None


def _token_text(request: web.Request) -> str:
    text = request.headers.get(TOKEN_HEADER, "")
    if not text:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            text = value
    return text.strip()


def source_of(request: web.Request) -> str:
    """Where a call comes from: ``ip:ADDRESS`` over TCP, ``uid:N`` on a unix socket (the
    peer's uid, from SO_PEERCRED), ``unknown`` otherwise."""
    return _source(request)


def _source(request: web.Request) -> str:
    transport = request.transport
    if transport is None:
        return "unknown"
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return f"ip:{peer[0]}"
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return f"uid:{uid}"
    return "unknown"
