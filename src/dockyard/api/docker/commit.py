"""Docker Engine API: ``POST /commit`` (ImageCommit), ``docker commit``.

Docker's quirks live here: the container is a query parameter; ``pause`` defaults to true
when absent; the body is an optional partial container config (docker-py sends ``{}``,
the docker CLI nothing), decoded as Docker decodes it (wrong types are 400, unknown keys
ignored); the answer is 201 ``{"Id": ...}``. The work is the controller's
(:mod:`dockyard.controller.commit`, ADR 0017).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.docker.body import get_str, read_json
from dockyard.api.docker.container_json import config_json, parse_config
from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.errors import json_response
from dockyard.controller.commit import CommitRequest, commit_tag
from dockyard.wire.query import flag

__all__ = ["routes"]

routes = web.RouteTableDef()


def _overrides(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body's config, type-checked as a create's ``Config`` is (``Image`` may be
    empty here); None for an empty body, which means the container's own config."""
    if not body:
        return None
    get_str(body, "Image")
    parse_config({**body, "Image": "-"})
    return body


@routes.post("/commit")
async def image_commit(request: web.Request) -> web.Response:
    ctx = ApiContext.of(request)
    query = request.query
    tag = commit_tag(query.get("repo", ""), query.get("tag", ""))
    overrides = _overrides(await read_json(request, empty_ok=True))
    container = ctx.controller.containers.get(
        tenant=tenant_of(request).id, ref=query.get("container", "")
    )
    image = await ctx.controller.commits.commit(
        container,
        CommitRequest(
            container_config=config_json(container.config),
            overrides=overrides,
            changes=query.getall("changes", []),
            tag=tag,
            author=query.get("author", ""),
            comment=query.get("comment", ""),
            pause=flag(request, "pause") if "pause" in query else True,
        ),
    )
    return json_response({"Id": image.id}, status=201)
