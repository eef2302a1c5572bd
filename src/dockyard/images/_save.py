"""Writing image archives in the combined layout ``docker save`` produces since Docker 25.

::

    blobs/sha256/<hex>   configs, uncompressed layers, OCI manifests (each written once)
    oci-layout           {"imageLayoutVersion": "1.0.0"}
    index.json           one descriptor per tag (or one unnamed per untagged image)
    manifest.json        Docker's list of {Config, RepoTags, Layers}
    repositories         legacy {repository: {tag: top layer hex}}

The tar is written in stream mode, so ``out`` may be a pipe or a socket: every member's
size is known before it is written (blob sizes from the store, JSON built in memory).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from typing import Any, BinaryIO

from dockyard.core.errors import InvalidArgument
from dockyard.core.reference import parse_reference
from dockyard.images._model import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    ImageRecord,
    canonical_json,
    familiar_tag,
    full_name,
    parse_json,
)
from dockyard.images.content import ContentStore, digest_hex, sha256_digest

__all__ = ["save_archive"]

_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def save_archive(out: BinaryIO, images: Sequence[ImageRecord], store: ContentStore) -> None:
    """Write ``images`` to ``out`` as one uncompressed tar stream that ``docker load`` reads.

    Every blob is checked before the first byte is written: a missing layer raises NotFound
    and a config that does not match its digest raises InvalidArgument, with nothing
    written. ``out`` is not closed.
    """
    blobs: dict[str, bytes | None] = {}  # digest -> in-memory bytes, or None: from the store
    sizes: dict[str, int] = {}
    index: list[dict[str, Any]] = []
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        if sha256_digest(image.config) != image.config_digest:
            raise InvalidArgument(f"image config does not match {image.config_digest}")
        tags = list(dict.fromkeys(familiar_tag(tag) for tag in image.repo_tags))
        layers = []
        for diff_id in image.diff_ids:
            sizes[diff_id] = store.size(diff_id)
            blobs.setdefault(diff_id, None)
            layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": sizes[diff_id]})
        blobs[image.config_digest] = image.config
        config_descriptor = {
            "mediaType": OCI_CONFIG,
            "digest": image.config_digest,
            "size": len(image.config),
        }
        manifest_bytes = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor,
                "layers": layers,
            }
        )
        manifest_digest = sha256_digest(manifest_bytes)
        blobs[manifest_digest] = manifest_bytes
        descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            **_platform(image.config),
        }
        for tag in tags:
            ref = parse_reference(tag)
            index.append(
                {
                    **descriptor,
                    "annotations": {
                        "io.containerd.image.name": full_name(tag),
                        "org.opencontainers.image.ref.name": ref.tag,
                    },
                }
            )
            if image.diff_ids:
                top = digest_hex(image.diff_ids[-1])
                repositories.setdefault(ref.repository, {})[ref.tag] = top
        if not tags:
            index.append(descriptor)
        manifest.append(
            {
                "Config": _blob_name(image.config_digest),
                "RepoTags": tags or None,
                "Layers": [_blob_name(diff_id) for diff_id in image.diff_ids],
            }
        )

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for digest, data in blobs.items():
            if data is not None:
                _add_bytes(tar, _blob_name(digest), data)
                continue
            with store.open(digest) as blob:
                tar.addfile(_info(_blob_name(digest), sizes[digest]), blob)
        _add_bytes(tar, "oci-layout", _LAYOUT)
        _add_bytes(
            tar,
            "index.json",
            canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}),
        )
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode() + b"\n")
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode() + b"\n")


def _platform(config: bytes) -> dict[str, Any]:
    parsed = parse_json(config, "image config")
    if not isinstance(parsed, dict):
        return {}
    platform = {k: parsed[k] for k in ("architecture", "os") if isinstance(parsed.get(k), str)}
    return {"platform": platform} if len(platform) == 2 else {}


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))
