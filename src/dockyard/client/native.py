"""Clients of Dockyard's APIs for the CLI: the tenant's (``NativeClient``, with a token on
the Docker endpoint) and the operator's (``AdminClient``, on the controller's root-only
internal socket)."""

from __future__ import annotations

import ssl
from typing import Any

from dockyard.client.http import HttpClient
from dockyard.core.identity import TOKEN_HEADER

__all__ = ["AdminClient", "NativeClient"]


class NativeClient:
    """``context``: TLS settings for a ``tcp://`` address (a client certificate's)."""

    def __init__(self, address: str, token: str, *, context: ssl.SSLContext | None = None) -> None:
        self._http = HttpClient(
            address, headers={TOKEN_HEADER: token} if token else {}, context=context
        )

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call("GET", "/v1/whoami")
        return result

    def tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/tokens")
        return result

    def create_token(
        self, *, scopes: list[str] | None = None, ttl: int = 0, description: str = ""
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"ttl": ttl, "description": description}
        if scopes:
            body["scopes"] = scopes
        result: dict[str, Any] = self._http.call("POST", "/v1/tokens", body=body)
        return result

    def revoke_token(self, token_id: str) -> None:
        self._http.call("DELETE", f"/v1/tokens/{token_id}")

    def create_cert(self, csr_pem: str, *, ttl: int = 0) -> dict[str, Any]:
        """A client certificate for the key behind ``csr_pem``: its record with
        ``certificate`` and ``ca`` (PEM) and the TLS ``endpoint``."""
        result: dict[str, Any] = self._http.call(
            "POST", "/v1/certs", body={"csr": csr_pem, "ttl": ttl}
        )
        return result

    def certs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/certs")
        return result

    def revoke_cert(self, serial: str) -> None:
        self._http.call("DELETE", f"/v1/certs/{serial}")


class AdminClient:
    def __init__(self, address: str) -> None:
        self._http = HttpClient(address)

    def bootstrap(self, *, tenant: str, user: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "POST", "/admin/v1/bootstrap", body={"tenant": tenant, "user": user}
        )
        return result

    def tenants(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", "/admin/v1/tenants")
        return result

    def create_tenant(self, name: str, *, user: str, seed_busybox: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "POST",
            "/admin/v1/tenants",
            body={"name": name, "user": user, "seed_busybox": seed_busybox},
        )
        return result

    def remove_tenant(self, name: str) -> None:
        self._http.call("DELETE", f"/admin/v1/tenants/{name}")

    def users(self, tenant: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", f"/admin/v1/tenants/{tenant}/users")
        return result

    def add_user(self, tenant: str, name: str, *, role: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "POST", f"/admin/v1/tenants/{tenant}/users", body={"name": name, "role": role}
        )
        return result

    def remove_user(self, tenant: str, name: str) -> None:
        self._http.call("DELETE", f"/admin/v1/tenants/{tenant}/users/{name}")

    def tokens(self, tenant: str, *, user: str = "") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call(
            "GET", f"/admin/v1/tenants/{tenant}/tokens", params={"user": user} if user else None
        )
        return result

    def issue_token(
        self,
        tenant: str,
        user: str,
        *,
        scopes: list[str] | None = None,
        ttl: int = 0,
        description: str = "",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user": user, "ttl": ttl, "description": description}
        if scopes:
            body["scopes"] = scopes
        result: dict[str, Any] = self._http.call(
            "POST", f"/admin/v1/tenants/{tenant}/tokens", body=body
        )
        return result

    def revoke_token(self, tenant: str, token_id: str) -> None:
        self._http.call("DELETE", f"/admin/v1/tenants/{tenant}/tokens/{token_id}")

    def certs(self, tenant: str, *, user: str = "") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call(
            "GET", f"/admin/v1/tenants/{tenant}/certs", params={"user": user} if user else None
        )
        return result

    def revoke_cert(self, tenant: str, serial: str) -> None:
        self._http.call("DELETE", f"/admin/v1/tenants/{tenant}/certs/{serial}")
