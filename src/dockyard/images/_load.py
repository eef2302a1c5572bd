"""Reading image archives: ``docker save`` output in the Docker, OCI or combined layout.

The outer archive is never extracted to disk. It is spooled (decompressed if need be) to an
unnamed temporary file, indexed by cleaned member name, and members are read directly.
Member names that are absolute or contain ``..``, and symlinks that point outside the
archive, make the whole archive invalid.

Every layer is decompressed while it is hashed into an uncommitted blob writer; digests are
checked against the image config's ``rootfs.diff_ids`` and against the blob digests the
format states. A layer the content store holds already is hashed all the same (and not
written): the store is shared by tenants, so naming a digest never stands in for content.
Blobs are committed to the content store only after every image in the archive has been
verified, so a rejected archive leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.core.errors import InvalidArgument, Unavailable
from dockyard.core.reference import parse_reference
from dockyard.images._model import HOST_ARCH, ImageRecord, parse_json
from dockyard.images._streams import (
    HashingReader,
    Readable,
    copy_stream,
    decompressed,
    detect_compression,
)
from dockyard.images.content import BlobWriter, ContentStore, digest_hex, sha256_digest

__all__ = ["load_archive", "parse_config"]

_MAX_JSON = 16 << 20
_MAX_DEPTH = 4
_MAX_LINKS = 16
_BLOB_PATH = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_LEGACY_CONFIG = re.compile(r"^([0-9a-f]{64})\.json$")


def load_archive(source: BinaryIO, store: ContentStore, *, spool_dir: Path) -> list[ImageRecord]:
    """Load every image in a ``docker save`` archive into ``store``.

    Accepts the Docker layout (``manifest.json``, with ``repositories`` as a fallback tag
    source), the OCI image layout (``index.json``, nested indexes, names from the
    ``io.containerd.image.name`` or ``org.opencontainers.image.ref.name`` annotations) and
    both at once (``manifest.json`` wins). The archive itself may be gzip, bzip2 or xz
    compressed. ``source`` may be a non-seekable stream; it is then spooled to an unnamed
    temporary file in ``spool_dir``, removed when done.

    Returns one record per distinct image (by config digest), in archive order.
    Raises InvalidArgument for a malformed archive or any digest mismatch (nothing is then
    stored) and Unavailable when the disk fails.
    """
    try:
        with _spooled(source, spool_dir) as seekable, _open_tar(seekable) as tar:
            archive = _Archive(tar)
            with _Loader(archive, store) as loader:
                if archive.has("manifest.json"):
                    images = loader.load_docker()
                elif archive.has("index.json"):
                    images = loader.load_oci()
                else:
                    raise InvalidArgument(
                        "invalid archive: neither manifest.json nor index.json found"
                    )
                loader.commit()
                return images
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"invalid archive: {exc}") from exc
    except OSError as exc:
        raise Unavailable(f"cannot load archive: {exc}") from exc


def parse_config(data: bytes) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Parse an image config; return it and its validated ``rootfs.diff_ids``."""
    config = parse_json(data, "image config")
    if not isinstance(config, dict):
        raise InvalidArgument("invalid image config: not a JSON object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument("invalid image config: rootfs.type must be 'layers'")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list):
        raise InvalidArgument("invalid image config: rootfs.diff_ids must be a list")
    for diff_id in diff_ids:
        digest_hex(diff_id)
    return config, tuple(diff_ids)


@contextlib.contextmanager
def _spooled(source: BinaryIO, spool_dir: Path) -> Iterator[BinaryIO]:
    """``source`` itself if it is a seekable uncompressed file, else a decompressed spool."""
    if _is_plain_seekable(source):
        yield source
        return
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir, prefix="load-") as spool:
        copy_stream(decompressed(HashingReader(source), what="archives"), spool.write)
        spool.seek(0)
        yield spool


