"""Per-request context for Docker API handlers: the controller and the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from dockyard.controller.app import Controller
from dockyard.core.identity import Principal
from dockyard.core.tenancy import Tenant

__all__ = ["ApiContext", "principal_of", "tenant_of"]

CONTEXT_KEY = web.AppKey("dockyard_context", object)
TENANT_KEY = web.RequestKey("dockyard_tenant", Tenant)
PRINCIPAL_KEY = web.RequestKey("dockyard_principal", Principal)


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


def principal_of(request: web.Request) -> Principal:
    """Who made the call (set by the auth middleware)."""
    principal = request[PRINCIPAL_KEY]
    assert isinstance(principal, Principal)
    return principal
