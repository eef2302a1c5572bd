"""The controller's internal API (not reachable by tenants).

Served on a separate root-only socket (mTLS in a cluster): agents fetch image blobs from
here to unpack layers, and the operator manages tenants (``dockyard.api.admin``).
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.admin import add_admin_routes
from dockyard.api.audit import AuditRecorder, operator_caller
from dockyard.api.certs import add_cert_admin_routes
from dockyard.api.errors import docker_errors, json_response
from dockyard.api.namespaces import add_namespace_admin_routes
from dockyard.api.public_ips import add_public_ip_admin_routes
from dockyard.api.repositories import add_registry_admin_routes
from dockyard.controller.app import Controller
from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.core.tenancy import Tenant

__all__ = ["make_internal_app"]


def make_internal_app(controller: Controller) -> web.Application:
    def tenant_id(name: str) -> str:
        try:
            tenant: Tenant = controller.identity.tenant(name)
        except NotFound:
            return ""
        return tenant.id

    # The operator's calls that change something go to the log of the tenant they touch.
    audit = AuditRecorder(controller.audit, caller=operator_caller(tenant_id))
    app = web.Application(middlewares=[audit.middleware, docker_errors])
    audit.install(app)

    async def blob(request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        content = controller.images.content
        try:
            path = content.path(digest)
        except InvalidArgument as exc:
            raise NotFound(f"blob {digest} not found") from exc
        if not content.has(digest):
            raise NotFound(f"blob {digest} not found")
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def ready(_request: web.Request) -> web.Response:
        """200 once every agent is connected (``dockyard up`` waits for it), else 503."""
        away = [h.host.name for h in controller.hosts.handles() if not h.ready]
        status = 503 if away else 200
        return json_response({"disconnected": away}, status=status)

    app.router.add_get("/internal/v1/blobs/{digest}", blob)
    app.router.add_get("/internal/v1/ready", ready)
    add_admin_routes(app, controller)
    add_cert_admin_routes(app, controller)
    add_namespace_admin_routes(app, controller)
    add_registry_admin_routes(app, controller)
    add_public_ip_admin_routes(app, controller)
    return app
