"""Fetching layer blobs from the controller for the layer store.

Runs in worker threads (unpacking is blocking work), so it uses the standard library's
blocking HTTP client over the controller's internal socket (or TCP in a cluster).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Iterator
from typing import BinaryIO

from dockyard.core.errors import NotFound, Unavailable

__all__ = ["ControllerBlobs"]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class ControllerBlobs:
    """``open(digest)`` streams one blob from the controller at ``address``
    (``unix:///path`` or ``http://host:port``)."""

    def __init__(self, address: str, *, timeout: float = 60.0) -> None:
        self._address = address
        self._timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self._address.startswith("unix://"):
            return _UnixConnection(self._address.removeprefix("unix://"), self._timeout)
        host = self._address.removeprefix("http://")
        return http.client.HTTPConnection(host, timeout=self._timeout)

    @contextlib.contextmanager
    def open(self, digest: str) -> Iterator[BinaryIO]:
        conn = self._connection()
        try:
            try:
                conn.request("GET", f"/internal/v1/blobs/{digest}")
                response = conn.getresponse()
            except OSError as exc:
                raise Unavailable(f"cannot reach the controller for {digest}: {exc}") from exc
            if response.status == 404:
                raise NotFound(f"blob {digest} not found on the controller")
            if response.status != 200:
                raise Unavailable(f"controller answered {response.status} for blob {digest}")
            yield response
        finally:
            conn.close()
