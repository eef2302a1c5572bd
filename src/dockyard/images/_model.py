"""The image record shared by the archive modules, and the format constants they use."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.core.reference import parse_reference

__all__ = [
    "HOST_ARCH",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "ImageRecord",
    "canonical_json",
    "familiar_tag",
    "full_name",
    "parse_json",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# This host's architecture in Go's (and so the image configs') spelling.
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image as loaded, imported or to be saved.

    ``config_digest`` (``sha256:<hex>``) is the digest of ``config`` (the exact config JSON
    bytes) and is the image id. ``diff_ids`` are the layers bottom first, each the digest of
    the uncompressed layer tar, stored in the content store under that digest;
    ``layer_sizes`` are their sizes in bytes. ``repo_tags`` are familiar references such as
    ``busybox:latest``.
    """

    config_digest: str
    config: bytes
    diff_ids: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    repo_tags: tuple[str, ...] = ()


def familiar_tag(text: str) -> str:
    """``text`` normalised to Docker's familiar ``repository:tag``; InvalidArgument if bad."""
    return parse_reference(text).tagged()


def full_name(tag: str) -> str:
    """The fully qualified name containerd records: ``docker.io/library/busybox:latest``."""
    ref = parse_reference(tag)
    return f"{ref.domain}/{ref.path}:{ref.tag}"


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON from an archive; InvalidArgument naming ``what`` if it is malformed."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"invalid JSON in {what}: {exc}") from exc
