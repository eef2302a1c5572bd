"""The Docker Engine API application: routes under bare and versioned paths.

Every route answers at ``/path`` and ``/v<major>.<minor>/path``. Versions older than
:data:`MIN_API_VERSION` or newer than :data:`MAX_API_VERSION` are refused as Docker refuses
them. The auth middleware (``dockyard.api.auth``) resolves the caller and its tenant; the
audit recorder (``dockyard.api.audit``) records every mutating call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard.api import certs, namespaces, native, public_ips, repositories, security_groups
from dockyard.api.audit import AuditRecorder, tenant_caller
from dockyard.api.auth import FailureLimiter, auth_middleware
from dockyard.api.docker import (
    commit,
    containers,
    events,
    execs,
    files,
    images,
    networks,
    registry,
    stats,
    system,
    volumes,
)
from dockyard.api.docker.context import CONTEXT_KEY, ApiContext
from dockyard.api.docker.system import MAX_API_VERSION, MIN_API_VERSION
from dockyard.api.errors import docker_errors, error_response
from dockyard.controller.app import Controller

__all__ = ["ROUTE_TABLES", "make_docker_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_VERSION_PREFIX = r"/v{version:[0-9]+\.[0-9]+}"


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


@web.middleware
async def _api_version(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("version")
    if version:
        wanted = _version_tuple(version)
        if wanted < _version_tuple(MIN_API_VERSION):
            return error_response(
                400,
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version",
            )
        if wanted > _version_tuple(MAX_API_VERSION):
            return error_response(
                400,
                f"client version {version} is too new. Maximum supported API version is "
                f"{MAX_API_VERSION}",
            )
    return await handler(request)


ROUTE_TABLES = (
    system.routes,
    registry.routes,
    events.routes,
    containers.routes,
    execs.routes,
    stats.routes,
    files.routes,
    images.routes,
    volumes.routes,
    networks.routes,
    commit.routes,
)
"""Every Docker API handler, by module (the docs test checks each is documented)."""


def make_docker_app(controller: Controller, *, tls: bool = False) -> web.Application:
    """The Docker and native API; ``tls``: for the TLS listener, where client certificates
    authenticate callers."""
    audit = AuditRecorder(controller.audit, caller=tenant_caller)
    app = web.Application(
        middlewares=[
            audit.middleware,  # outermost: it sees every answer, errors included
            docker_errors,
            _api_version,
            auth_middleware(
                controller.identity, FailureLimiter(), controller.certs if tls else None
            ),
        ],
        client_max_size=0,
    )
    app[CONTEXT_KEY] = ApiContext(controller)
    audit.install(app)

    async def end_event_streams(_app: web.Application) -> None:
        controller.events.end_streams()  # or the server waits for them to end on their own

    app.on_shutdown.append(end_event_streams)
    for table in ROUTE_TABLES:
        for route in table:
            assert isinstance(route, web.RouteDef)
            app.router.add_route(route.method, route.path, route.handler)
            app.router.add_route(route.method, _VERSION_PREFIX + route.path, route.handler)
    app.add_routes(native.routes)  # Dockyard's own /v1/... (no Docker version prefix)
    app.add_routes(certs.routes)
    app.add_routes(namespaces.routes)
    app.add_routes(security_groups.routes)
    app.add_routes(public_ips.routes)
    app.add_routes(repositories.routes)
    return app
