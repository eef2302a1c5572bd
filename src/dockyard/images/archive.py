"""Docker image archives in and out: ``docker load``, ``docker save`` and ``docker import``.

- :func:`load_archive` reads what any ``docker save`` writes (Docker layout, OCI layout, or
  both as Docker 25+ writes them) and stores configs and uncompressed layers, verified, in a
  :class:`~dockyard.images.content.ContentStore`.
- :func:`save_archive` writes the combined layout of Docker 25+ to a stream.
- :func:`import_rootfs` turns a filesystem tarball into a one-layer image.
- :func:`image_config` reads a stored config back.

Layers are always stored uncompressed under their diff id, so an image's layers are named
by ``rootfs.diff_ids`` of its config and a config's digest is the image id.
"""

from __future__ import annotations

from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.images._load import load_archive
from dockyard.images._model import ImageRecord, parse_json
from dockyard.images._rootfs import import_rootfs
from dockyard.images._save import save_archive
from dockyard.images.content import ContentStore

__all__ = ["ImageRecord", "image_config", "import_rootfs", "load_archive", "save_archive"]


def image_config(store: ContentStore, config_digest: str) -> dict[str, Any]:
    """The parsed image config stored under ``config_digest`` (the image id).

    Raises NotFound if it is not stored and InvalidArgument if it is not a JSON object.
    """
    config = parse_json(store.read(config_digest), f"image config {config_digest}")
    if not isinstance(config, dict):
        raise InvalidArgument(f"image config {config_digest} is not a JSON object")
    return config
