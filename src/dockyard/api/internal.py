"""The controller's internal API for agents (not reachable by tenants).

Served on a separate root-only socket (mTLS in a cluster): agents fetch image blobs from
here to unpack layers.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.errors import docker_errors
from dockyard.controller.app import Controller
from dockyard.core.errors import InvalidArgument, NotFound

__all__ = ["make_internal_app"]


def make_internal_app(controller: Controller) -> web.Application:
    app = web.Application(middlewares=[docker_errors])

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

    app.router.add_get("/internal/v1/blobs/{digest}", blob)
    return app
