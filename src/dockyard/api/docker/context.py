"""Per-request context for Docker API handlers: the controller and the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from dockyard.controller.app import Controller
from dockyard.core.errors import InvalidArgument
from dockyard.core.tenancy import Tenant

__all__ = ["ApiContext", "flag", "query_int", "tenant_of"]

CONTEXT_KEY = web.AppKey("dockyard_context", object)
TENANT_KEY = "dockyard_tenant"


@dataclass(frozen=True, slots=True)
class ApiContext:
    controller: Controller

    @staticmethod
    def of(request: web.Request) -> ApiContext:
        ctx = request.app[CONTEXT_KEY]
        assert isinstance(ctx, ApiContext)
        return ctx


def tenant_of(request: web.Request) -> Tenant:
    """The tenant the authenticated caller acts for (set by the auth middleware)."""
    tenant = request[TENANT_KEY]
    assert isinstance(tenant, Tenant)
    return tenant


def flag(request: web.Request, name: str) -> bool:
    """Docker's boolean query values: absent, "", "0", "no", "false", "none" are false."""
    value = request.query.get(name, "")
    return value.strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: web.Request, name: str, default: int = 0) -> int:
    value = request.query.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None
