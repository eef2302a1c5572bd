"""``docker commit``: a container's writable layer on top of its image becomes a new image.

The agent streams the writable layer as a Docker layer tar (ADR 0017);
:class:`LayerWriter` stores it in the content store as it arrives, :func:`commit_image`
writes the new image's config as moby's ``image.NewChildImage`` does, and
:func:`committed_config` computes the ``config`` in it as moby's commit does: the request's
config (or else the container's), ``--change`` instructions applied
(:mod:`dockyard.images.changes`, moby's ``BuildFromConfig``), then what it leaves unset
taken from the container's config (moby's ``merge`` in ``daemon/commit.go``).

Configs are Docker's JSON (capitalised keys, ``container.Config``): what the API layer
shows for a container, and what image configs carry.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.clock import format_rfc3339, now_ns
from dockyard.images._model import HOST_ARCH, ImageRecord, canonical_json
from dockyard.images.changes import apply_changes
from dockyard.images.content import Blob, ContentStore, sha256_digest

__all__ = ["CONFIG_FIELDS", "CommitInfo", "LayerWriter", "commit_image", "committed_config"]

# Docker's container.Config: the fields always present (with their zero values), then the
# ones Go omits when empty.
_ALWAYS: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}
_OMITTED_WHEN_EMPTY = (
    "ExposedPorts",
    "Healthcheck",
    "ArgsEscaped",
    "NetworkDisabled",
    "MacAddress",
    "StopSignal",
    "StopTimeout",
    "Shell",
)
CONFIG_FIELDS = frozenset(_ALWAYS) | frozenset(_OMITTED_WHEN_EMPTY)
"""Every field of Docker's ``container.Config``; others in a commit's body are ignored, as
Docker's decoder ignores them."""
_LONE_STRINGS = ("Cmd", "Entrypoint", "Shell")  # strslice: a lone string is one word
_HEALTH_DEFAULTS = ("Interval", "Timeout", "StartPeriod", "Retries")


def committed_config(
    container: Mapping[str, Any], overrides: Mapping[str, Any] | None, changes: Sequence[str]
) -> dict[str, Any]:
    """The ``config`` of the image committed from a container whose config is
    ``container``: ``overrides`` (the request body; empty or None means the container's
    config), ``changes`` applied, then merged with ``container``.

    Raises InvalidArgument for a change Docker does not accept (nothing is committed then).
    """
    base = _normalised(overrides) if overrides else _normalised(container)
    config = apply_changes(base, changes) if changes else base
    _merge(config, _normalised(container))
    return config


def _normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy with Docker's fields only, the always-present ones filled in."""
    out = {**copy.deepcopy(_ALWAYS)}
    for key, value in config.items():
        if key in CONFIG_FIELDS:
            out[key] = copy.deepcopy(value)
    for key in _LONE_STRINGS:
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def _merge(user: dict[str, Any], image: Mapping[str, Any]) -> None:
    """moby's ``merge(userConf, imageConf)``: fill what ``user`` leaves unset from
    ``image`` (here the container's own config)."""
    if not user.get("User"):
        user["User"] = image.get("User", "")
    ports = dict(user.get("ExposedPorts") or {})
    for port, value in (image.get("ExposedPorts") or {}).items():
        ports.setdefault(port, value)
    if ports:
        user["ExposedPorts"] = ports
    if not user.get("Env"):
        user["Env"] = image.get("Env")
    else:
        keys = {str(item).partition("=")[0] for item in user["Env"]}
        user["Env"] = [
            *user["Env"],
            *(e for e in image.get("Env") or [] if str(e).partition("=")[0] not in keys),
        ]
    labels = dict(user.get("Labels") or {})
    for key, value in (image.get("Labels") or {}).items():
        labels.setdefault(key, value)
    user["Labels"] = labels
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = image.get("Cmd")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = image.get("Entrypoint")
    _merge_healthcheck(user, image.get("Healthcheck"))
    if not user.get("WorkingDir"):
        user["WorkingDir"] = image.get("WorkingDir", "")
    if not user.get("Volumes"):
        user["Volumes"] = image.get("Volumes")
    else:
        user["Volumes"] = {**user["Volumes"], **(image.get("Volumes") or {})}
    if not user.get("StopSignal") and image.get("StopSignal"):
        user["StopSignal"] = image["StopSignal"]


