"""ImageService: a tenant's images: load, save, import, tag, remove, prune, resolve.

Blobs live once in the controller's content store, shared by all tenants (content
addressed, so sharing reveals nothing); which images and tags a tenant holds is in the
store, per tenant. Removing the last reference to a blob deletes it. Mutations that add
or delete blobs hold one lock so a removal never deletes a blob a concurrent load is
about to reference.

Each change is an event: ``load``, ``import`` (after ``tag`` for its tag), ``tag``,
``untag`` per reference removed, ``delete``, ``save``; a commit's image gives ``tag`` for
its tag (the container's ``commit`` event is the caller's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import fnmatch
import functools
import json
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.controller.events import EventLog
from dockyard.controller.quotas import QuotaService
from dockyard.core.clock import now_ns
from dockyard.core.errors import Conflict, InvalidArgument, NotFound, QuotaExceeded
from dockyard.core.models import Image
from dockyard.core.reference import is_digest, parse_reference
from dockyard.images.archive import ImageRecord, import_rootfs, load_archive, save_archive
from dockyard.images.commit import CommitInfo, LayerWriter, commit_image
from dockyard.images.content import ContentStore
from dockyard.images.seed import seed_busybox
from dockyard.store.base import Store

__all__ = ["ImageService", "RemovalReport", "parse_created"]

_HEX = set("0123456789abcdef")
_CHUNK = 1 << 20
# A commit's layer is checked against the image storage quota every this many bytes while
# it arrives, so a layer that cannot fit stops early instead of filling the disk first.
_QUOTA_STEP = 64 << 20
_NEW_LAYER = "(the layer being committed)"  # never a digest: never a layer already held


def parse_created(text: str) -> int:
    """RFC 3339 ``created`` of an image config to ns (0 if absent or malformed)."""
    if not text:
        return 0
    head, _, rest = text.partition(".")
    frac = ""
    tz = "+00:00"
    if rest:
        digits = ""
        for index, char in enumerate(rest):
            if char.isdigit():
                digits += char
            else:
                tz = rest[index:]
                break
        frac = digits
    elif head.endswith("Z"):
        head = head[:-1]
    elif len(head) > 19:
        head, tz = head[:19], head[19:]
    tz = "+00:00" if tz in ("Z", "z", "") else tz
    try:
        stamp = dt.datetime.fromisoformat(head + tz)
    except ValueError:
        return 0
    return int(stamp.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


@dataclass(slots=True)
class RemovalReport:
    untagged: list[str]
    deleted: list[str]


class ImageService:
    def __init__(
        self,
        *,
        store: Store,
        content: ContentStore,
        spool_dir: Path,
        events: EventLog,
        quotas: QuotaService,
    ) -> None:
        self._store = store
        self._quotas = quotas
        self._events = events
        self._content = content
        self._spool = spool_dir
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()
        self._tags: dict[tuple[str, str], Image] = {}

    @property
    def content(self) -> ContentStore:
        return self._content

    # lookup ------------------------------------------------------------------------------

    def resolve(self, *, tenant: str, ref: str) -> Image:
        """Find an image by full id, ``name[:tag]``, ``name@digest`` or id prefix."""
        if not ref:
            raise NotFound("No such image: ")
        bare = ref.removeprefix("sha256:")
        if len(bare) == 64 and set(bare) <= _HEX:
            return self._store.get_image(tenant=tenant, image_id=f"sha256:{bare}")
        try:
            reference = parse_reference(ref)
        except InvalidArgument:
            if not (set(bare) <= _HEX):
                raise  # not an id prefix either: Docker answers 400 for a bad reference
            reference = None
        if reference is not None and reference.digest:
            wanted = f"{reference.repository}@{reference.digest}"
            for image in self._store.list_images(tenant=tenant):
                if wanted in image.repo_digests:
                    return image
        elif reference is not None:
            with contextlib.suppress(NotFound):
                return self._by_tag(tenant, reference.tagged())
        if bare and set(bare) <= _HEX and (ref.startswith("sha256:") or ":" not in ref):
            found = self._store.find_images(tenant=tenant, id_prefix=f"sha256:{bare}")
            if len(found) == 1:
                return found[0]
        if reference is not None and not reference.digest and ":" not in ref.rsplit("/", 1)[-1]:
            raise NotFound(f"No such image: {reference.tagged()}")
        raise NotFound(f"No such image: {ref}")

    def _by_tag(self, tenant: str, tag: str) -> Image:
        """The image tagged ``tag``, from a cache this service clears on every change of
        the tenant's images (it is their only writer). Callers get a copy."""
        key = (tenant, tag)
        image = self._tags.get(key)
        if image is None:
            image = self._store.image_by_tag(tenant=tenant, tag=tag)
            self._tags[key] = image
        return dataclasses.replace(image)

    def _changed(self, tenant: str) -> None:
        self._tags = {k: v for k, v in self._tags.items() if k[0] != tenant}

    def list_images(self, *, tenant: str) -> list[Image]:
        return self._store.list_images(tenant=tenant)

    @functools.lru_cache(maxsize=512)  # noqa: B019  (configs are immutable by digest)
    def _config_bytes(self, image_id: str) -> bytes:
        with self._content.open(image_id) as handle:
            return handle.read()

    def config(self, image: Image) -> dict[str, Any]:
        """The image's full config JSON (a fresh copy the caller may change)."""
        data: dict[str, Any] = json.loads(self._config_bytes(image.id))
        return data

    def _event(self, image: Image, action: str, name: str = "") -> None:
        """Record an image event with Docker's attributes: the image's labels and name."""
        labels: dict[str, Any] = {}
        with contextlib.suppress(NotFound):  # the config blob went with a removed image
            labels = (self.config(image).get("config") or {}).get("Labels") or {}
        self._events.image(
            tenant=image.tenant,
            image_id=image.id,
            action=action,
            name=name,
            labels={str(k): str(v) for k, v in labels.items()},
        )

    # adding images -----------------------------------------------------------------------

    def _record_to_image(self, tenant: str, record: ImageRecord) -> Image:
        config = json.loads(record.config)
        history = config.get("history") or []
        comment = str(history[-1].get("comment", "")) if history else ""
        return Image(
            id=record.config_digest,
            tenant=tenant,
            layers=tuple(record.diff_ids),
            size=sum(record.layer_sizes),
            created=parse_created(str(config.get("created", ""))),
            repo_tags=tuple(record.repo_tags),
            comment=comment,
            loaded_at=now_ns(),
        )

    def _add(
        self,
        tenant: str,
        record: ImageRecord,
        *,
        extra_tags: Sequence[str] = (),
        parent: str = "",
    ) -> Image:
        image = self._record_to_image(tenant, record)
        image.parent = parent
        with contextlib.suppress(NotFound):
            existing = self._store.get_image(tenant=tenant, image_id=image.id)
            image.repo_tags = tuple(dict.fromkeys((*existing.repo_tags, *image.repo_tags)))
            image.repo_digests = existing.repo_digests
        image.repo_tags = tuple(dict.fromkeys((*image.repo_tags, *extra_tags)))
        self._store.put_image(image)
        self._changed(image.tenant)
        return image

    async def _spool_body(self, body: AsyncIterator[bytes]) -> BinaryIO:
        handle: BinaryIO = tempfile.TemporaryFile(dir=self._spool)  # noqa: SIM115
        try:
            async for chunk in body:
                await asyncio.to_thread(handle.write, chunk)
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle

    def _admit(self, tenant: str, records: Sequence[ImageRecord]) -> None:
        """QuotaExceeded if the tenant's image storage cannot take ``records``; then the
        blobs they brought that no image references are removed again."""
        layers = {
            diff_id: size
            for record in records
            for diff_id, size in zip(record.diff_ids, record.layer_sizes, strict=True)
        }
        try:
            self._quotas.check_image_layers(tenant, layers)
        except QuotaExceeded:
            for record in records:
                self._collect(self._record_to_image(tenant, record))
            raise

    async def load(self, *, tenant: str, body: AsyncIterator[bytes]) -> list[Image]:
        """``docker load``: every image of a Docker or OCI archive; QuotaExceeded (with
        nothing kept) if they do not fit the tenant's image storage."""
        with await self._spool_body(body) as archive:
            async with self._lock:
                records = await asyncio.to_thread(
                    load_archive, archive, self._content, spool_dir=self._spool
                )
                await asyncio.to_thread(self._admit, tenant, records)
                images = [self._add(tenant, r) for r in records]
        for image in images:
            self._event(image, "load")
        return images

    async def import_(
        self,
        *,
        tenant: str,
        body: AsyncIterator[bytes],
        tag: str = "",
        changes: Sequence[str] = (),
        message: str = "",
    ) -> Image:
        """``docker import``: one image from a filesystem tarball; QuotaExceeded (with
        nothing kept) if it does not fit the tenant's image storage."""
        tags = (parse_reference(tag).tagged(),) if tag else ()
        with await self._spool_body(body) as source:
            async with self._lock:
                record = await asyncio.to_thread(
                    functools.partial(
                        import_rootfs,
                        source,
                        self._content,
                        changes=changes,
                        message=message,
                        spool_dir=self._spool,
                    )
                )
                await asyncio.to_thread(self._admit, tenant, [record])
                image = self._add(tenant, record, extra_tags=tags)
        for name in tags:
            self._event(image, "tag", name)
        self._event(image, "import")
        return image

    async def commit(
        self,
        *,
        tenant: str,
        parent: Image,
        layer: AsyncIterator[bytes],
        config: dict[str, Any],
        info: CommitInfo,
        tag: str = "",
    ) -> Image:
        """``docker commit``: the image made of ``parent`` (the container's image) and the
        layer tar streamed in ``layer``, with ``config`` (see :mod:`dockyard.images.commit`),
        tagged ``tag`` (familiar ``name:tag``) if given. A layer without entries adds no
        layer, as in Docker.

        QuotaExceeded if the layer does not fit the tenant's image storage: checked while
        it arrives and once it is whole; nothing is kept then (no blob, no image). If
        ``layer`` raises (the agent's stream broke off), nothing is kept either.
        """
        parent_config = self.config(parent)
        with LayerWriter(self._content) as writer:
            await self._receive_layer(tenant, layer, writer)
            async with self._lock:
                record = await asyncio.to_thread(
                    functools.partial(
                        commit_image,
                        writer,
                        self._content,
                        parent_config,
                        config=config,
                        info=info,
                    )
                )
                await asyncio.to_thread(self._admit, tenant, [record])
                image = self._add(
                    tenant, record, extra_tags=(tag,) if tag else (), parent=parent.id
                )
        if tag:
            self._event(image, "tag", tag)
        return image

    async def _receive_layer(
        self, tenant: str, chunks: AsyncIterator[bytes], writer: LayerWriter
    ) -> None:
        pending = bytearray()
        checked = 0

        async def flush() -> None:
            nonlocal checked
            await asyncio.to_thread(writer.write, bytes(pending))
            pending.clear()
            if writer.size - checked >= _QUOTA_STEP:
                checked = writer.size
                await asyncio.to_thread(
                    self._quotas.check_image_layers, tenant, {_NEW_LAYER: writer.size}
                )

        async for chunk in chunks:
            pending += chunk
            if len(pending) >= _CHUNK:
                await flush()
        if pending:
            await flush()

    async def seed_busybox(self, *, tenant: str, tags: Sequence[str]) -> Image:
        """Publish the offline busybox image (built from the host's busybox-static): the
        operator's gift, not checked against the tenant's image storage."""
        async with self._lock:
            record = await asyncio.to_thread(
                functools.partial(
                    seed_busybox, self._content, spool_dir=self._spool, tags=tuple(tags)
                )
            )
            image = self._add(tenant, record)
        self._event(image, "load")
        return image

    async def add_pulled(
        self, *, tenant: str, record: ImageRecord, tag: str, repo_digest: str
    ) -> tuple[Image, bool] | None:
        """Record an image ``docker pull`` fetched into the content store, tagged ``tag``
        (none for a pull by digest) with ``repo_digest``; the image and whether the pull
        changed anything (Docker's "Downloaded newer image" against "Image is up to
        date"). None when one of its blobs is gone (a concurrent removal collected it
        before this image referenced it): the caller pulls again. QuotaExceeded, with
        nothing kept, past the tenant's image storage."""
        async with self._lock:
            if not all(self._content.has(d) for d in (record.config_digest, *record.diff_ids)):
                return None
            existing: Image | None = None
            with contextlib.suppress(NotFound):
                existing = self._store.get_image(tenant=tenant, image_id=record.config_digest)
            if existing is None:
                await asyncio.to_thread(self._admit, tenant, [record])
            unchanged = existing is not None and (not tag or tag in existing.repo_tags)
            image = self._add(tenant, dataclasses.replace(record, repo_tags=(tag,) if tag else ()))
            self._note_repo_digest(image, repo_digest)
        # dockerd logs a pull after every successful one, up to date or not.
        name = tag or repo_digest
        self._events.image(tenant=tenant, image_id=name, action="pull", name=name)
        return image, not unchanged

    async def drop_unreferenced_layers(self, diff_ids: Sequence[str]) -> None:
        """Delete the layers among ``diff_ids`` that no tenant's image references: what a
        pull that failed had already stored (the content store is collected only with
        images, so nothing else would ever take them)."""
        async with self._lock:
            for diff_id in dict.fromkeys(diff_ids):
                if not self._store.layer_referenced(diff_id):
                    self._content.delete(diff_id)

    async def drop_unreferenced(self, records: Sequence[ImageRecord]) -> None:
        """Delete the blobs of ``records`` that no tenant's image references: what was
        written only to be pushed (the curated set). A pull that wrote one of them and
        has not recorded its image yet fetches it again (:meth:`add_pulled`)."""
        async with self._lock:
            for record in records:
                await asyncio.to_thread(self._collect, self._record_to_image("", record))

    def pushed(self, image: Image, name: str, repo_digest: str) -> None:
        """After ``docker push`` of ``name``: the image is also ``repo_digest`` in the
        registry (its ``RepoDigests``), and a ``push`` event says so."""
        self._note_repo_digest(
            self._store.get_image(tenant=image.tenant, image_id=image.id), repo_digest
        )
        self._events.image(tenant=image.tenant, image_id=name, action="push", name=name)

    def _note_repo_digest(self, image: Image, repo_digest: str) -> None:
        """Record ``repo_digest`` (``repository@digest``) on ``image`` (as read from the
        store), replacing the one it had for that repository."""
        if repo_digest in image.repo_digests:
            return
        repository = repo_digest.split("@", 1)[0]
        image.repo_digests = (
            *(d for d in image.repo_digests if d.split("@", 1)[0] != repository),
            repo_digest,
        )
        self._store.put_image(image)
        self._changed(image.tenant)

    # tags --------------------------------------------------------------------------------

    def tag(self, *, tenant: str, source: str, repo: str, tag: str) -> Image:
        image = self.resolve(tenant=tenant, ref=source)
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        if tag and ":" in repo.rsplit("/", 1)[-1]:
            raise InvalidArgument(f"invalid reference format: {repo}:{tag}")
        reference = parse_reference(f"{repo}:{tag}" if tag else repo)
        if reference.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        name = reference.tagged()
        if name not in image.repo_tags:
            image.repo_tags = (*image.repo_tags, name)
            self._store.put_image(image)
            self._changed(image.tenant)
        self._event(image, "tag", name)
        return image

    # removal -----------------------------------------------------------------------------

    async def remove(
        self,
        *,
        tenant: str,
        ref: str,
        force: bool,
        users: dict[str, list[tuple[str, bool]]],
    ) -> RemovalReport:
        """``docker rmi``. ``users`` maps image ids to (container id, running) using them.

        Docker's rules: a tag reference untags; the image goes when its last tag does and
        nothing uses it. An id reference with several tags, or an image a stopped
        container uses, needs force; an image a running container uses cannot go.
        """
        async with self._lock:
            image = self.resolve(tenant=tenant, ref=ref)
            report = RemovalReport(untagged=[], deleted=[])
            by_tag = self._tag_of(image, ref)
            in_use = users.get(image.id, [])
            running = [cid for cid, is_running in in_use if is_running]
            if by_tag and (len(image.repo_tags) > 1 or (force and running)):
                self._untag(image, by_tag)
                report.untagged.append(by_tag)
                self._event(image, "untag", by_tag)
                return report
            if by_tag and in_use and not force:
                cid = in_use[0][0]
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref}" (must force) - '
                    f"container {cid[:12]} is using its referenced image {image.id[7:19]}"
                )
            if not by_tag and len(image.repo_tags) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is "
                    "referenced in multiple repositories"
                )
            if running:
                raise Conflict(
                    f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - image "
                    f"is being used by running container {running[0][:12]}"
                )
            if in_use and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is "
                    f"being used by stopped container {in_use[0][0][:12]}"
                )
            report.untagged.extend(image.repo_tags)
            report.untagged.extend(image.repo_digests)
            self._store.delete_image(tenant=tenant, image_id=image.id)
            self._changed(tenant)
            for name in report.untagged:
                self._event(image, "untag", name)
            self._event(image, "delete")  # before _collect, which may drop the config blob
            report.deleted.append(image.id)
            await asyncio.to_thread(self._collect, image)
            return report

    def _tag_of(self, image: Image, ref: str) -> str:
        """The tag ``ref`` names, or "" when ``ref`` names the image by id or digest."""
        if ref.startswith("sha256:") or is_digest(ref):
            return ""
        try:
            reference = parse_reference(ref)
        except InvalidArgument:
            return ""
        if reference.digest:
            return ""
        name = reference.tagged()
        return name if name in image.repo_tags else ""

    def _untag(self, image: Image, tag: str) -> None:
        image.repo_tags = tuple(t for t in image.repo_tags if t != tag)
        self._store.put_image(image)
        self._changed(image.tenant)

    def _collect(self, image: Image) -> None:
        """Delete blobs of ``image`` that no tenant's image references any more."""
        for diff_id in dict.fromkeys(image.layers):
            if not self._store.layer_referenced(diff_id):
                self._content.delete(diff_id)
        holders = [
            t
            for t in self._store.list_tenants()
            if self._store.find_images(tenant=t.id, id_prefix=image.id)
        ]
        if not holders:
            self._content.delete(image.id)
            self._config_bytes.cache_clear()

    async def prune(
        self,
        *,
        tenant: str,
        dangling_only: bool,
        used: set[str],
        until: int = 0,
        labels: Sequence[str] = (),
    ) -> tuple[list[dict[str, str]], int]:
        """Remove unused images (only untagged ones if ``dangling_only``)."""
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        for image in self.list_images(tenant=tenant):
            if image.id in used or (dangling_only and image.repo_tags):
                continue
            if until and image.created >= until:
                continue
            if labels and not matches_labels(self.config(image), labels):
                continue
            report = await self.remove(tenant=tenant, ref=image.id, force=True, users={})
            deleted += [{"Untagged": t} for t in report.untagged]
            deleted += [{"Deleted": d} for d in report.deleted]
            reclaimed += image.size
        return deleted, reclaimed

    # save --------------------------------------------------------------------------------

    def save_records(self, *, tenant: str, refs: Sequence[str]) -> list[ImageRecord]:
        """What ``docker save`` writes for ``refs``: each image once, with the tags named."""
        chosen: dict[str, tuple[Image, list[str]]] = {}
        for ref in refs:
            for image, tag in self._save_targets(tenant, ref):
                tags = chosen.setdefault(image.id, (image, []))[1]
                if tag:
                    tags.append(tag)
        records = []
        for image, tags in chosen.values():
            sizes = tuple(self._content.size(d) for d in image.layers)
            records.append(
                ImageRecord(
                    config_digest=image.id,
                    config=self._config_bytes(image.id),
                    diff_ids=image.layers,
                    layer_sizes=sizes,
                    repo_tags=tuple(dict.fromkeys(tags)),
                )
            )
        return records

    def _save_targets(self, tenant: str, ref: str) -> list[tuple[Image, str]]:
        """What one ``docker save`` argument names: a repository without a tag means all
        of its tags (as in Docker); otherwise one image, with the tag if one was named."""
        if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
            try:
                repository = parse_reference(ref).repository
            except InvalidArgument:
                repository = ""
            if repository:
                tagged = [
                    (image, tag)
                    for image in self._store.list_images(tenant=tenant)
                    for tag in image.repo_tags
                    if tag.rsplit(":", 1)[0] == repository
                ]
                if tagged:
                    return tagged
        image = self.resolve(tenant=tenant, ref=ref)
        return [(image, self._tag_of(image, ref))]

    async def save(self, *, tenant: str, refs: Sequence[str]) -> AsyncIterator[bytes]:
        """Stream a ``docker save`` archive; the tar is produced in a thread into a pipe.
        A ``save`` event per image is recorded once the archive is complete."""
        records = self.save_records(tenant=tenant, refs=refs)
        saved = [self.resolve(tenant=tenant, ref=r.config_digest) for r in records]
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()

        def produce() -> None:
            with open(write_fd, "wb", buffering=1 << 16) as out:
                save_archive(out, records, self._content)

        producer = loop.run_in_executor(None, produce)
        reader = open(read_fd, "rb", buffering=0)  # noqa: SIM115
        try:
            while True:
                chunk = await loop.run_in_executor(None, reader.read, 1 << 20)
                if not chunk:
                    break
                yield chunk
            await producer
            for image in saved:
                self._event(image, "save")
        finally:
            reader.close()
            with contextlib.suppress(BrokenPipeError, OSError):
                await producer


def matches_labels(config: dict[str, Any], labels: Sequence[str]) -> bool:
    """Docker's ``label`` filter: every ``key`` or ``key=value`` must match."""
    have = (config.get("config") or {}).get("Labels") or {}
    for wanted in labels:
        key, sep, value = wanted.partition("=")
        if key not in have or (sep and have[key] != value):
            return False
    return True


def matches_reference_tag(tag: str, patterns: Sequence[str]) -> bool:
    """Whether one ``name:tag`` matches a ``reference`` filter pattern (globs over the name
    or the name and tag)."""
    repo = tag.rsplit(":", 1)[0]
    return any(fnmatch.fnmatchcase(tag, p) or fnmatch.fnmatchcase(repo, p) for p in patterns)


def matches_reference(image: Image, patterns: Sequence[str]) -> bool:
    """Docker's ``reference`` filter: some tag of the image matches a pattern."""
    return any(matches_reference_tag(tag, patterns) for tag in image.repo_tags)
