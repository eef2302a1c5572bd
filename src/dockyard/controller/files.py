"""ContainerFileService: a tenant's container files (``docker cp``, ``export``, ``diff``).

The work happens on the container's agent, which has its root filesystem; the controller
finds the container for the tenant (another tenant's container is NotFound, as everywhere)
and streams bytes through without decoding a tar. Docker's wording and headers belong to
the API layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.controller.agents import AgentStream
from dockyard.controller.containers import ContainerService
from dockyard.controller.hosts import HostRegistry
from dockyard.core.models import Container
from dockyard.core.protocol import FileChange, PathStat

__all__ = ["ContainerFileService"]


class ContainerFileService:
    def __init__(self, *, containers: ContainerService, hosts: HostRegistry) -> None:
        self._containers = containers
        self._hosts = hosts

    def container(self, *, tenant: str, ref: str) -> Container:
        """The tenant's container by id, name or unique id prefix (NotFound otherwise)."""
        return self._containers.get(tenant=tenant, ref=ref)

    async def stat(self, container: Container, path: str) -> PathStat:
        """``path`` in the container, a final symlink not followed; NotFound if missing."""
        return await self._hosts.client(container.host).archive_stat(container.id, path)

    async def archive(self, container: Container, path: str) -> tuple[PathStat, AgentStream]:
        """The stat of ``path`` and a tar of it (close the stream when done)."""
        return await self._hosts.client(container.host).archive(container.id, path)

    async def extract(
        self,
        container: Container,
        path: str,
        body: AsyncIterator[bytes],
        *,
        copy_uid_gid: bool,
        no_overwrite_dir_non_dir: bool,
    ) -> None:
        """Extract the tar ``body`` into the directory ``path`` of the container.

        Nothing is written unless the body arrives whole and passes the agent's checks
        (docs/adr/0009): InvalidArgument names the refused entry; PermissionDenied for a
        read-only rootfs or volume; NotFound if ``path`` does not exist.
        """
        await self._hosts.client(container.host).extract(
            container.id,
            path,
            body,
            copy_uid_gid=copy_uid_gid,
            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        )

    async def export(self, container: Container) -> AgentStream:
        """A tar of the container's root filesystem (close the stream when done)."""
        return await self._hosts.client(container.host).export(container.id)

    async def changes(self, container: Container) -> list[FileChange]:
        return await self._hosts.client(container.host).changes(container.id)