def _merge_healthcheck(user: dict[str, Any], image: Any) -> None:
    if not isinstance(image, dict):
        return
    mine = user.get("Healthcheck")
    if not isinstance(mine, dict):
        user["Healthcheck"] = copy.deepcopy(image)
        return
    if not mine.get("Test"):
        mine["Test"] = image.get("Test")
    for key in _HEALTH_DEFAULTS:
        if not mine.get(key) and image.get(key):
            mine[key] = image[key]


class LayerWriter:
    """The new layer of a commit, written to the content store as it arrives.

    Tracks whether the tar has any entry: a tar made of zero blocks only has none (every
    header has a non-zero checksum). Such a layer is not kept, as Docker keeps no empty
    layer. Use as a context manager; leaving without :meth:`commit` discards the bytes.
    """

    def __init__(self, store: ContentStore) -> None:
        self._writer = store.writer()
        self.has_entries = False

    @property
    def size(self) -> int:
        return self._writer.size

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        if not self.has_entries and data.count(0) != len(data):
            self.has_entries = True

    def commit(self) -> Blob | None:
        """Store the layer under its digest; None (and nothing stored) if it is empty."""
        if not self.has_entries:
            self._writer.abort()
            return None
        return self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitInfo:
    """What the new image records about its origin (moby's ``ChildConfig``): the
    container's id and config (Docker's JSON), the author and comment asked for, and when
    (ns; now by default)."""

    container_id: str
    container_config: Mapping[str, Any]
    author: str = ""
    comment: str = ""
    created: int = field(default_factory=now_ns)


def commit_image(
    layer: LayerWriter,
    store: ContentStore,
    parent: Mapping[str, Any],
    *,
    config: Mapping[str, Any],
    info: CommitInfo,
) -> ImageRecord:
    """Store ``layer`` (if it has entries) and the config of the image made of ``parent``
    (the container's image config) plus that layer, and return the image's record.

    As moby's ``NewChildImage``: the parent's architecture, variant, OS and history, one
    more history entry (``created_by`` the container's command, ``empty_layer`` when the
    container changed nothing, and then no new layer), ``container`` and
    ``container_config`` naming the container. The record has no tags and its
    ``layer_sizes`` are every layer's, the parent's included. Raises NotFound if a parent
    layer is not in ``store``.
    """
    blob = layer.commit()
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if blob is not None:
        diff_ids.append(blob.digest)
    stamp = format_rfc3339(info.created)
    step: dict[str, Any] = {"created": stamp}
    command = " ".join(str(word) for word in info.container_config.get("Cmd") or [])
    for key, value in (
        ("author", info.author),
        ("created_by", command),
        ("comment", info.comment),
        ("empty_layer", blob is None),
    ):
        if value:
            step[key] = value
    document: dict[str, Any] = {
        "architecture": parent.get("architecture") or HOST_ARCH,
        "os": parent.get("os") or "linux",
        "created": stamp,
        "config": dict(config),
        "container": info.container_id,
        "container_config": dict(info.container_config),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [*(parent.get("history") or []), step],
    }
    for key in ("variant", "os.version", "os.features"):
        if parent.get(key):
            document[key] = parent[key]
    if info.author:
        document["author"] = info.author
    data = canonical_json(document)
    digest = sha256_digest(data)
    store.ingest([data], expected=digest)
    return ImageRecord(
        config_digest=digest,
        config=data,
        diff_ids=tuple(diff_ids),
        layer_sizes=tuple(store.size(diff_id) for diff_id in diff_ids),
    )
