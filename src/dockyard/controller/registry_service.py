"""RegistryService: the daemon side of the cloud's registry (ADR 0021).

``docker pull``, ``docker push``, ``docker login`` and ``docker search`` on the Docker API,
and the cloud's own commands (``dockyard images``, ``dockyard cpi``, deleting tags, the
curated set, garbage collection), all done by the controller on the registry's socket with
tokens it mints in process for the caller, so the registry checks each grant exactly as it
does for an outside client of the front.

References: ``docker.io`` names (``busybox``, ``me/app``) are read from this registry (a
Docker Hub mirror: ``busybox`` is ``library/busybox``), and so are names on the registry's
own address. Other registry hosts are refused with a clear error.

Garbage collection runs distribution's mark phase in dry-run mode and deletes only the
blobs it marks that are older than a grace period, while holding the write side of a
gate that every push holds the read side of: pushes wait for the sweep and then go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.controller.images import ImageService
from dockyard.controller.namespaces import NamespaceService
from dockyard.controller.registry_auth import RegistryAuthorizer, RegistryTokens, subject_of
from dockyard.core.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from dockyard.core.identity import Principal
from dockyard.core.models import Image
from dockyard.core.namespaces import CURATED_NAMESPACE
from dockyard.core.reference import Reference, is_digest, parse_reference
from dockyard.core.registry import Access, parse_scope
from dockyard.images.curated import build_curated
from dockyard.images.registry_client import PulledImage, RegistryClient

__all__ = [
    "GC_GRACE",
    "GcReport",
    "RegistryService",
    "Repository",
    "RepositoryTag",
    "WriteGate",
]

log = logging.getLogger(__name__)

GC_GRACE = 3600.0
"""Blobs younger than this (seconds) are never collected: a push may still reference them."""
_ELIGIBLE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")

Progress = Callable[[dict[str, Any]], None]


class WriteGate:
    """Many writers (pushes) or one collector. A collector waits for the writers in
    flight and holds new ones back until it is done; writers never wait for each other."""

    def __init__(self) -> None:
        self._writers = 0
        self._collecting = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._collecting)
            self._writers += 1
        try:
            yield
        finally:
            async with self._changed:
                self._writers -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def collecting(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._collecting)
            self._collecting = True
            await self._changed.wait_for(lambda: self._writers == 0)
        try:
            yield
        finally:
            async with self._changed:
                self._collecting = False
                self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class RepositoryTag:
    tag: str
    digest: str
    size: int
    pushed: int
    """When the tag was last set (ns since the epoch)."""


@dataclass(frozen=True, slots=True)
class Repository:
    name: str
    """``ns/app`` in the registry."""
    tags: tuple[RepositoryTag, ...]


@dataclass(frozen=True, slots=True)
class GcReport:
    blobs_deleted: int
    bytes_freed: int
    blobs_kept: int
    """Blobs unreferenced but younger than the grace period."""


@dataclass(frozen=True, slots=True)
class _Target:
    repo: str
    """The repository in this registry (``library/busybox``)."""
    familiar: str
    """The repository as the caller named it, familiar (``busybox``, ``127.0.0.1:5000/ns/a``)."""


class RegistryService:
    def __init__(
        self,
        *,
        images: ImageService,
        namespaces: NamespaceService,
        tokens: RegistryTokens,
        authorizer: RegistryAuthorizer,
        socket_path: Path,
        storage_dir: Path,
        config_path: Path,
        address: str,
        binary: str = "docker-registry",
        available: Callable[[], bool] = lambda: True,
    ) -> None:
        self._images = images
        self._namespaces = namespaces
        self._tokens = tokens
        self._authorizer = authorizer
        self._socket = socket_path
        self._storage = storage_dir
        self._config = config_path
        self.address = address
        self._binary = binary
        self._available = available
        self.gate = WriteGate()
        self._gc_lock = asyncio.Lock()

    # tokens and clients ----------------------------------------------------------------

    def token_source(
        self, principal: Principal | None, *, operator: bool = False
    ) -> Callable[[Sequence[str]], Awaitable[str | None]]:
        """Mints the caller's tokens in process: what the token service would grant it."""
        subject = "@operator" if operator else subject_of(principal)

        async def tokens(scopes: Sequence[str]) -> str | None:
            requested = [parse_scope(scope) for scope in scopes]
            granted = self._authorizer.grant(principal, requested, operator=operator)
            return self._tokens.mint(subject, granted)

        return tokens

    @contextlib.asynccontextmanager
    async def client(
        self, principal: Principal | None, *, operator: bool = False
    ) -> AsyncIterator[RegistryClient]:
        if not self._available():
            raise Unavailable("the registry is not running; see the controller's log")
        client = RegistryClient(
            unix_socket=str(self._socket), tokens=self.token_source(principal, operator=operator)
        )
        try:
            yield client
        finally:
            await client.close()

    # references --------------------------------------------------------------------------

    def own_hosts(self) -> set[str]:
        """The spellings of this registry's address a reference may carry."""
        hosts = {self.address} if self.address else set()
        host, _, port = self.address.rpartition(":")
        if host in _LOOPBACK and port:
            hosts.update(f"{h}:{port}" for h in _LOOPBACK)
        return hosts

    def target(self, reference: Reference) -> _Target:
        """Where ``reference`` lives in this registry; InvalidArgument for another host."""
        domain = reference.domain
        if domain == "docker.io":
            return _Target(repo=reference.path, familiar=reference.repository)
        if domain in self.own_hosts():
            return _Target(repo=reference.path, familiar=reference.repository)
        raise InvalidArgument(
            f"registry {domain} is not reachable from this cloud: images come from its own "
            f"registry ({self.address or 'not configured'}) and from the curated names that "
            "stand in for Docker Hub's"
        )

    # login -------------------------------------------------------------------------------

    def check_server(self, server: str) -> None:
        """``docker login SERVER``: this registry's address, or Docker Hub's (mirrored)."""
        host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if not host or host in self.own_hosts() or host.endswith("docker.io"):
            return
        raise InvalidArgument(
            f"no registry at {server} in this cloud; log in to {self.address} instead"
        )

    # pull --------------------------------------------------------------------------------

    async def pull(
        self,
        *,
        tenant: str,
        principal: Principal | None,
        name: str,
        tag: str,
        progress: Progress,
    ) -> list[Image]:
        """``docker pull``: ``name`` with ``tag`` (a tag or a digest; empty: every tag)."""
        text = name if not tag else (f"{name}@{tag}" if is_digest(tag) else f"{name}:{tag}")
        reference = parse_reference(text, default_tag=False)
        target = self.target(reference)
        async with self.client(principal) as client:
            if reference.digest or reference.tag:
                refs = [reference.digest or reference.tag]
            else:
                refs = sorted(await self._tags_or_denied(client, target))
                progress({"status": f"Pulling from {target.repo}"})  # Docker says it once
            images = []
            for ref in refs:
                images.append(await self._pull_one(client, tenant, target, ref, progress))
        return images

    async def _exists(self, client: RegistryClient, target: _Target) -> bool:
        try:
            return bool(await client.tags(target.repo))
        except (NotFound, PermissionDenied, Unauthenticated):
            return False

    async def _tags_or_denied(self, client: RegistryClient, target: _Target) -> list[str]:
        try:
            return await client.tags(target.repo)
        except (NotFound, PermissionDenied, Unauthenticated) as exc:
            raise _denied(target) from exc

    async def _pull_one(
        self, client: RegistryClient, tenant: str, target: _Target, ref: str, progress: Progress
    ) -> Image:
        by_digest = is_digest(ref)
        shown = f"{target.familiar}@{ref}" if by_digest else f"{target.familiar}:{ref}"
        for _attempt in range(3):
            try:
                pulled = await self._fetch(client, target.repo, ref, progress)
            except NotFound as exc:
                if not exc.message.startswith("manifest for "):
                    raise _denied(target) from exc
                if not await self._exists(client, target):
                    raise _denied(target) from exc  # Docker Hub's answer for no such repository
                suffix = "" if by_digest else ": manifest unknown"
                raise NotFound(f"manifest for {shown} not found: manifest unknown{suffix}") from exc
            except (PermissionDenied, Unauthenticated) as exc:
                raise _denied(target) from exc
            added = await self._images.add_pulled(
                tenant=tenant,
                record=pulled.record,
                tag="" if by_digest else shown,
                repo_digest=f"{target.familiar}@{pulled.manifest_digest}",
            )
            if added is None:  # a blob went with a concurrent removal: fetch it again
                continue
            image, new = added
            status = "Downloaded newer image" if new else "Image is up to date"
            progress({"status": f"Status: {status} for {shown}"})
            return image
        raise Unavailable(f"pulling {shown} kept racing image removals; try again")

    async def _fetch(
        self, client: RegistryClient, repo: str, ref: str, progress: Progress
    ) -> PulledImage:
        """``client.pull`` into the content store; layers a failed (or cancelled) pull
        already stored are deleted again unless an image references them."""
        written: list[str] = []
        try:
            return await client.pull(
                repo, ref, self._images.content, progress=progress, written=written
            )
        except BaseException:
            await asyncio.shield(self._images.drop_unreferenced_layers(written))
            raise

    # push --------------------------------------------------------------------------------

    async def push(
        self,
        *,
        tenant: str,
        principal: Principal | None,
        name: str,
        tag: str,
        progress: Progress,
    ) -> None:
        """``docker push``: the tenant's local ``name:tag`` (every tag of ``name`` when
        ``tag`` is empty) to the registry."""
        reference = parse_reference(name, default_tag=False)
        if reference.tag or reference.digest:
            raise InvalidArgument(f"invalid reference format: {name} (give the tag separately)")
        target = self.target(reference)
        # dockerd names the repository before it looks for the image: an image that is
        # not there is an error in the stream.
        progress({"status": f"The push refers to repository [{_display(reference, target)}]"})
        if tag:
            tags = [tag]
        else:
            tags = sorted(
                t.rsplit(":", 1)[1]
                for image in self._images.list_images(tenant=tenant)
                for t in image.repo_tags
                if t.rsplit(":", 1)[0] == reference.repository
            )
            if not tags:
                raise NotFound(f"An image does not exist locally with the tag: {name}")
        async with self.client(principal) as client, self.gate.writing():
            for one in tags:
                local = f"{reference.repository}:{one}"
                try:
                    image = self._images.resolve(tenant=tenant, ref=local)
                except NotFound as exc:
                    raise NotFound(f"tag does not exist: {local}") from exc
                records = self._images.save_records(tenant=tenant, refs=[local])
                try:
                    pushed = await client.push(
                        target.repo,
                        one,
                        records[0],
                        self._images.content,
                        progress=progress,
                        mount_from=self._mount_sources(tenant, principal, image, target.repo),
                    )
                except (PermissionDenied, Unauthenticated) as exc:
                    raise PermissionDenied(
                        "denied: requested access to the resource is denied "
                        f"(push to {target.repo} needs a namespace of your tenant: "
                        "dockyard namespace set NAME)"
                    ) from exc
                self._images.pushed(image, local, f"{target.familiar}@{pushed.digest}")

    def _mount_sources(
        self, tenant: str, principal: Principal | None, image: Image, repo: str
    ) -> list[str]:
        """Repositories of this registry that hold some of the image's layers and that the
        caller may pull from: the repo digests of the tenant's images that share a layer
        with it (the image itself first). Those layers are mounted from there instead of
        uploaded again, as Docker does."""
        layers = set(image.layers)
        related = [image] + [
            other
            for other in self._images.list_images(tenant=tenant)
            if other.id != image.id and layers.intersection(other.layers)
        ]
        sources = []
        for repo_digest in (d for other in related for d in other.repo_digests):
            with contextlib.suppress(InvalidArgument):
                source = self.target(parse_reference(repo_digest.split("@", 1)[0])).repo
                if source != repo and (principal is None or self._visible(principal, source)):
                    sources.append(source)
        return list(dict.fromkeys(sources))

    # search and listings -----------------------------------------------------------------

    def _visible(self, principal: Principal, repo: str) -> bool:
        if "/" not in repo:
            return False
        wanted = [Access(type="repository", name=repo, actions=("pull",))]
        return _pull_granted(self._authorizer.grant(principal, wanted))

    async def catalog(self) -> list[str]:
        async with self.client(None, operator=True) as client:
            return await client.catalog()

    async def search(self, *, principal: Principal, term: str, limit: int) -> list[dict[str, Any]]:
        """``docker search``: the repositories the caller may pull whose name holds
        ``term``, curated ones (official) first."""
        found = []
        needle = term.lower().removeprefix("docker.io/")
        for repo in await self.catalog():
            if not self._visible(principal, repo):
                continue
            namespace, _, rest = repo.partition("/")
            curated = namespace == CURATED_NAMESPACE
            shown = rest if curated else repo
            if needle and needle not in shown and needle not in repo:
                continue
            found.append(
                {
                    "name": shown,
                    "description": "",
                    "star_count": 0,
                    "is_official": curated,
                    "is_automated": False,
                }
            )
        found.sort(key=lambda r: (not r["is_official"], r["name"]))
        return found[: limit or 25]

    async def repositories(
        self, *, principal: Principal, curated: bool = False
    ) -> list[Repository]:
        """``dockyard images``: the tenant's repositories (or the curated ones) with their
        tags, sizes and when each tag was pushed."""
        prefixes: tuple[str, ...]
        if curated:
            prefixes = (f"{CURATED_NAMESPACE}/",)
        else:
            prefixes = tuple(
                f"{n.name}/" for n in self._namespaces.list_namespaces(principal.tenant.id)
            )
        if not prefixes:
            return []
        names = [r for r in await self.catalog() if r.startswith(prefixes)]
        out = []
        async with self.client(principal) as client:
            for name in names:
                try:
                    tags = await client.tags(name)
                except NotFound:
                    continue
                rows = []
                for tag in sorted(tags):
                    with contextlib.suppress(NotFound):
                        media_type, digest, raw = await client.manifest(name, tag)
                        rows.append(
                            RepositoryTag(
                                tag=tag,
                                digest=digest,
                                size=_manifest_size(media_type, raw),
                                pushed=self._tag_time(name, tag),
                            )
                        )
                if rows:
                    out.append(Repository(name=name, tags=tuple(rows)))
        return out

    def _tag_time(self, repo: str, tag: str) -> int:
        link = self._tag_dir(repo, tag) / "current" / "link"
        try:
            return link.stat().st_mtime_ns
        except OSError:
            return 0

    def _tag_dir(self, repo: str, tag: str) -> Path:
        return self._storage / "docker/registry/v2/repositories" / repo / "_manifests/tags" / tag

    # copy and delete ---------------------------------------------------------------------

    def _registry_ref(self, text: str) -> tuple[_Target, str]:
        reference = parse_reference(text, default_tag=True)
        return self.target(reference), reference.digest or reference.tag

    async def copy(self, *, principal: Principal, source: str, destination: str) -> str:
        """``dockyard cpi``: ``source`` (any image the caller may pull) to ``destination``
        (a tag in one of its namespaces), on the registry side; the manifest digest."""
        src, src_ref = self._registry_ref(source)
        dst, dst_tag = self._registry_ref(destination)
        if is_digest(dst_tag):
            raise InvalidArgument(f"copy to a tag, not a digest: {destination}")
        async with self.client(principal) as client, self.gate.writing():
            try:
                return await client.copy(src.repo, src_ref, dst.repo, dst_tag)
            except NotFound as exc:
                raise NotFound(f"no such image in the registry: {source}") from exc
            except (PermissionDenied, Unauthenticated) as exc:
                raise PermissionDenied(
                    f"denied: you may not push to {dst.repo}: not a namespace of your tenant"
                ) from exc

    async def delete(self, *, principal: Principal, ref: str) -> list[str]:
        """Delete a tag (``ns/app:tag``: the tag only; its manifest too once no tag is
        left on it) or a manifest (``ns/app@sha256:...``: with every tag on it). The
        references deleted."""
        target, which = self._registry_ref(ref)
        namespace = target.repo.split("/", 1)[0]
        owned = {n.name for n in self._namespaces.list_namespaces(principal.tenant.id)}
        if namespace not in owned:
            raise NotFound(f"no such image in the registry: {ref}")
        if not principal.may("write"):
            raise PermissionDenied("deleting an image needs a token with the 'write' scope")
        deleted = []
        async with self.client(principal) as client:
            if is_digest(which):
                digest = which
            else:
                try:
                    _, digest, _ = await client.manifest(target.repo, which)
                except NotFound as exc:
                    raise NotFound(f"no such image in the registry: {ref}") from exc
                others = []
                for tag in await client.tags(target.repo):
                    if tag == which:
                        continue
                    with contextlib.suppress(NotFound):
                        if (await client.manifest(target.repo, tag))[1] == digest:
                            others.append(tag)
                if others:
                    await asyncio.to_thread(shutil.rmtree, self._tag_dir(target.repo, which))
                    return [f"{target.familiar}:{which}"]
                deleted.append(f"{target.familiar}:{which}")
            await client.delete_manifest(target.repo, digest)
            deleted.append(f"{target.familiar}@{digest}")
        return deleted

    # the curated set ---------------------------------------------------------------------

    async def seed(self, *, busybox: Path = Path("/bin/busybox")) -> list[str]:
        """``dockyard images seed``: publish the offline curated set (busybox-based
        stand-ins for busybox, alpine and hello-world) to ``library``; what was pushed.
        Idempotent: the same busybox binary gives the same images."""
        curated = await asyncio.to_thread(build_curated, self._images.content, busybox=busybox)
        published = []
        quiet: Progress = lambda _message: None  # noqa: E731
        async with self.client(None, operator=True) as client, self.gate.writing():
            for image in curated:
                repo = f"{CURATED_NAMESPACE}/{image.repository}"
                for tag in image.tags:
                    await client.push(repo, tag, image.record, self._images.content, progress=quiet)
                    published.append(f"{image.repository}:{tag}")
        await self._images.drop_unreferenced([image.record for image in curated])
        return published

    # garbage collection ------------------------------------------------------------------

    async def collect_garbage(self, *, grace: float = GC_GRACE) -> GcReport:
        """Delete blobs no manifest references that are older than ``grace`` seconds."""
        async with self._gc_lock, self.gate.collecting():
            proc = await asyncio.create_subprocess_exec(
                self._binary,
                "garbage-collect",
                "--dry-run",
                str(self._config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                tail = out.decode(errors="replace").strip().splitlines()[-3:]
                raise Unavailable(f"registry garbage-collect failed: {' '.join(tail)}")
            eligible = sorted(set(_ELIGIBLE.findall(out.decode(errors="replace"))))
            return await asyncio.to_thread(self._sweep, eligible, grace)

    def _sweep(self, digests: Sequence[str], grace: float) -> GcReport:
        deleted = kept = freed = 0
        cutoff = time.time() - grace
        blobs = self._storage / "docker/registry/v2/blobs/sha256"
        for digest in digests:
            hexpart = digest.removeprefix("sha256:")
            folder = blobs / hexpart[:2] / hexpart
            data = folder / "data"
            try:
                stat = data.stat()
            except FileNotFoundError:
                continue
            if stat.st_mtime > cutoff:
                kept += 1
                continue
            shutil.rmtree(folder, ignore_errors=True)
            deleted += 1
            freed += stat.st_size
        log.info("registry gc: %d blobs deleted (%d bytes), %d kept", deleted, freed, kept)
        return GcReport(blobs_deleted=deleted, bytes_freed=freed, blobs_kept=kept)


def _pull_granted(granted: Sequence[Access]) -> bool:
    return any("pull" in a.actions for a in granted)


def _denied(target: _Target) -> NotFound:
    """dockerd's answer (a 404) for a repository that is not there or not the caller's."""
    return NotFound(
        f"pull access denied for {target.familiar}, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied"
    )


def _display(reference: Reference, target: _Target) -> str:
    if reference.domain == "docker.io":
        return f"docker.io/{target.repo}"
    return reference.repository


def _manifest_size(media_type: str, raw: bytes) -> int:
    """Config and layers of an image manifest; of an index, its largest child's size is
    not known without fetching it, so the manifest entries' own sizes are summed."""
    try:
        document = json.loads(raw)
    except ValueError:
        return len(raw)
    if "manifests" in document:
        return sum(int(m.get("size", 0)) for m in document.get("manifests") or [])
    total = int((document.get("config") or {}).get("size", 0))
    return total + sum(int(layer.get("size", 0)) for layer in document.get("layers") or [])
