"""Registry manifests: media types, parsing, platform selection, and the manifest a push writes.

Only what pulling and pushing need: an image manifest (OCI or Docker schema 2) is a config
descriptor and layer descriptors; an index (OCI index or Docker manifest list) is a list of
manifest descriptors with platforms. Descriptors are checked on parse (digest syntax, size a
non-negative integer), since they come from the network and name files in the content store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import InvalidArgument, NotFound, Unavailable
from dockyard.images._model import OCI_INDEX, OCI_LAYER, OCI_MANIFEST, canonical_json
from dockyard.images.content import digest_hex

__all__ = [
    "ACCEPT",
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_LAYER_GZIP",
    "Descriptor",
    "ImageManifest",
    "layer_compression",
    "oci_manifest",
    "parse_image_manifest",
    "parse_index",
    "select_platform",
    "sniff_media_type",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))

_GZIP_LAYERS = frozenset({DOCKER_LAYER_GZIP, OCI_LAYER_GZIP})
_PLAIN_LAYERS = frozenset({DOCKER_LAYER, OCI_LAYER})


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor: what a manifest says about one blob or child manifest."""

    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()

    @property
    def platform_name(self) -> str:
        """``os/arch[/variant]`` as Docker prints it; ``unknown/unknown`` when absent."""
        plat = self.platform or {}
        parts = [str(plat.get("os") or "unknown"), str(plat.get("architecture") or "unknown")]
        if plat.get("variant"):
            parts.append(str(plat["variant"]))
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """An image manifest (OCI or Docker schema 2): its config and layers, bottom first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def sniff_media_type(content_type: str, doc: Any) -> str:
    """The media type of a fetched manifest: its ``mediaType`` field if set, else the
    response's Content-Type; an OCI document with neither is told apart by its keys."""
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    header = content_type.split(";", 1)[0].strip()
    if header in MANIFEST_TYPES | INDEX_TYPES:
        return header
    if isinstance(doc, dict) and "manifests" in doc:
        return OCI_INDEX
    if isinstance(doc, dict) and "config" in doc:
        return OCI_MANIFEST
    return header


def parse_image_manifest(doc: Any, media_type: str) -> ImageManifest:
    """The config and layers of an image manifest document; InvalidArgument if malformed."""
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise InvalidArgument("Docker image manifest version 2, schema 1 is not supported")
    if media_type not in MANIFEST_TYPES or not isinstance(doc, dict):
        raise InvalidArgument(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument("malformed manifest: schemaVersion is not 2")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("malformed manifest: no layers list")
    return ImageManifest(
        media_type=media_type,
        config=_descriptor(doc.get("config")),
        layers=tuple(_descriptor(layer) for layer in layers),
    )


def parse_index(doc: Any) -> tuple[Descriptor, ...]:
    """The manifests an index or manifest list names; InvalidArgument if malformed."""
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InvalidArgument("malformed manifest list: no manifests list")
    return tuple(_descriptor(entry) for entry in entries)


def select_platform(
    entries: Sequence[Descriptor], platform: tuple[str, str], *, variant: str = ""
) -> Descriptor:
    """The entry of an index for ``(os, architecture)``, as dockerd picks it.

    Entries for another OS or architecture never match; among the rest, one whose variant
    equals ``variant`` wins, then the first one (so ``linux/amd64`` matches whatever
    micro-architecture variant an entry names, and ``arm64`` entries with or without
    ``v8`` match alike). Entries that are not image manifests (attestations are
    ``unknown/unknown``) are skipped. Raises NotFound naming the platforms on offer.
    """
    want_os, want_arch = platform
    matches = [
        entry
        for entry in entries
        if entry.media_type in MANIFEST_TYPES
        and entry.platform is not None
        and entry.platform.get("os") == want_os
        and entry.platform.get("architecture") == want_arch
    ]
    for entry in matches:
        if variant and entry.platform is not None and entry.platform.get("variant") == variant:
            return entry
    if matches:
        return matches[0]
    offered = sorted({e.platform_name for e in entries if e.platform_name != "unknown/unknown"})
    raise NotFound(
        f"no matching manifest for {want_os}/{want_arch} in the manifest list entries"
        + (f" (available: {', '.join(offered)})" if offered else "")
    )


def layer_compression(layer: Descriptor) -> str:
    """``gzip`` or ``""`` (uncompressed) for a layer Dockyard can pull; InvalidArgument for
    zstd and unknown media types, Unavailable for foreign layers (they live elsewhere)."""
    if layer.media_type in _GZIP_LAYERS:
        return "gzip"
    if layer.media_type in _PLAIN_LAYERS:
        return ""
    if layer.media_type == DOCKER_FOREIGN_LAYER or ".nondistributable." in layer.media_type:
        raise Unavailable(
            f"layer {layer.digest} is a foreign layer ({layer.media_type}): "
            "it is not in the registry and Dockyard cannot fetch it from elsewhere"
        )
    if layer.media_type == OCI_LAYER_ZSTD:
        raise InvalidArgument(f"layer {layer.digest}: zstd-compressed layers are not supported")
    raise InvalidArgument(f"layer {layer.digest}: unsupported media type {layer.media_type!r}")


def oci_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    """The OCI image manifest a push writes, as canonical JSON (the same image always gives
    the same bytes, hence the same manifest digest)."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": config.media_type,
                "digest": config.digest,
                "size": config.size,
            },
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
    )


def _descriptor(value: Any) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidArgument("malformed manifest: a descriptor is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str):
        media_type = ""
    if not isinstance(digest, str):
        raise InvalidArgument("malformed manifest: a descriptor has no digest")
    digest_hex(digest)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"malformed manifest: descriptor {digest} has no valid size")
    platform = value.get("platform")
    urls = value.get("urls")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=platform if isinstance(platform, dict) else None,
        urls=tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
    )
