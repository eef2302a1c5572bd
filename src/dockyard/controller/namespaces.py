"""Registry namespaces: tenants claim them, the operator assigns them, the registry's
token service asks who owns one (``dockyard namespace``, ``/v1/namespaces``).

The rules (``dockyard.core.namespaces`` has the names', ADR 0015 the reasons):

- a name is claimed once in the whole cloud and never renamed or released: deleting its
  tenant retires it, and a retired name is never claimed again;
- reserved names (``library`` and the controller's ``--reserved-namespace``) are the
  operator's, for curated images: a tenant's claim is refused (PermissionDenied), the
  operator may assign them;
- a tenant claims at most ``limit`` namespaces itself (QuotaExceeded beyond), so that no
  tenant can take the cloud's good names; the operator's assignments are not limited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from dockyard.core.audit import OPERATOR
from dockyard.core.clock import now_ns
from dockyard.core.errors import AlreadyExists, PermissionDenied, QuotaExceeded
from dockyard.core.namespaces import ALWAYS_RESERVED, Namespace, validate_namespace
from dockyard.store.base import ALL_TENANTS, Store

__all__ = ["DEFAULT_NAMESPACE_LIMIT", "NamespaceService"]

DEFAULT_NAMESPACE_LIMIT: Final = 10
"""How many namespaces a tenant may claim itself (the operator may assign more)."""


class NamespaceService:
    """``reserved``: names tenants may not claim, beside :data:`ALWAYS_RESERVED`
    (InvalidArgument if one is not a valid name); ``limit``: namespaces a tenant may claim
    itself (0: no limit)."""

    def __init__(
        self, store: Store, *, reserved: Iterable[str] = (), limit: int = DEFAULT_NAMESPACE_LIMIT
    ) -> None:
        self._store = store
        self.reserved = ALWAYS_RESERVED | {validate_namespace(n) for n in reserved}
        self._limit = limit

    def claim(self, tenant: str, name: str, *, user: str) -> Namespace:
        """``user`` of ``tenant`` claims ``name``. InvalidArgument for a name that cannot
        be a namespace, PermissionDenied for a reserved one, AlreadyExists if it is taken
        (by this tenant or any other, now or ever), QuotaExceeded past the limit."""
        validate_namespace(name)
        if name in self.reserved:
            raise PermissionDenied(
                f"namespace {name} is reserved by the operator; choose another name"
            )
        mine = self._store.list_namespaces(tenant=tenant)
        if any(n.name == name for n in mine):
            raise AlreadyExists(f"namespace {name} is already yours")
        if self._limit and len(mine) >= self._limit:
            raise QuotaExceeded(
                f"a tenant may claim at most {self._limit} namespaces (you have {len(mine)}); "
                "the operator can assign more"
            )
        return self._add(tenant, name, created_by=user)

    def assign(self, tenant: str, name: str) -> Namespace:
        """The operator gives ``name`` to ``tenant``: reserved names too, no limit.
        InvalidArgument or AlreadyExists as for :meth:`claim`."""
        return self._add(tenant, validate_namespace(name), created_by=OPERATOR)

    def list_namespaces(self, tenant: str) -> list[Namespace]:
        """The tenant's namespaces, by name."""
        return self._store.list_namespaces(tenant=tenant)

    def list_all(self) -> list[Namespace]:
        """Every namespace ever claimed, retired ones included, by name (the operator's)."""
        return self._store.list_namespaces(tenant=ALL_TENANTS)

    def owner(self, name: str) -> str | None:
        """The id of the tenant that owns ``name``; None if none does (the registry's token
        service grants ``<name>/...`` to that tenant only)."""
        return self._store.namespace_owner(name)

    def _add(self, tenant: str, name: str, *, created_by: str) -> Namespace:
        namespace = Namespace(name=name, tenant=tenant, created=now_ns(), created_by=created_by)
        self._store.add_namespace(namespace)  # AlreadyExists, never saying whose
        return namespace
