"""Clients of Dockyard's APIs for the CLI: the tenant's (``NativeClient``, with a token on
the Docker endpoint) and the operator's (``AdminClient``, on the controller's root-only
internal socket)."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

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

    def sizes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/sizes")
        return result

    def usage(self) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call("GET", "/v1/usage")
        return result

    def check_usage(
        self,
        *,
        containers: list[dict[str, Any]] | None = None,
        volumes: int = 0,
        public_ips: int = 0,
        image_storage: int = 0,
    ) -> dict[str, Any]:
        """Would this fit? ``containers`` holds ``{"size": name}`` or ``{"memory": bytes}``."""
        body = {
            "containers": containers or [],
            "volumes": volumes,
            "public_ips": public_ips,
            "image_storage": image_storage,
        }
        result: dict[str, Any] = self._http.call("POST", "/v1/usage/check", body=body)
        return result

    def namespaces(self) -> list[dict[str, Any]]:
        """The tenant's registry namespaces, by name."""
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/namespaces")
        return result

    def claim_namespace(self, name: str) -> dict[str, Any]:
        """Claim a registry namespace for the tenant (a tenant admin's token)."""
        result: dict[str, Any] = self._http.call("POST", "/v1/namespaces", body={"name": name})
        return result

    def repositories(self, *, curated: bool = False) -> list[dict[str, Any]]:
        """The tenant's registry repositories (or the curated ones) with their tags:
        ``{name, reference, tags: [{tag, digest, size, pushed}]}``."""
        result: list[dict[str, Any]] = self._http.call(
            "GET", "/v1/registry/repositories", params={"curated": "1"} if curated else None
        )
        return result

    def copy_image(self, source: str, destination: str) -> dict[str, Any]:
        """Copy an image between registry repositories: ``{destination, digest}``."""
        result: dict[str, Any] = self._http.call(
            "POST", "/v1/registry/copy", body={"source": source, "destination": destination}
        )
        return result

    def delete_image(self, ref: str) -> list[str]:
        """Delete a tag or a manifest from the registry; the references deleted."""
        result: dict[str, Any] = self._http.call(
            "DELETE", f"/v1/registry/images/{quote(ref, safe='/:@')}"
        )
        deleted: list[str] = result["deleted"]
        return deleted

    def ips(self) -> list[dict[str, Any]]:
        """The tenant's public IPs: ``{address, container, container_name, created}``."""
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/ips")
        return result

    def ip(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call("GET", f"/v1/ips/{quote(address, safe='')}")
        return result

    def request_ip(self) -> dict[str, Any]:
        """A new public IP from the pools (the ``public_ips`` quota permitting)."""
        result: dict[str, Any] = self._http.call("POST", "/v1/ips", body={})
        return result

    def bind_ip(self, address: str, container: str) -> dict[str, Any]:
        """Bind ``address`` to ``container`` (name or id), moving it from another one."""
        result: dict[str, Any] = self._http.call(
            "POST", f"/v1/ips/{quote(address, safe='')}/bind", body={"container": container}
        )
        return result

    def unbind_ip(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "POST", f"/v1/ips/{quote(address, safe='')}/unbind"
        )
        return result

    def release_ip(self, address: str) -> None:
        self._http.call("DELETE", f"/v1/ips/{quote(address, safe='')}")

    def audit(self, **query: str | int) -> list[dict[str, Any]]:
        """The tenant's audit log, newest first (``admin`` scope). ``query``: since, until,
        user, action, target, result, limit, before (docs/native-api.md)."""
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/audit", params=_params(query))
        return result

    # security groups

    def security_groups(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", "/v1/security-groups")
        return result

    def create_security_group(
        self, name: str, *, description: str = "", labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "description": description, "labels": labels or {}}
        result: dict[str, Any] = self._http.call("POST", "/v1/security-groups", body=body)
        return result

    def security_group(self, ref: str) -> dict[str, Any]:
        """A group (name, id or id prefix) with its rules and ``containers``."""
        result: dict[str, Any] = self._http.call("GET", f"/v1/security-groups/{_q(ref)}")
        return result

    def remove_security_group(self, ref: str) -> None:
        self._http.call("DELETE", f"/v1/security-groups/{_q(ref)}")

    def add_security_group_rule(
        self,
        ref: str,
        *,
        protocol: str,
        port_min: int | None = None,
        port_max: int | None = None,
        source: str = "",
        source_group: str = "",
    ) -> dict[str, Any]:
        """The rule made, with ``group`` and ``unapplied`` (docs/native-api.md); no
        ``port_min`` is every port (tcp, udp)."""
        body: dict[str, Any] = {
            "protocol": protocol,
            "source": source,
            "source_group": source_group,
        }
        if port_min is not None:
            body["port_min"] = port_min
        if port_max is not None:
            body["port_max"] = port_max
        result: dict[str, Any] = self._http.call(
            "POST", f"/v1/security-groups/{_q(ref)}/rules", body=body
        )
        return result

    def remove_security_group_rule(self, ref: str, rule: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "DELETE", f"/v1/security-groups/{_q(ref)}/rules/{_q(rule)}"
        )
        return result

    def container_security_groups(self, container: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "GET", f"/v1/containers/{_q(container)}/security-groups"
        )
        return result

    def attach_security_group(self, container: str, group: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "POST", f"/v1/containers/{_q(container)}/security-groups", body={"group": group}
        )
        return result

    def detach_security_group(self, container: str, group: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call(
            "DELETE", f"/v1/containers/{_q(container)}/security-groups/{_q(group)}"
        )
        return result


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

    def create_tenant(
        self, name: str, *, user: str, seed_busybox: bool = False, plan: str = ""
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "user": user, "seed_busybox": seed_busybox}
        if plan:
            body["plan"] = plan
        result: dict[str, Any] = self._http.call("POST", "/admin/v1/tenants", body=body)
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

    def plans(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.call("GET", "/admin/v1/plans")
        return result

    def quota(self, tenant: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call("GET", f"/admin/v1/tenants/{tenant}/quota")
        return result

    def set_quota(
        self,
        tenant: str,
        *,
        plan: str = "",
        limits: dict[str, int | str] | None = None,
        reset: list[str] | None = None,
    ) -> dict[str, Any]:
        """Move ``tenant`` to ``plan``, drop the overrides in ``reset`` (``"all"``), set
        ``limits`` (quota -> bytes, count, a size such as ``"4g"`` or ``"unlimited"``)."""
        body: dict[str, Any] = {"plan": plan, "limits": limits or {}, "reset": reset or []}
        result: dict[str, Any] = self._http.call(
            "PUT", f"/admin/v1/tenants/{tenant}/quota", body=body
        )
        return result

    def namespaces(self, tenant: str = "") -> list[dict[str, Any]]:
        """Every registry namespace with its owner (retired ones too), or one tenant's."""
        result: list[dict[str, Any]] = self._http.call(
            "GET", "/admin/v1/namespaces", params={"tenant": tenant} if tenant else None
        )
        return result

    def assign_namespace(self, tenant: str, name: str) -> dict[str, Any]:
        """Give ``tenant`` the namespace ``name`` (reserved names too)."""
        result: dict[str, Any] = self._http.call(
            "POST", f"/admin/v1/tenants/{tenant}/namespaces", body={"name": name}
        )
        return result

    def seed_images(self) -> list[str]:
        """Publish the curated image set to ``library``; the references pushed."""
        result: dict[str, Any] = self._http.call("POST", "/admin/v1/registry/seed")
        published: list[str] = result["published"]
        return published

    def registry_gc(self, *, grace: float | None = None) -> dict[str, Any]:
        """Garbage-collect the registry: ``{blobs_deleted, bytes_freed, blobs_kept}``."""
        result: dict[str, Any] = self._http.call(
            "POST",
            "/admin/v1/registry/gc",
            params={"grace": str(grace)} if grace is not None else None,
        )
        return result

    def ip_pools(self) -> list[dict[str, Any]]:
        """The public IP pools: ``{cidr, created, size, held}``."""
        result: list[dict[str, Any]] = self._http.call("GET", "/admin/v1/ip-pools")
        return result

    def add_ip_pool(self, cidr: str) -> dict[str, Any]:
        result: dict[str, Any] = self._http.call("POST", "/admin/v1/ip-pools", body={"cidr": cidr})
        return result

    def remove_ip_pool(self, cidr: str) -> None:
        """Remove a range (``198.51.100.0/24``); 409 while a tenant holds one of its
        addresses."""
        self._http.call("DELETE", f"/admin/v1/ip-pools/{quote(cidr, safe='/')}")

    def audit(self, tenant: str = "", **query: str | int) -> list[dict[str, Any]]:
        """A tenant's audit log (by name), or with no tenant the operator log."""
        path = f"/admin/v1/tenants/{tenant}/audit" if tenant else "/admin/v1/audit"
        result: list[dict[str, Any]] = self._http.call("GET", path, params=_params(query))
        return result


def _q(ref: str) -> str:
    """A name or id as one path segment."""
    return quote(ref, safe="")


def _params(query: dict[str, str | int]) -> dict[str, str]:
    """The query parameters given a value (empty strings and zeros are left out)."""
    return {key: str(value) for key, value in query.items() if value not in ("", 0)}
