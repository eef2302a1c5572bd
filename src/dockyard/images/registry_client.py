"""An async client of the OCI distribution API (registry API v2): pull, push, copy, list.

The daemon side of ``docker pull/push`` and the curated-image tooling use it on Dockyard's
registry (ADR 0021), straight on the registry's unix socket with tokens the controller
mints, or over TCP against any distribution registry.

- **pull** resolves a tag or digest to an image manifest (an OCI index or Docker manifest
  list is resolved to this host's platform), verifies the manifest digest (when pulled by
  digest) and the config digest, and stores the config and each layer *uncompressed* under
  its diff id in a :class:`~dockyard.images.content.ContentStore`: a layer whose diff id is
  already stored is not fetched; gzip layers are inflated on the fly; the blob digest and
  the diff id are both checked, and a layer that fails either leaves nothing behind.
- **push** uploads layers uncompressed (their digest is their diff id), mounting them from
  another repository when one is named and the registry agrees, then the config and an
  OCI image manifest.
- Both send Docker's JSON progress messages, the ones dockerd sends, to ``progress``; the
  caller adds what only it knows (``The push refers to repository [...]``, the final
  ``Status: ...``).

Errors are Dockyard's kinds, with Docker's wording where dockerd has one: NotFound
(``manifest for busybox:nope not found: manifest unknown: manifest unknown``; a pull the
registry refuses is ``pull access denied for x, repository does not exist or may require
'docker login': ...``), Unauthenticated and PermissionDenied (401 and 403 outside pulls),
InvalidArgument (digest mismatch, malformed manifest, zstd layer), FailedPrecondition
(an operation the registry does not support, such as deletes when disabled), RateLimited,
and Unavailable (the registry cannot be reached or failed; a foreign layer).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import re
import zlib
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Container,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from dockyard.core.errors import (
    DockyardError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from dockyard.core.reference import is_digest
from dockyard.images._manifests import (
    ACCEPT,
    INDEX_TYPES,
    Descriptor,
    layer_compression,
    oci_manifest,
    parse_image_manifest,
    parse_index,
    select_platform,
    sniff_media_type,
)
from dockyard.images._model import HOST_ARCH, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, ImageRecord
from dockyard.images._progress import Progress, ProgressMeter, layer_id, layer_update, message
from dockyard.images._registry_auth import Authenticator, TokenSource, parse_www_authenticate
from dockyard.images.content import BlobWriter, ContentStore, digest_hex, sha256_digest

__all__ = [
    "MAX_CONCURRENT_DOWNLOADS",
    "MAX_CONCURRENT_UPLOADS",
    "Progress",
    "PulledImage",
    "PushedImage",
    "RegistryClient",
    "TokenSource",
    "parse_www_authenticate",
]

# dockerd's defaults (--max-concurrent-downloads, --max-concurrent-uploads).
MAX_CONCURRENT_DOWNLOADS = 3
MAX_CONCURRENT_UPLOADS = 5
# Blobs move in chunks of this size between the socket, the disk and the hasher: big enough
# that the per-chunk costs (a thread hand-off, a write call) vanish against the bytes.
_CHUNK = 1 << 20
_WRITES_AHEAD = 8
# distribution refuses manifests over 4 MiB; a config is far smaller than this cap.
_MANIFEST_LIMIT = 4 << 20
_CONFIG_LIMIT = 64 << 20
_MAX_PAGES = 100_000
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_VARIANTS = {"arm64": "v8", "arm": "v7"}


@dataclass(frozen=True, slots=True)
class PulledImage:
    """What a pull stored: the image (``record``, without tags) and the descriptor of the
    manifest ``ref`` named (an index's when it named one): digest, media type, size."""

    record: ImageRecord
    manifest_digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class PushedImage:
    """The descriptor of the manifest a push wrote."""

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class _Job:
    """One pull's or push's shared state: where, what store, whom to tell, how many at once."""

    repo: str
    content: ContentStore
    emit: Progress
    slots: asyncio.Semaphore
    written: list[str] = field(default_factory=list)
    """Layers (diff ids) this pull committed to the content store."""


class _RegistryError(Exception):
    """A registry's error answer, before it becomes a Dockyard error."""

    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text

    def domain(self) -> DockyardError:
        if self.status == 404 or self.code in _NOT_FOUND_CODES:
            return NotFound(self.text)
        if self.status == 401 or self.code == "UNAUTHORIZED":
            return Unauthenticated(self.text)
        if self.status == 403 or self.code == "DENIED":
            return PermissionDenied(self.text)
        if self.status == 429 or self.code == "TOOMANYREQUESTS":
            return RateLimited(self.text)
        if self.status == 405 or self.code == "UNSUPPORTED":
            return FailedPrecondition(self.text)
        if 400 <= self.status < 500:
            return InvalidArgument(self.text)
        return Unavailable(self.text)


_NOT_FOUND_CODES = frozenset(
    {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"}
)
_STATUS_TEXT = {
    401: "unauthorized: authentication required",
    403: "denied: requested access to the resource is denied",
    404: "not found",
    405: "unsupported: The operation is unsupported.",
    429: "toomanyrequests: too many requests",
}


class RegistryClient:
    """A client of one registry at ``base_url`` (or on ``unix_socket``, when given, with
    ``base_url`` naming the host for the Host header).

    Authentication: with ``tokens``, every request carries a bearer token the source gives
    for the scopes it needs (``repository:ns/app:pull``, ``...:pull,push``,
    ``...:delete``, ``registry:catalog:*``); a source answering None sends none. Without
    it, the client follows the registry's 401 challenges: Basic with ``credentials``, or
    Bearer, fetching a token from the challenge's realm (with ``credentials`` as basic auth
    if given, anonymously if not), caching tokens per scope set and retrying once.

    ``session`` is borrowed and not closed; otherwise the client makes one on first use
    (one connection pool for all its requests) and :meth:`close` closes it. Pulls resolve
    indexes to ``platform`` (os, architecture), this host's by default.
    """

    def __init__(
        self,
        base_url: str = "http://registry",
        *,
        unix_socket: str | None = None,
        tokens: TokenSource | None = None,
        credentials: tuple[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        platform: tuple[str, str] = ("linux", HOST_ARCH),
    ) -> None:
        self._base = base_url.rstrip("/")
        self._unix_socket = unix_socket
        self._session = session
        self._owns_session = session is None
        self._realm: aiohttp.ClientSession | None = None
        self._platform = platform
        self._auth = Authenticator(
            tokens=tokens, credentials=credentials, realm_session=self._realm_session
        )

    # ----------------------------------------------------------------- lifecycle

    async def close(self) -> None:
        """Close the sessions the client made (not a borrowed one). Idempotent."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        if self._realm is not None:
            await self._realm.close()
            self._realm = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ping(self) -> None:
        """Check that a registry API v2 answers (200, or 401 asking for credentials).

        Raises Unavailable if nothing or something else answers.
        """
        try:
            async with self._http().get(self._url("/v2/")) as resp:
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from exc
        if status not in (200, 401):
            raise Unavailable(f"{self._where()} is not a registry (API v2 answered {status})")

    # ----------------------------------------------------------------- manifests

    async def manifest(self, repo: str, ref: str) -> tuple[str, str, bytes]:
        """``(media_type, digest, raw bytes)`` of the manifest ``ref`` (tag or digest) names.

        Accepts OCI manifests and indexes and Docker schema 2 manifests and lists; a
        manifest fetched by digest must hash to it (InvalidArgument). NotFound in dockerd's
        words (``manifest for x:tag not found: ...``) when there is none.
        """
        _check_name(repo)
        _check_ref(ref)
        with _translated(manifest_of=(repo, ref)):
            return await self._get_manifest(repo, ref, _pull(repo))

    async def put_manifest(self, repo: str, ref: str, media_type: str, raw: bytes) -> str:
        """Store ``raw`` as ``repo``'s manifest ``ref`` (a tag, or its own digest); return
        its digest. The registry checks that every blob and child manifest it names exists
        (InvalidArgument if not)."""
        _check_name(repo)
        _check_ref(ref)
        digest = sha256_digest(raw)
        if is_digest(ref) and ref != digest:
            raise InvalidArgument(f"manifest digest mismatch: {ref} named, content is {digest}")
        with _translated():
            async with self._call(
                "PUT",
                f"/v2/{repo}/manifests/{ref}",
                scopes=_push(repo),
                ok=(201,),
                headers={"Content-Type": media_type},
                body=lambda: raw,
            ):
                pass
        return digest

    async def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete the manifest ``digest`` (and so every tag on it). NotFound if absent;
        FailedPrecondition if the registry does not allow deletes."""
        _check_name(repo)
        digest_hex(digest)
        with _translated(manifest_of=(repo, digest)):
            async with self._call(
                "DELETE",
                f"/v2/{repo}/manifests/{digest}",
                scopes=(f"repository:{repo}:delete",),
                ok=(202, 200),
            ):
                pass

    # ----------------------------------------------------------------- blobs

    async def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether ``repo`` has the blob ``digest`` (HEAD)."""
        _check_name(repo)
        digest_hex(digest)
        with _translated():
            return await self._blob_exists(repo, digest, _push(repo))

    async def put_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` as a blob of ``repo`` (unless it is there) and return its digest.
        For small blobs (configs, test content); layers go up with :meth:`push`."""
        _check_name(repo)
        digest = sha256_digest(data)
        with _translated():
            if not await self._blob_exists(repo, digest, _push(repo)):
                await self._upload(repo, digest, len(data), lambda: data)
        return digest

    async def mount_blob(self, repo: str, digest: str, source_repo: str) -> bool:
        """Mount the blob ``digest`` of ``source_repo`` into ``repo``, server side; False
        if the registry refused (the blob is not there, or the caller may not read it)."""
        _check_name(repo)
        _check_name(source_repo)
        digest_hex(digest)
        with _translated():
            mounted, location = await self._mount(repo, digest, source_repo)
            if location is not None:
                await self._cancel_upload(repo, location)
        return mounted

    # ----------------------------------------------------------------- listings

    async def tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repo``, following the registry's pagination (``page_size`` asks
        for pages of that many). NotFound for an unknown repository."""
        _check_name(repo)
        with _translated(repository=repo):
            return await self._listing(f"/v2/{repo}/tags/list", "tags", _pull(repo), page_size)

    async def catalog(self, *, page_size: int | None = None) -> list[str]:
        """Every repository of the registry, following pagination."""
        with _translated():
            return await self._listing(
                "/v2/_catalog", "repositories", ("registry:catalog:*",), page_size
            )

    # ----------------------------------------------------------------- pull

    async def pull(
        self,
        repo: str,
        ref: str,
        content: ContentStore,
        *,
        progress: Progress | None = None,
        written: list[str] | None = None,
    ) -> PulledImage:
        """Store the image ``repo:ref`` (``ref`` a tag or digest) in ``content``.

        Messages, as dockerd sends them: ``Pulling from <repo>`` (id: the ref), then per
        layer (id: 12 hex digits of its digest) ``Already exists``, or ``Pulling fs
        layer``, ``Waiting`` (beyond three at a time), ``Downloading`` with counts,
        ``Verifying Checksum``, ``Download complete``, ``Pull complete`` (layers are
        inflated while they download, so there is no separate ``Extracting``), and
        finally ``Digest: sha256:...``.

        Raises NotFound (no such manifest or repository, no manifest for this platform,
        or access denied, in dockerd's words), InvalidArgument (a digest that does not
        match, a malformed manifest or config, a zstd layer), Unavailable. ``written``
        receives each layer's diff id as it is committed to ``content`` (also when the pull
        fails later: the caller decides what to keep; the client deletes nothing in a store
        others share).
        """
        _check_name(repo)
        _check_ref(ref)
        emit = progress or _ignore
        scopes = _pull(repo)
        with _translated(manifest_of=(repo, ref), pulling=True):
            media_type, digest, raw = await self._get_manifest(repo, ref, scopes)
            # After the manifest, as dockerd: a pull refused or of nothing says nothing.
            emit(message(f"Pulling from {repo}", ref))
            top_type, manifest_doc = media_type, _json(raw, "manifest")
            if media_type in INDEX_TYPES:
                entry = select_platform(
                    parse_index(manifest_doc),
                    self._platform,
                    variant=_VARIANTS.get(self._platform[1], ""),
                )
                media_type, _, child = await self._get_manifest(repo, entry.digest, scopes)
                if media_type in INDEX_TYPES:
                    raise InvalidArgument(f"manifest list {entry.digest} names another list")
                manifest_doc = _json(child, "manifest")
            manifest = parse_image_manifest(manifest_doc, media_type)
            config = await self._get_blob(repo, manifest.config, scopes, limit=_CONFIG_LIMIT)
            diff_ids = _diff_ids(config, len(manifest.layers))
            job = _Job(
                repo,
                content,
                emit,
                asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS),
                written if written is not None else [],
            )
            await self._pull_layers(job, manifest.layers, diff_ids)
            # The config last: a stored config means the image is complete.
            if not content.has(manifest.config.digest):
                content.ingest([config], expected=manifest.config.digest)
        emit(message(f"Digest: {digest}"))
        record = ImageRecord(
            config_digest=manifest.config.digest,
            config=config,
            diff_ids=diff_ids,
            layer_sizes=tuple(content.size(d) for d in diff_ids),
        )
        return PulledImage(
            record=record, manifest_digest=digest, media_type=top_type, size=len(raw)
        )

    async def _pull_layers(
        self, job: _Job, layers: Sequence[Descriptor], diff_ids: Sequence[str]
    ) -> None:
        emit = job.emit
        wanted: dict[str, Descriptor] = {}
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            wanted.setdefault(diff_id, layer)
        present = {diff_id for diff_id in wanted if job.content.has(diff_id)}
        for diff_id, layer in wanted.items():
            # Refuse what cannot be pulled before anything is downloaded.
            if diff_id not in present and not layer_compression(layer) and layer.digest != diff_id:
                raise InvalidArgument(
                    f"layer {layer.digest} is uncompressed but its diff id is {diff_id}"
                )
        missing: list[tuple[Descriptor, str]] = []
        for diff_id, layer in wanted.items():
            if diff_id in present:
                emit(layer_update("Already exists", layer_id(layer.digest)))
                continue
            emit(layer_update("Pulling fs layer", layer_id(layer.digest)))
            if len(missing) >= MAX_CONCURRENT_DOWNLOADS:
                emit(layer_update("Waiting", layer_id(layer.digest)))
            missing.append((layer, diff_id))
        await _all(self._pull_layer(job, layer, diff_id) for layer, diff_id in missing)

    async def _pull_layer(self, job: _Job, layer: Descriptor, diff_id: str) -> None:
        ident = layer_id(layer.digest)
        async with job.slots:
            meter = ProgressMeter(job.emit, "Downloading", ident, layer.size)
            sink = _LayerSink(job.content.writer(), layer, diff_id)
            try:
                path = f"/v2/{job.repo}/blobs/{layer.digest}"
                async with self._call("GET", path, scopes=_pull(job.repo)) as resp:
                    await _pump(resp.content, sink.write, meter, limit=layer.size)
                if meter.current != layer.size:
                    raise InvalidArgument(
                        f"layer {layer.digest}: got {meter.current} bytes, "
                        f"the manifest says {layer.size}"
                    )
                job.emit(layer_update("Verifying Checksum", ident))
                await asyncio.to_thread(sink.commit)
                job.written.append(diff_id)
            finally:
                sink.abort()
        job.emit(layer_update("Download complete", ident))
        job.emit(layer_update("Pull complete", ident))

    # ----------------------------------------------------------------- push

    async def push(
        self,
        repo: str,
        tag: str,
        record: ImageRecord,
        content: ContentStore,
        *,
        progress: Progress | None = None,
        mount_from: Sequence[str] = (),
    ) -> PushedImage:
        """Push ``record`` (its config and layers read from ``content``) as ``repo:tag``.

        Layers go up uncompressed (``application/vnd.oci.image.layer.v1.tar``, digest =
        diff id) at most five at a time; one the registry has is skipped, one that a
        repository of ``mount_from`` has is mounted from it; the rest are streamed from
        the content store. Then the config and an OCI image manifest, put on ``tag``.

        Messages, as dockerd sends them, per layer (id: 12 hex digits of its diff id, top
        layer first): ``Preparing``, ``Waiting``, then ``Layer already exists``, ``Mounted
        from <repo>``, or ``Pushing`` with counts and ``Pushed``; finally ``<tag>: digest:
        sha256:... size: N`` and the aux message ``{"Tag", "Digest", "Size"}``.
        """
        _check_name(repo)
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid tag {tag!r}")
        if sha256_digest(record.config) != record.config_digest:
            raise InvalidArgument(f"image {record.config_digest}: config does not match its digest")
        emit = progress or _ignore
        layers = {
            d: Descriptor(OCI_LAYER, d, s)
            for d, s in zip(record.diff_ids, record.layer_sizes, strict=True)
        }
        order = list(reversed(layers.values()))
        for layer in order:
            emit(layer_update("Preparing", layer_id(layer.digest)))
        for layer in order[MAX_CONCURRENT_UPLOADS:]:
            emit(layer_update("Waiting", layer_id(layer.digest)))
        job = _Job(repo, content, emit, asyncio.Semaphore(MAX_CONCURRENT_UPLOADS))
        with _translated():
            await _all(self._push_layer(job, layer, mount_from) for layer in order)
            config = Descriptor(OCI_CONFIG, record.config_digest, len(record.config))
            if not await self._blob_exists(repo, config.digest, _push(repo)):
                await self._upload(repo, config.digest, len(record.config), lambda: record.config)
        raw = oci_manifest(config, list(layers.values()))
        digest = await self.put_manifest(repo, tag, OCI_MANIFEST, raw)
        emit(message(f"{tag}: digest: {digest} size: {len(raw)}"))
        emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(raw)}})
        return PushedImage(digest=digest, size=len(raw), media_type=OCI_MANIFEST)

    async def _push_layer(self, job: _Job, layer: Descriptor, mount_from: Sequence[str]) -> None:
        repo, emit, ident = job.repo, job.emit, layer_id(layer.digest)
        async with job.slots:
            if await self._blob_exists(repo, layer.digest, _push(repo)):
                emit(layer_update("Layer already exists", ident))
                return
            location = None
            for source in mount_from:
                if source == repo or not _NAME.match(source):
                    continue
                if location is not None:
                    await self._cancel_upload(repo, location)
                mounted, location = await self._mount(repo, layer.digest, source)
                if mounted:
                    emit(layer_update(f"Mounted from {source}", ident))
                    return
            meter = ProgressMeter(emit, "Pushing", ident, layer.size)
            await self._upload(
                repo,
                layer.digest,
                layer.size,
                lambda: _read_blob(job.content, layer.digest, meter),
                location,
            )
        emit(layer_update("Pushed", ident))

    # ----------------------------------------------------------------- copy

    async def copy(self, src_repo: str, src_ref: str, dst_repo: str, dst_tag: str) -> str:
        """Copy ``src_repo:src_ref`` to ``dst_repo:dst_tag`` inside the registry and return
        the manifest digest (the same as the source's). Blobs are mounted, or streamed
        through the client when the registry will not mount; an index's manifests are
        copied by digest first. Foreign layers are not copied."""
        _check_name(dst_repo)
        if not _TAG.match(dst_tag):
            raise InvalidArgument(f"invalid tag {dst_tag!r}")
        media_type, _, raw = await self.manifest(src_repo, src_ref)
        with _translated():
            await self._copy_children(src_repo, dst_repo, media_type, raw, depth=0)
        return await self.put_manifest(dst_repo, dst_tag, media_type, raw)

    async def _copy_children(
        self, src: str, dst: str, media_type: str, raw: bytes, *, depth: int
    ) -> None:
        doc = _json(raw, "manifest")
        if media_type in INDEX_TYPES:
            if depth > 0:
                raise InvalidArgument("manifest list names another list")
            for entry in parse_index(doc):
                child_type, _, child = await self._get_manifest(src, entry.digest, _pull(src))
                await self._copy_children(src, dst, child_type, child, depth=depth + 1)
                await self.put_manifest(dst, entry.digest, child_type, child)
            return
        manifest = parse_image_manifest(doc, media_type)
        blobs = {d.digest: d for d in (manifest.config, *manifest.layers) if not d.urls}
        slots = asyncio.Semaphore(MAX_CONCURRENT_UPLOADS)
        await _all(self._copy_blob(src, dst, blob, slots) for blob in blobs.values())

    async def _copy_blob(
        self, src: str, dst: str, blob: Descriptor, slots: asyncio.Semaphore
    ) -> None:
        async with slots:
            if await self._blob_exists(dst, blob.digest, _push(dst)):
                return
            mounted, location = await self._mount(dst, blob.digest, src)
            if mounted:
                return
            async with self._call(
                "GET", f"/v2/{src}/blobs/{blob.digest}", scopes=_pull(src)
            ) as resp:
                stream = resp.content.iter_chunked(_CHUNK)
                await self._upload(dst, blob.digest, blob.size, lambda: stream, location)

    # ----------------------------------------------------------------- HTTP

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector: aiohttp.BaseConnector
            if self._unix_socket is not None:
                connector = aiohttp.UnixConnector(path=self._unix_socket, limit=32)
            else:
                connector = aiohttp.TCPConnector(limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=_TIMEOUT, auto_decompress=False
            )
        return self._session

    def _realm_session(self) -> aiohttp.ClientSession:
        if self._unix_socket is None:
            return self._http()
        if self._realm is None:
            self._realm = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._realm

    def _url(self, path: str) -> URL:
        """``path`` (``/v2/...``, query included, already encoded) on this registry. An
        absolute URL the registry sent (a Location) keeps only its path and query: the
        client always talks to its own base (which may be a unix socket)."""
        if "://" in path:
            path = URL(path, encoded=True).raw_path_qs
        return URL(self._base + path, encoded=True)

    def _where(self) -> str:
        return (
            f"the registry on {self._unix_socket}"
            if self._unix_socket
            else f"the registry at {self._base}"
        )

    def _unreachable(self, exc: BaseException) -> Unavailable:
        return Unavailable(f"cannot reach {self._where()}: {exc or type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def _call(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[str],
        ok: Container[int] = (200,),
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request, authenticated for ``scopes``; yields the response when its status
        is in ``ok`` and raises _RegistryError otherwise. After a 401 the challenge is
        taken in and the request is sent once more (``body`` is called again for it)."""
        url = self._url(path)
        for attempt in (1, 2):
            send = {"Accept": ACCEPT} if "/manifests/" in path else {}
            send.update(headers or {})
            send.update(await self._auth.headers(scopes))
            try:
                resp = await self._http().request(
                    method, url, headers=send, data=body() if body is not None else None
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise self._unreachable(exc) from exc
            try:
                if resp.status == 401 and attempt == 1:
                    challenge = resp.headers.get("WWW-Authenticate", "")
                    if await self._auth.challenged(challenge, scopes):
                        continue
                if resp.status not in ok:
                    raise await _error_of(resp)
                try:
                    yield resp
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise self._unreachable(exc) from exc
                return
            finally:
                resp.release()

    async def _get_manifest(
        self, repo: str, ref: str, scopes: Sequence[str]
    ) -> tuple[str, str, bytes]:
        async with self._call("GET", f"/v2/{repo}/manifests/{ref}", scopes=scopes) as resp:
            raw = await _read_limited(resp, _MANIFEST_LIMIT, "manifest")
            content_type = resp.headers.get("Content-Type", "")
        digest = sha256_digest(raw)
        if is_digest(ref) and ref != digest:
            raise InvalidArgument(f"manifest verification failed for digest {ref}: got {digest}")
        media_type = sniff_media_type(content_type, _json(raw, "manifest"))
        return media_type, digest, raw

    async def _get_blob(
        self, repo: str, blob: Descriptor, scopes: Sequence[str], *, limit: int
    ) -> bytes:
        if blob.size > limit:
            raise InvalidArgument(f"blob {blob.digest} is too big ({blob.size} bytes)")
        async with self._call("GET", f"/v2/{repo}/blobs/{blob.digest}", scopes=scopes) as resp:
            data = await _read_limited(resp, limit, f"blob {blob.digest}")
        if sha256_digest(data) != blob.digest or len(data) != blob.size:
            raise InvalidArgument(f"blob verification failed for digest {blob.digest}")
        return data

    async def _blob_exists(self, repo: str, digest: str, scopes: Sequence[str]) -> bool:
        async with self._call(
            "HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes, ok=(200, 404)
        ) as resp:
            return resp.status == 200

    async def _mount(self, repo: str, digest: str, source: str) -> tuple[bool, str | None]:
        """Ask for a cross-repository mount: (True, None) if mounted; (False, location of
        the upload session the registry opened instead, if it did) otherwise. A refusal
        for lack of access to ``source`` counts as not mounted."""
        scopes = (*_push(repo), f"repository:{source}:pull")
        try:
            async with self._call(
                "POST",
                f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}",
                scopes=scopes,
                ok=(201, 202),
            ) as resp:
                if resp.status == 201:
                    return True, None
                return False, resp.headers.get("Location")
        except _RegistryError as exc:
            if exc.status in (401, 403, 404):
                return False, None
            raise

    async def _cancel_upload(self, repo: str, location: str) -> None:
        # An abandoned session would linger until the registry's upload purge (a week).
        with contextlib.suppress(_RegistryError):
            async with self._call("DELETE", location, scopes=_push(repo), ok=(204, 200, 202, 404)):
                pass

    async def _upload(
        self,
        repo: str,
        digest: str,
        size: int,
        body: Callable[[], bytes | AsyncIterable[bytes]],
        location: str | None = None,
    ) -> None:
        """Upload a blob in one streamed PUT (to ``location`` if an upload session is
        already open, else to a new one)."""
        if location is None:
            async with self._call(
                "POST", f"/v2/{repo}/blobs/uploads/", scopes=_push(repo), ok=(202,)
            ) as resp:
                location = resp.headers.get("Location")
            if not location:
                raise Unavailable(f"{self._where()} opened an upload with no Location")
        target = f"{location}{'&' if '?' in location else '?'}digest={digest}"
        async with self._call(
            "PUT",
            target,
            scopes=_push(repo),
            ok=(201,),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
        ):
            pass

    async def _listing(
        self, path: str, key: str, scopes: Sequence[str], page_size: int | None
    ) -> list[str]:
        items: list[str] = []
        next_path: str | None = path + (f"?n={page_size}" if page_size else "")
        seen: set[str] = set()
        while next_path is not None and next_path not in seen and len(seen) < _MAX_PAGES:
            seen.add(next_path)
            async with self._call("GET", next_path, scopes=scopes) as resp:
                doc = _json(await _read_limited(resp, _MANIFEST_LIMIT, "listing"), "listing")
                link = _NEXT_LINK.search(resp.headers.get("Link", ""))
            page = doc.get(key) if isinstance(doc, dict) else None
            items.extend(str(item) for item in page or ())
            next_path = link.group(1) if link else None
        return items


# --------------------------------------------------------------------- helpers


async def _all(coros: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``coros`` concurrently; the first failure cancels the rest and is raised as
    itself (not wrapped in an ExceptionGroup, so callers see one Dockyard error)."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


class _LayerSink:
    """Takes a layer's blob chunk by chunk (in a worker thread): hashes it if its digest is
    not its diff id, inflates it if gzip, and writes the tar to ``writer``; :meth:`commit`
    checks both digests and stores the tar under its diff id."""

    def __init__(self, writer: BlobWriter, layer: Descriptor, diff_id: str) -> None:
        self._writer = writer
        self._layer = layer
        self._diff_id = diff_id
        gzip = layer_compression(layer) == "gzip"
        self._inflate = zlib.decompressobj(wbits=31) if gzip else None
        # An uncompressed layer is hashed once, by the writer: its digest is its diff id.
        self._hash = hashlib.sha256() if gzip else None

    def write(self, data: bytes) -> None:
        try:
            self._write(data)
        except OSError as exc:
            raise Unavailable(f"cannot store layer {self._layer.digest}: {exc.strerror}") from exc

    def _write(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        if self._inflate is None:
            self._writer.write(data)
            return
        try:
            while data:
                self._writer.write(self._inflate.decompress(data, 4 * _CHUNK))
                data = self._inflate.unconsumed_tail
                if self._inflate.eof:
                    # Another gzip member follows (pigz and multi-stream writers do this).
                    data = self._inflate.unused_data + data
                    if data:
                        self._inflate = zlib.decompressobj(wbits=31)
        except zlib.error as exc:
            raise InvalidArgument(f"layer {self._layer.digest}: corrupt gzip data: {exc}") from exc

    def commit(self) -> None:
        if self._inflate is not None and not self._inflate.eof:
            raise InvalidArgument(f"layer {self._layer.digest}: truncated gzip data")
        if self._hash is not None and "sha256:" + self._hash.hexdigest() != self._layer.digest:
            raise InvalidArgument(
                f"filesystem layer verification failed for digest {self._layer.digest}"
            )
        if self._hash is None and self._writer.digest != self._layer.digest:
            raise InvalidArgument(
                f"filesystem layer verification failed for digest {self._layer.digest}"
            )
        if self._writer.digest != self._diff_id:
            raise InvalidArgument(
                f"layer {self._layer.digest}: its content is {self._writer.digest}, "
                f"not the diff id {self._diff_id} the image config names"
            )
        self._writer.commit(self._diff_id)

    def abort(self) -> None:
        self._writer.abort()


async def _pump(
    source: aiohttp.StreamReader, sink: Callable[[bytes], None], meter: ProgressMeter, *, limit: int
) -> None:
    """Copy ``source`` into ``sink``, ``_CHUNK`` bytes at a time, in a worker thread of its
    own (so chunks reach ``sink`` in order) while the loop goes on reading the network; up
    to ``_WRITES_AHEAD`` chunks wait for the thread, so a disk that stalls for a moment
    does not stall the download."""
    buffer = bytearray()
    pending: collections.deque[asyncio.Future[None]] = collections.deque()
    loop = asyncio.get_running_loop()
    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="layer")
    try:
        async for data in source.iter_any():
            meter.add(len(data))
            if meter.current > limit:
                raise InvalidArgument(f"blob is larger than the {limit} bytes its manifest says")
            buffer += data
            if len(buffer) >= _CHUNK:
                if len(pending) >= _WRITES_AHEAD:
                    await pending.popleft()
                pending.append(loop.run_in_executor(worker, sink, bytes(buffer)))
                buffer.clear()
        if buffer:
            pending.append(loop.run_in_executor(worker, sink, bytes(buffer)))
        while pending:
            await pending.popleft()
    finally:
        if pending:
            # Let the thread finish before the caller discards what it writes to.
            await asyncio.wait(pending)
        worker.shutdown(wait=False)


async def _read_blob(
    content: ContentStore, digest: str, meter: ProgressMeter
) -> AsyncIterator[bytes]:
    """A stored blob in ``_CHUNK`` pieces, read in a worker thread one chunk ahead of the
    network, counted by ``meter``."""
    blob = await asyncio.to_thread(content.open, digest)
    ahead: asyncio.Future[bytes] | None = None
    try:
        ahead = asyncio.ensure_future(asyncio.to_thread(blob.read, _CHUNK))
        while chunk := await ahead:
            ahead = asyncio.ensure_future(asyncio.to_thread(blob.read, _CHUNK))
            meter.add(len(chunk))
            yield chunk
        ahead = None
    finally:
        if ahead is not None:
            await asyncio.wait([ahead])
        blob.close()


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    data = await resp.content.read(limit + 1)
    while len(data) <= limit and not resp.content.at_eof():
        more = await resp.content.read(limit + 1 - len(data))
        if not more:
            break
        data += more
    if len(data) > limit:
        raise InvalidArgument(f"{what} is larger than {limit} bytes")
    return data


async def _error_of(resp: aiohttp.ClientResponse) -> _RegistryError:
    """The registry error in ``resp``: its first ``errors`` entry, worded as Docker's
    errcode prints it (``manifest unknown: manifest unknown``)."""
    body = await resp.content.read(64 * 1024) if resp.method != "HEAD" else b""
    code, text = "", ""
    doc: Any = None
    with contextlib.suppress(ValueError):
        doc = json.loads(body) if body else None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "")
        detail = str(errors[0].get("message") or "")
        prefix = code.lower().replace("_", " ")
        text = f"{prefix}: {detail}" if prefix and detail else prefix or detail
    if not text:
        text = _STATUS_TEXT.get(resp.status) or f"unexpected status {resp.status} from the registry"
    return _RegistryError(resp.status, code, text)


@contextlib.contextmanager
def _translated(
    *,
    manifest_of: tuple[str, str] | None = None,
    repository: str | None = None,
    pulling: bool = False,
) -> Iterator[None]:
    """Turn registry errors into Dockyard errors, with dockerd's wording for a manifest
    (``manifest_of``: repo and ref) or a repository that is not there, and for a pull
    the registry refuses."""
    try:
        yield
    except _RegistryError as exc:
        subject = manifest_of[0] if manifest_of else repository
        if pulling and subject and exc.status in (401, 403):
            raise NotFound(
                f"pull access denied for {_familiar(subject)}, repository does not exist "
                f"or may require 'docker login': {exc.text}"
            ) from exc
        if subject and exc.code == "NAME_UNKNOWN":
            raise NotFound(f"repository {_familiar(subject)} not found: {exc.text}") from exc
        if manifest_of and (exc.code == "MANIFEST_UNKNOWN" or exc.status == 404):
            repo, ref = manifest_of
            name = f"{_familiar(repo)}{'@' if is_digest(ref) else ':'}{ref}"
            raise NotFound(f"manifest for {name} not found: {exc.text}") from exc
        raise exc.domain() from exc


def _familiar(repo: str) -> str:
    """``library/busybox`` as Docker prints it: ``busybox``."""
    name = repo.removeprefix("library/")
    return name if "/" not in name else repo


def _diff_ids(config: bytes, layer_count: int) -> tuple[str, ...]:
    doc = _json(config, "image config")
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidArgument("malformed image config: no rootfs.diff_ids")
    for diff_id in diff_ids:
        digest_hex(diff_id)
    if len(diff_ids) != layer_count:
        raise InvalidArgument(
            f"the image config names {len(diff_ids)} layers and the manifest {layer_count}"
        )
    return tuple(diff_ids)


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"malformed {what}: {exc}") from exc


def _check_name(repo: str) -> None:
    if not _NAME.match(repo) or len(repo) > 255:
        raise InvalidArgument(f"invalid repository name {repo!r}")


def _check_ref(ref: str) -> None:
    if is_digest(ref):
        digest_hex(ref)
    elif not _TAG.match(ref):
        raise InvalidArgument(f"invalid reference {ref!r}: not a tag or digest")


def _pull(repo: str) -> tuple[str]:
    return (f"repository:{repo}:pull",)


def _push(repo: str) -> tuple[str]:
    return (f"repository:{repo}:pull,push",)


def _ignore(msg: dict[str, Any]) -> None:
    del msg
