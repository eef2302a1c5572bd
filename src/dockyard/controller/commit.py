"""CommitService: ``docker commit``, a container's changes as a new image of its tenant.

The container's agent reads the writable layer (the overlay upper dir) and streams it as a
Docker layer tar (``GET /v1/containers/{id}/layer``, ADR 0017); the image service stores it
against the tenant's image storage quota and writes the new image's config. Docker's order
of events: ``pause`` (if the container was paused for the commit), ``tag`` (the image's, if
tagged), ``commit`` (the container's, with ``comment``, ``imageID``, ``imageRef``), then
``unpause``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.controller.containers import ContainerService
from dockyard.controller.events import EventLog
from dockyard.controller.hosts import HostRegistry
from dockyard.controller.images import ImageService
from dockyard.core.errors import Conflict, InvalidArgument, NotFound
from dockyard.core.models import Container, Image, Status
from dockyard.core.reference import parse_reference
from dockyard.images.commit import CommitInfo, committed_config

__all__ = ["CommitRequest", "CommitService", "commit_tag"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitRequest:
    """What ``POST /commit`` asks for.

    ``container_config`` is the container's config as Docker shows it (``Config`` of
    inspect); ``overrides`` the request's body (a partial config; empty: the container's);
    ``changes`` Dockerfile instructions; ``tag`` a familiar ``name:tag`` or "" (see
    :func:`commit_tag`).
    """

    container_config: Mapping[str, Any]
    overrides: Mapping[str, Any] | None = None
    changes: Sequence[str] = ()
    tag: str = ""
    author: str = ""
    comment: str = ""
    pause: bool = True


def commit_tag(repo: str, tag: str) -> str:
    """The name a commit tags its image with (moby's ``RepoTagReference``): none without
    ``repo``; ``latest`` if no tag is given. InvalidArgument for a malformed name or a
    digest."""
    if not repo:
        return ""
    reference = parse_reference(f"{repo}:{tag}" if tag else repo)
    if reference.digest:
        raise InvalidArgument("cannot import digest reference")
    return reference.tagged()


class CommitService:
    def __init__(
        self,
        *,
        containers: ContainerService,
        images: ImageService,
        hosts: HostRegistry,
        events: EventLog,
    ) -> None:
        self._containers = containers
        self._images = images
        self._hosts = hosts
        self._events = events

    async def commit(self, container: Container, request: CommitRequest) -> Image:
        """Commit ``container`` (the caller resolved it for the tenant: another tenant's is
        NotFound before this is called).

        With ``request.pause`` a running container is paused for the copy and unpaused
        after, whether the commit succeeded or not (a container that stopped or went
        meanwhile is left as it is). InvalidArgument for a bad change (before anything
        happens); QuotaExceeded if the layer does not fit the tenant's image storage
        (nothing kept); Conflict while the container is being created or removed;
        Unavailable if its agent cannot be reached or its stream breaks off.
        """
        config = committed_config(request.container_config, request.overrides, request.changes)
        parent = self._images.resolve(tenant=container.tenant, ref=container.image_id)
        paused = False
        if request.pause and container.state.status == Status.RUNNING:
            with contextlib.suppress(Conflict):  # stopped meanwhile: nothing to pause
                await self._containers.pause(tenant=container.tenant, ref=container.id)
                paused = True
        try:
            stream = await self._hosts.client(container.host).layer(container.id)
            try:
                image = await self._images.commit(
                    tenant=container.tenant,
                    parent=parent,
                    layer=stream.chunks(),
                    config=config,
                    info=CommitInfo(
                        container_id=container.id,
                        container_config=request.container_config,
                        author=request.author,
                        comment=request.comment,
                    ),
                    tag=request.tag,
                )
            finally:
                stream.close()
            self._events.container(
                container,
                "commit",
                {"comment": request.comment, "imageID": image.id, "imageRef": request.tag},
            )
            return image
        finally:
            if paused:
                with contextlib.suppress(Conflict, NotFound):
                    await self._containers.unpause(tenant=container.tenant, ref=container.id)
