"""A small synchronous HTTP+JSON client over a unix socket or TCP, for the CLI.

The CLI makes a handful of calls per command; the standard library's ``http.client`` is
enough and starts in no time (the CLI should stay thin: HOST-NOTES measures Python's
start-up). Errors come back in Docker's form (``{"message": ...}``) and are raised as the
error kind their status code stands for.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlencode

from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

__all__ = ["HttpClient"]

_BY_STATUS: dict[int, type[DockyardError]] = {
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
    503: Unavailable,
}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class HttpClient:
    """Calls to ``address`` (``unix:///path``, ``http://host:port`` or, with a TLS
    ``context``, ``tcp://host:port``) with ``headers``."""

    def __init__(
        self,
        address: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.address = address
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._context = context

    def _connection(self) -> http.client.HTTPConnection:
        if self.address.startswith("unix://"):
            return _UnixConnection(self.address.removeprefix("unix://"), self._timeout)
        host = self.address.removeprefix("http://").removeprefix("tcp://")
        if self._context is not None:
            host = host.removeprefix("https://")
            return http.client.HTTPSConnection(host, timeout=self._timeout, context=self._context)
        return http.client.HTTPConnection(host, timeout=self._timeout)

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one); the error kind on 4xx/5xx."""
        if params:
            path += "?" + urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except OSError as exc:
            raise Unavailable(f"cannot reach Dockyard at {self.address}: {exc}") from exc
        finally:
            conn.close()
        decoded: Any = None
        if payload:
            try:
                decoded = json.loads(payload)
            except ValueError:
                decoded = {"message": payload.decode(errors="replace")}
        if response.status >= 400:
            message = decoded.get("message", "") if isinstance(decoded, dict) else str(decoded)
            kind = _BY_STATUS.get(response.status, Internal)
            if response.status == 409 and "already exists" in message:
                kind = AlreadyExists
            raise kind(message or f"HTTP {response.status}")
        return decoded
