"""Authenticating to a registry: challenges, Docker token authentication, basic auth.

A registry answers an unauthenticated request with 401 and a ``WWW-Authenticate`` challenge.
``Basic`` asks for the user's credentials on every request. ``Bearer realm=..,service=..,
scope=..`` names a token service: the client GETs ``realm?service=..&scope=..`` (with basic
auth when it has credentials, anonymously otherwise) and sends the token it gets back as
``Authorization: Bearer``. A token is good for a set of scopes
(``repository:ns/app:pull,push``) until it expires, so tokens are cached per scope set.

When the caller supplies a :data:`TokenSource` (the controller mints tokens in process), it
is asked instead, before each request, and the registry's challenges are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from dockyard.core.errors import Unauthenticated, Unavailable

__all__ = ["Authenticator", "TokenSource", "parse_www_authenticate"]

TokenSource = Callable[[Sequence[str]], Awaitable[str | None]]

# Docker's token spec: a token without expires_in is good for 60 seconds.
_DEFAULT_LIFETIME = 60.0
# Renew this long before expiry, so a token does not lapse between fetch and use.
_MARGIN = 10.0


def parse_www_authenticate(header: str) -> tuple[str, dict[str, str]]:
    """The first challenge of a ``WWW-Authenticate`` header: its scheme (lower case) and
    its parameters (names lower case, quoted values unescaped).

    ``Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`` gives
    ``("bearer", {"realm": "https://auth/token", "service": "reg", "scope": ...})``. An
    empty or unparsable header gives ``("", {})``; parsing stops at a second challenge.
    """
    text = header.strip()
    scheme, _, rest = text.partition(" ")
    if not scheme or "=" in scheme:
        return "", {}
    params: dict[str, str] = {}
    pos, end = 0, len(rest)
    while pos < end:
        while pos < end and rest[pos] in " \t,":
            pos += 1
        start = pos
        while pos < end and rest[pos] not in "= \t,":
            pos += 1
        name = rest[start:pos].lower()
        while pos < end and rest[pos] in " \t":
            pos += 1
        if not name or pos >= end or rest[pos] != "=":
            break  # the next challenge's scheme, or garbage
        pos += 1
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos < end and rest[pos] == '"':
            pos += 1
            value = []
            while pos < end and rest[pos] != '"':
                if rest[pos] == "\\" and pos + 1 < end:
                    pos += 1
                value.append(rest[pos])
                pos += 1
            pos += 1  # the closing quote
            params[name] = "".join(value)
        else:
            start = pos
            while pos < end and rest[pos] not in " \t,":
                pos += 1
            params[name] = rest[start:pos]
    return scheme.lower(), params


class Authenticator:
    """What one client knows about authenticating to its registry.

    ``realm_session`` gives the HTTP session for token requests (the registry's own session
    may be bound to a unix socket, where a realm URL cannot be reached).
    """

    def __init__(
        self,
        *,
        tokens: TokenSource | None,
        credentials: tuple[str, str] | None,
        realm_session: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self._source = tokens
        self._credentials = credentials
        self._realm_session = realm_session
        self._basic = False
        self._bearer: dict[str, str] | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    async def headers(self, scopes: Sequence[str]) -> dict[str, str]:
        """The Authorization header (if any) to send on a request needing ``scopes``."""
        key = tuple(sorted(scopes))
        if self._source is not None or self._bearer is not None:
            token = await self._token(key)
            return {"Authorization": f"Bearer {token}"} if token else {}
        if self._basic and self._credentials is not None:
            return {"Authorization": _basic(self._credentials)}
        return {}

    async def challenged(self, header: str, scopes: Sequence[str]) -> bool:
        """Take in a 401's challenge; True if a retry may now succeed (new credentials or a
        new token to offer), False if there is nothing else to try."""
        key = tuple(sorted(scopes))
        self._tokens.pop(key, None)
        if self._source is not None:
            return True  # ask the source again: the token may have expired
        scheme, params = parse_www_authenticate(header)
        if scheme == "basic":
            if self._credentials is None or self._basic:
                return False
            self._basic = True
            return True
        if scheme == "bearer" and params.get("realm"):
            self._bearer = params
            extra = tuple(s for s in params.get("scope", "").split() if s not in key)
            token = await self._fetch(tuple(sorted(key + extra)))
            self._tokens[key] = token
            return True
        return False

    async def _token(self, key: tuple[str, ...]) -> str | None:
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            if self._source is not None:
                token = await self._source(list(key))
                if token is None:
                    return None
                self._tokens[key] = (token, time.monotonic() + _DEFAULT_LIFETIME - _MARGIN)
                return token
            self._tokens[key] = await self._fetch(key)
            return self._tokens[key][0]

    async def _fetch(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        """GET a token for ``scopes`` from the realm of the last Bearer challenge."""
        assert self._bearer is not None
        realm = self._bearer["realm"]
        query: list[tuple[str, str]] = []
        if self._bearer.get("service"):
            query.append(("service", self._bearer["service"]))
        query.extend(("scope", scope) for scope in scopes)
        headers = {}
        if self._credentials is not None:
            query.append(("account", self._credentials[0]))
            headers["Authorization"] = _basic(self._credentials)
        try:
            async with self._realm_session().get(realm, params=query, headers=headers) as resp:
                body = await resp.content.read(1 << 20)
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach the token service {realm}: {exc}") from exc
        if status in (401, 403):
            raise Unauthenticated(
                f"unauthorized: {_realm_error(body) or 'incorrect username or password'}"
            )
        if status != 200:
            raise Unavailable(f"token service {realm} answered {status}: {_realm_error(body)}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or _DEFAULT_LIFETIME)
        except (ValueError, AttributeError, TypeError) as exc:
            raise Unavailable(f"token service {realm} sent a malformed answer") from exc
        if not isinstance(token, str) or not token:
            raise Unavailable(f"token service {realm} sent no token")
        return token, time.monotonic() + max(lifetime - _MARGIN, 1.0)


def _basic(credentials: tuple[str, str]) -> str:
    user, password = credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _realm_error(body: bytes) -> str:
    """The message of a token service's error answer, in Docker's error shape or plain."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or "")
        for key in ("message", "details", "error"):
            if isinstance(doc.get(key), str):
                return str(doc[key])
    return ""
