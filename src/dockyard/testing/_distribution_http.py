"""A small HTTP client for the distribution API, with Docker token authentication.

Plain ``http.client``, one connection per request: the conformance checks need every
status code, header and body exactly as the server sent them (no redirects followed, no
retries), and must speak PATCH with arbitrary ``Content-Range`` headers.

Authentication (Docker's token protocol, as ``docker login`` does it): a request answered
``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` makes the session
ask the realm for a token covering the challenge's scope and the scopes it was created
with, using basic auth when it has credentials, and retry once with
``Authorization: Bearer``. The token is then sent up front until a 401 asks for a new one.
A ``Basic`` challenge is answered with the credentials.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuthError", "Response", "Session"]

_PARAM = re.compile(r'(\w+)="([^"]*)"')


class AuthError(Exception):
    """The token realm refused or failed to give a token."""


@dataclass
class Response:
    """One answer, read in full. ``url`` is the absolute URL asked; ``headers`` keys are
    lower case."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def location(self) -> str:
        """The ``Location`` header made absolute (RFC 7231 allows relative), or ""."""
        value = self.header("Location")
        return urllib.parse.urljoin(self.url, value) if value else ""

    def json(self) -> Any:
        return json.loads(self.body)

    def error_codes(self) -> list[str]:
        """The ``code`` of each entry of an OCI error body (``{"errors": [...]}``); [] if
        the body is not one."""
        try:
            errors = self.json().get("errors", [])
            return [str(error.get("code")) for error in errors]
        except (ValueError, AttributeError, TypeError):
            return []

    def describe(self) -> str:
        path = urllib.parse.urlsplit(self.url).path
        text = f"{self.method} {path} -> {self.status}"
        codes = self.error_codes()
        return f"{text} {codes}" if codes else text


@dataclass
class Session:
    """Requests to the registry at ``base_url`` (``http://host:port``), authenticated as
    described in the module docstring. ``scopes`` are the token scopes to ask for on top of
    the challenge's (``repository:<name>:pull,push,delete``)."""

    base_url: str
    credentials: tuple[str, str] | None = None
    scopes: Sequence[str] = ()
    timeout: float = 60.0
    _token: str | None = field(default=None, init=False, repr=False)

    def request(
        self,
        method: str,
        target: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send one request to ``target`` (a path such as ``/v2/``, or an absolute URL such
        as an upload ``Location``), adding ``query`` to its query string. Raises OSError
        for transport failures and AuthError when the token realm fails."""
        url = _with_query(urllib.parse.urljoin(self.base_url, target), query)
        response = self._send(method, url, headers or {}, body, self._authorization())
        if response.status != 401:
            return response
        authorization = self._answer(response.header("WWW-Authenticate"))
        if authorization is None:
            return response
        return self._send(method, url, headers or {}, body, authorization)

    def _authorization(self) -> str | None:
        return f"Bearer {self._token}" if self._token else None

    def _answer(self, challenge: str) -> str | None:
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            return _basic(self.credentials) if self.credentials else None
        if scheme.lower() != "bearer":
            return None
        params = dict(_PARAM.findall(rest))
        if "realm" not in params:
            return None
        scopes = list(dict.fromkeys([*params.get("scope", "").split(" "), *self.scopes]))
        query = [("scope", scope) for scope in scopes if scope]
        if "service" in params:
            query.insert(0, ("service", params["service"]))
        if self.credentials:
            query.append(("account", self.credentials[0]))
        headers = {}
        if self.credentials:
            headers["Authorization"] = _basic(self.credentials)
        try:
            answer = self._send("GET", _with_query(params["realm"], query), headers, b"", None)
        except OSError as exc:
            raise AuthError(f"token realm {params['realm']}: {exc}") from exc
        if answer.status != 200:
            raise AuthError(f"token realm answered {answer.describe()}")
        try:
            document = answer.json()
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError) as exc:
            raise AuthError(f"token realm sent no JSON: {exc}") from exc
        if not isinstance(token, str) or not token:
            raise AuthError("token realm answered without a token")
        self._token = token
        return f"Bearer {token}"

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        authorization: str | None,
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        sent = dict(headers)
        if authorization and "Authorization" not in sent:
            sent["Authorization"] = authorization
        if method in ("POST", "PUT", "PATCH") or body:
            sent.setdefault("Content-Length", str(len(body)))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, path or "/", body=body or None, headers=sent)
            raw = connection.getresponse()
            data = raw.read()
            return Response(
                method=method,
                url=url,
                status=raw.status,
                headers={name.lower(): value for name, value in raw.getheaders()},
                body=data,
            )
        finally:
            connection.close()


def _basic(credentials: tuple[str, str]) -> str:
    token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
    return f"Basic {token}"


def _with_query(url: str, query: Sequence[tuple[str, str]]) -> str:
    if not query:
        return url
    parts = urllib.parse.urlsplit(url)
    pairs = [*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), *query]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(pairs)))