def _is_plain_seekable(source: BinaryIO) -> bool:
    try:
        if not source.seekable():
            return False
        start = source.tell()
        head = source.read(6)
        source.seek(start)
    except (OSError, ValueError, AttributeError):
        return False
    return not detect_compression(head)


def _open_tar(fileobj: BinaryIO) -> tarfile.TarFile:
    return tarfile.open(fileobj=fileobj, mode="r:")


def _clean(name: str) -> str:
    """An archive member name without ``./`` and trailing ``/``; reject escapes."""
    if name.startswith("/"):
        raise InvalidArgument(f"invalid archive: absolute member name {name!r}")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"invalid archive: member name {name!r} contains '..'")
    return "/".join(parts)


class _Archive:
    """Members of an outer archive by cleaned name, with in-archive link resolution."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            name = _clean(member.name)
            if member.issym():
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(name), member.linkname)
                )
                if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                    raise InvalidArgument(
                        f"invalid archive: symlink {name!r} points outside the archive"
                    )
            elif member.islnk():
                _clean(member.linkname)
            self._members[name] = member

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        key = _clean(name)
        for _ in range(_MAX_LINKS):
            member = self._members.get(key)
            if member is None:
                return None
            if member.issym():
                key = posixpath.normpath(posixpath.join(posixpath.dirname(key), member.linkname))
            elif member.islnk():
                key = _clean(member.linkname)
            else:
                return member if member.isfile() else None
        raise InvalidArgument(f"invalid archive: too many levels of links at {name!r}")

    def has(self, name: str) -> bool:
        return self._resolve(name) is not None

    def member(self, name: str) -> tarfile.TarInfo:
        member = self._resolve(name)
        if member is None:
            raise InvalidArgument(f"invalid archive: {name} not found")
        return member

    def open(self, name: str) -> Readable:
        reader = self._tar.extractfile(self.member(name))
        if reader is None:  # pragma: no cover - member() only returns regular files
            raise InvalidArgument(f"invalid archive: {name} is not a file")
        return reader

    def read(self, name: str) -> bytes:
        if self.member(name).size > _MAX_JSON:
            raise InvalidArgument(f"invalid archive: {name} is too large")
        return self.open(name).read()


@dataclass(frozen=True, slots=True)
class _LayerRef:
    """Where a layer is in the archive and, when the format says, its blob digest and size."""

    name: str
    digest: str | None = None
    size: int | None = None


class _Loader:
    """Verifies images into uncommitted writers; :meth:`commit` stores them all."""

    def __init__(self, archive: _Archive, store: ContentStore) -> None:
        self._archive = archive
        self._store = store
        self._writers: list[BlobWriter] = []
        self._layer_sizes: dict[str, int] = {}
        self._configs: dict[str, bytes] = {}
        self._images: dict[str, ImageRecord] = {}

    def __enter__(self) -> _Loader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for writer in self._writers:
            writer.abort()

    def commit(self) -> None:
        for writer in self._writers:
            writer.commit()
        for digest, config in self._configs.items():
            if not self._store.has(digest):
                self._store.ingest([config], expected=digest)

    # Docker layout
    def load_docker(self) -> list[ImageRecord]:
        entries = parse_json(self._archive.read("manifest.json"), "manifest.json")
        if not isinstance(entries, list):
            raise InvalidArgument("invalid manifest.json: not a list")
        legacy = self._legacy_repositories()
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidArgument("invalid manifest.json: entry is not an object")
            config_name, layer_names = entry.get("Config"), entry.get("Layers") or []
            tags = entry.get("RepoTags") or []
            if not isinstance(config_name, str) or not isinstance(layer_names, list):
                raise InvalidArgument("invalid manifest.json: bad Config or Layers")
            if not isinstance(tags, list):
                raise InvalidArgument("invalid manifest.json: RepoTags is not a list")
            if not all(isinstance(n, str) for n in [*layer_names, *tags]):
                raise InvalidArgument("invalid manifest.json: Layers and RepoTags are strings")
            if not tags and layer_names:
                tags = legacy.get(_legacy_id(layer_names[-1]), [])
            self._image(
                config=self._archive.read(config_name),
                expected=_path_digest(config_name),
                layers=[_LayerRef(name, _path_digest(name)) for name in layer_names],
                tags=tags,
            )
        return list(self._images.values())

    def _legacy_repositories(self) -> dict[str, list[str]]:
        """``repositories`` as top-layer id -> tags (only used for entries without tags)."""
        if not self._archive.has("repositories"):
            return {}
        data = parse_json(self._archive.read("repositories"), "repositories")
        by_id: dict[str, list[str]] = {}
        if isinstance(data, dict):
            for repo, tags in data.items():
                if isinstance(tags, dict):
                    for tag, layer_id in tags.items():
                        by_id.setdefault(str(layer_id), []).append(f"{repo}:{tag}")
        return by_id

    # OCI layout
    def load_oci(self) -> list[ImageRecord]:
        index = parse_json(self._archive.read("index.json"), "index.json")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise InvalidArgument("invalid index.json: no manifests list")
        for descriptor in index["manifests"]:
            self._walk(descriptor, _annotation_tags(descriptor), depth=0)
        return list(self._images.values())

    def _walk(self, descriptor: Any, tags: list[str], *, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidArgument("invalid archive: image indexes nested too deeply")
        digest, size = _descriptor(descriptor)
        document = parse_json(self._blob(digest, size), f"blob {digest}")
        if not isinstance(document, dict):
            raise InvalidArgument(f"invalid archive: blob {digest} is not a JSON object")
        if isinstance(document.get("manifests"), list):
            child = self._pick_platform(document["manifests"])
            if child is None:
                raise InvalidArgument(f"invalid archive: no usable manifest in index {digest}")
            self._walk(child, tags, depth=depth + 1)
            return
        config_descriptor, layers = document.get("config"), document.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument(f"invalid archive: {digest} is neither manifest nor index")
        config_digest, config_size = _descriptor(config_descriptor)
        refs = []
        for layer in layers:
            layer_digest, layer_size = _descriptor(layer)
            if str(layer.get("mediaType", "")).endswith("zstd"):
                raise InvalidArgument("zstd-compressed layers are not supported")
            refs.append(_LayerRef(_blob_name(layer_digest), layer_digest, layer_size))
        self._image(
            config=self._blob(config_digest, config_size),
            expected=config_digest,
            layers=refs,
            tags=tags,
        )

    def _pick_platform(self, children: list[Any]) -> Any:
        usable = []
        for child in children:
            if not isinstance(child, dict):
                continue
            annotations, platform = (
                _object(child.get("annotations")),
                _object(child.get("platform")),
            )
            if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
                continue
            if platform.get("os") == "unknown":
                continue
            digest, _ = _descriptor(child)
            if self._archive.has(_blob_name(digest)):
                usable.append(child)
        for child in usable:
            platform = _object(child.get("platform"))
            if platform.get("os", "linux") == "linux" and (
                platform.get("architecture", HOST_ARCH) == HOST_ARCH
            ):
                return child
        return usable[0] if usable else None

    def _blob(self, digest: str, size: int | None) -> bytes:
        name = _blob_name(digest)
        member = self._archive.member(name)
        if size is not None and member.size != size:
            raise InvalidArgument(f"invalid archive: {name} has size {member.size}, not {size}")
        data = self._archive.read(name)
        if sha256_digest(data) != digest:
            raise InvalidArgument(f"invalid archive: {name} does not match its digest")
        return data

    # common
    def _image(
        self, *, config: bytes, expected: str | None, layers: list[_LayerRef], tags: list[str]
    ) -> None:
        config_digest = sha256_digest(config)
        if expected is not None and expected != config_digest:
            raise InvalidArgument(f"invalid archive: image config does not match {expected}")
        _, diff_ids = parse_config(config)
        if len(diff_ids) != len(layers):
            raise InvalidArgument(
                f"invalid archive: image {config_digest} lists {len(diff_ids)} diff ids "
                f"but {len(layers)} layers"
            )
        sizes = tuple(
            self._layer(diff_id, ref) for diff_id, ref in zip(diff_ids, layers, strict=True)
        )
        repo_tags = [tag for tag in (_familiar(t) for t in tags) if tag]
        previous = self._images.get(config_digest)
        if previous is not None:
            repo_tags = [
                *previous.repo_tags,
                *(t for t in repo_tags if t not in previous.repo_tags),
            ]
        self._configs[config_digest] = config
        self._images[config_digest] = ImageRecord(
            config_digest=config_digest,
            config=config,
            diff_ids=diff_ids,
            layer_sizes=sizes,
            repo_tags=tuple(dict.fromkeys(repo_tags)),
        )

    def _layer(self, diff_id: str, ref: _LayerRef) -> int:
        if diff_id in self._layer_sizes:
            return self._layer_sizes[diff_id]
        member = self._archive.member(ref.name)
        if ref.size is not None and member.size != ref.size:
            raise InvalidArgument(f"invalid archive: layer {ref.name} has the wrong size")
        raw = HashingReader(self._archive.open(ref.name))
        if self._store.has(diff_id):
            # The store is shared by every tenant, and a digest is not a key: an archive
            # that names a layer someone else loaded must carry that layer's content too,
            # or anyone who learnt a digest could run with another tenant's files (and
            # learn which layers exist). Hashed, not stored: the blob is there already.
            content = hashlib.sha256()
            size = copy_stream(decompressed(raw, what="layers"), content.update)
            digest = "sha256:" + content.hexdigest()
        else:
            writer = self._store.writer()
            self._writers.append(writer)
            copy_stream(decompressed(raw, what="layers"), writer.write)
            digest, size = writer.digest, writer.size
        raw.drain()
        if ref.digest is not None and raw.digest != ref.digest:
            raise InvalidArgument(f"invalid archive: layer {ref.name} does not match its digest")
        if digest != diff_id:
            raise InvalidArgument(
                f"invalid archive: layer {ref.name} has content {digest}, "
                f"but the image config says {diff_id}"
            )
        self._layer_sizes[diff_id] = size
        return size


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _descriptor(value: Any) -> tuple[str, int | None]:
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str):
        raise InvalidArgument("invalid archive: malformed descriptor")
    digest_hex(value["digest"])
    size = value.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidArgument("invalid archive: malformed descriptor size")
    return value["digest"], size


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _path_digest(name: str) -> str | None:
    """The digest a member name states (``blobs/sha256/<hex>``, ``<hex>.json``), if any."""
    clean = _clean(name)
    match = _BLOB_PATH.match(clean) or _LEGACY_CONFIG.match(clean)
    return f"sha256:{match.group(1)}" if match else None


def _legacy_id(layer_name: str) -> str:
    """The id ``repositories`` uses for a top layer: its v1 directory or blob hex."""
    clean = _clean(layer_name)
    match = _BLOB_PATH.match(clean)
    if match:
        return match.group(1)
    return clean.split("/", 1)[0]


def _annotation_tags(descriptor: Any) -> list[str]:
    annotations = descriptor.get("annotations") if isinstance(descriptor, dict) else None
    if not isinstance(annotations, dict):
        return []
    name = annotations.get("io.containerd.image.name")
    if isinstance(name, str) and name:
        return [name]
    ref_name = annotations.get("org.opencontainers.image.ref.name")
    # A bare ref.name is only a tag ("latest") and names no repository; skip it.
    if isinstance(ref_name, str) and ("/" in ref_name or ":" in ref_name):
        return [ref_name]
    return []


def _familiar(text: str) -> str:
    """``repository:tag`` in familiar form; "" for a digest-only name."""
    ref = parse_reference(text, default_tag=False)
    if not ref.tag:
        return "" if ref.digest else f"{ref.repository}:latest"
    return ref.tagged()
