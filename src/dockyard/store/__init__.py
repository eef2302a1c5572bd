"""Persistence of the controller's records behind the :class:`Store` protocol.

Every call names the tenant it acts for; a lookup never returns another tenant's object
(it raises NotFound, as if the object did not exist). :data:`ALL_TENANTS` is the explicit
system scope used only by the controller's reconcilers.
"""

from dockyard.store.base import ALL_TENANTS, Store
from dockyard.store.sql import SqlStore

__all__ = ["ALL_TENANTS", "SqlStore", "Store"]
