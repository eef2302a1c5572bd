"""Tenants: who owns an object.

Every object and every store call names its tenant. Until tenants can be created (the tenancy
issue), the embedded cloud has exactly one, :data:`DEFAULT_TENANT_NAME`. Each tenant owns a
disjoint range of host uids and gids that its containers' user namespaces map onto.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TENANT_NAME", "UID_RANGE_SIZE", "Tenant"]

DEFAULT_TENANT_NAME = "default"
UID_RANGE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as the rest of the system sees it.

    ``uid_base`` is the first host uid (and gid) of the tenant's range; container uid ``n``
    is host uid ``uid_base + n`` for ``0 <= n < uid_size``. Ranges of different tenants never
    overlap and never include host uid 0.
    """

    id: str
    name: str
    uid_base: int
    uid_size: int = UID_RANGE_SIZE
