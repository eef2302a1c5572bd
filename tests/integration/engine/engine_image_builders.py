"""Builders and helpers for the engine image tests (docker-py and docker CLI).

Everything is built here with ``tarfile``, member by member, the way ``docker save`` and
``docker export`` lay archives out, so Dockyard is tested against the formats rather than
against its own writer. Images run: their bottom layer is a minimal root filesystem made
of the host's static ``/bin/busybox`` and one symlink per applet.

Every image a test builds carries a marker file with a fresh nonce, so no two tests ever
build the same image id and tests do not depend on one another.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

BUSYBOX = Path("/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MTIME = 978_307_200  # 2001-01-01T00:00:00Z
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_ROOT_DIRS = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sys": 0o555,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "var": 0o755,
}


def sha(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hexof(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def nonce() -> str:
    return secrets.token_hex(4)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# Layers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One raw archive member; ``type`` is a tarfile type constant."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o644


def tar_of(members: Iterable[Member]) -> bytes:
    """An uncompressed tar of ``members`` in the given order, names taken verbatim (so a
    test can write ``../escape``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.mode = member.mode
            info.mtime = MTIME
            info.uname = info.gname = "root"
            if member.type == tarfile.REGTYPE:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                info.linkname = member.linkname
                tar.addfile(info)
    return out.getvalue()


@functools.cache
def busybox_rootfs() -> bytes:
    """A runnable root filesystem: ``/bin/busybox``, a symlink per applet, ``/etc/passwd``."""
    listing = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    members = [Member(name, type=tarfile.DIRTYPE, mode=mode) for name, mode in _ROOT_DIRS.items()]
    members.append(Member("bin/busybox", BUSYBOX.read_bytes(), mode=0o755))
    members += [
        Member(f"bin/{applet}", type=tarfile.SYMTYPE, linkname="busybox", mode=0o777)
        for applet in sorted(set(listing) - {"busybox"})
        if "/" not in applet
    ]
    members.append(Member("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"))
    members.append(Member("etc/group", b"root:x:0:\n"))
    return tar_of(members)


def files_layer(files: Mapping[str, bytes]) -> bytes:
    """A layer holding ``files`` (path -> content), with their parent directories."""
    dirs: dict[str, None] = {}
    for path in sorted(files):
        parts = path.split("/")[:-1]
        for end in range(1, len(parts) + 1):
            dirs["/".join(parts[:end])] = None
    members = [Member(d, type=tarfile.DIRTYPE, mode=0o755) for d in dirs]
    members += [Member(path, data) for path, data in sorted(files.items())]
    return tar_of(members)


# Images -----------------------------------------------------------------------------------


@dataclass
class BuiltImage:
    """An image to put in an archive: uncompressed layers (bottom first), config, tags."""

    layers: list[bytes] = field(repr=False)
    config: bytes = field(repr=False)
    tags: list[str] = field(default_factory=list)
    marker: str = ""

    @property
    def id(self) -> str:
        return sha(self.config)

    @property
    def diff_ids(self) -> list[str]:
        return [sha(layer) for layer in self.layers]


def rfc3339(day: int) -> str:
    """``2001-01-<day>T00:00:00Z``."""
    return f"2001-01-{day:02d}T00:00:00Z"


def image_config(
    layers: Sequence[bytes],
    *,
    cmd: Sequence[str] | None = ("sh",),
    env: Sequence[str] = (PATH_ENV,),
    labels: Mapping[str, str] | None = None,
    created: str = rfc3339(1),
    history: Sequence[Mapping[str, Any]] | None = None,
) -> bytes:
    """An image config for ``layers``; ``history`` defaults to one entry per layer."""
    if history is None:
        history = [
            {"created": created, "created_by": f"/bin/sh -c #(nop) ADD layer {i}"}
            for i in range(len(layers))
        ]
    config: dict[str, Any] = {"Env": list(env), "Cmd": list(cmd) if cmd else None}
    if labels:
        config["Labels"] = dict(labels)
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "author": "dockyard engine tests",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
            "history": list(history),
        },
        indent=2,
    ).encode()


def runnable_image(
    *,
    tags: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    created: str = rfc3339(1),
    cmd: Sequence[str] = ("cat", "/etc/marker"),
    history: Sequence[Mapping[str, Any]] | None = None,
) -> BuiltImage:
    """A two-layer image: the busybox root filesystem, then ``/etc/marker`` holding a fresh
    nonce (so the id is unique). Its default command prints the marker."""
    marker = f"marker-{nonce()}"
    layers = [busybox_rootfs(), files_layer({"etc/marker": marker.encode() + b"\n"})]
    config = image_config(layers, cmd=cmd, labels=labels, created=created, history=history)
    return BuiltImage(layers=layers, config=config, tags=list(tags), marker=marker)


# Archives ---------------------------------------------------------------------------------


def docker_archive(
    images: Sequence[BuiltImage],
    *,
    compress_layers: bool = False,
    legacy_layout: bool = True,
) -> bytes:
    """A ``docker save`` archive with ``manifest.json``.

    ``legacy_layout``: Docker < 25's ``<id>/layer.tar`` + ``<config hex>.json`` (with a
    ``repositories`` file); otherwise Docker 25's ``blobs/sha256/<hex>`` paths.
    ``compress_layers`` gzips every layer blob (``docker load`` accepts that).
    """
    members: dict[str, Member] = {}
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        layer_paths = []
        for layer in image.layers:
            blob = gz(layer) if compress_layers else layer
            if legacy_layout:
                layer_dir = hexof(b"v1:" + blob)
                members[layer_dir] = Member(layer_dir, type=tarfile.DIRTYPE, mode=0o755)
                members[f"{layer_dir}/VERSION"] = Member(f"{layer_dir}/VERSION", b"1.0")
                members[f"{layer_dir}/json"] = Member(
                    f"{layer_dir}/json", json.dumps({"id": layer_dir}).encode()
                )
                path = f"{layer_dir}/layer.tar"
            else:
                path = f"blobs/sha256/{hexof(blob)}"
            members[path] = Member(path, blob)
            layer_paths.append(path)
        config_path = (
            f"{hexof(image.config)}.json"
            if legacy_layout
            else f"blobs/sha256/{hexof(image.config)}"
        )
        members[config_path] = Member(config_path, image.config)
        manifest.append(
            {"Config": config_path, "RepoTags": image.tags or None, "Layers": layer_paths}
        )
        for tag in image.tags:
            repo, _, name = tag.rpartition(":")
            repositories.setdefault(repo, {})[name] = layer_paths[-1].split("/")[0]
    extra = [Member("manifest.json", json.dumps(manifest).encode())]
    if legacy_layout and repositories:
        extra.append(Member("repositories", json.dumps(repositories).encode()))
    return tar_of([*members.values(), *extra])


def full_name(tag: str) -> str:
    """``docker.io/library/x:t`` for ``x:t`` (the containerd image name annotation)."""
    repo = tag.rpartition(":")[0]
    first = repo.split("/")[0]
    if "/" in repo and ("." in first or ":" in first or first == "localhost"):
        return tag
    return f"docker.io/{tag}" if "/" in repo else f"docker.io/library/{tag}"


def _oci_manifest(image: BuiltImage, blobs: Sequence[bytes], media_type: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": image.id, "size": len(image.config)},
            "layers": [
                {"mediaType": media_type, "digest": sha(blob), "size": len(blob)} for blob in blobs
            ],
        }
    ).encode()


def oci_archive(
    images: Sequence[BuiltImage],
    *,
    compress_layers: bool = True,
    nested: Sequence[bool] = (),
) -> bytes:
    """An OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``).

    Each tag is one ``index.json`` descriptor named by ``io.containerd.image.name`` (full
    name) and ``org.opencontainers.image.ref.name`` (the tag), as containerd writes them.
    ``nested[i]`` wraps image ``i``'s manifest in a multi-platform index whose arm64 entry
    is not in the archive, as ``docker save`` with the containerd store does.
    """
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict[str, Any]:
        blobs[hexof(data)] = data
        return {"digest": sha(data), "size": len(data)}

    entries: list[dict[str, Any]] = []
    for index, image in enumerate(images):
        layer_blobs = [gz(layer) if compress_layers else layer for layer in image.layers]
        for blob in layer_blobs:
            put(blob)
        put(image.config)
        manifest = _oci_manifest(
            image, layer_blobs, OCI_LAYER_GZIP if compress_layers else OCI_LAYER
        )
        descriptor: dict[str, Any] = {"mediaType": OCI_MANIFEST, **put(manifest)}
        if index < len(nested) and nested[index]:
            missing = "sha256:" + hexof(b"arm64 manifest not in this archive")
            platform_index = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [
                        {**descriptor, "platform": {"os": "linux", "architecture": "amd64"}},
                        {
                            "mediaType": OCI_MANIFEST,
                            "digest": missing,
                            "size": 1234,
                            "platform": {"os": "linux", "architecture": "arm64"},
                        },
                    ],
                }
            ).encode()
            descriptor = {"mediaType": OCI_INDEX, **put(platform_index)}
        for tag in image.tags:
            annotations = {
                "io.containerd.image.name": full_name(tag),
                "org.opencontainers.image.ref.name": tag.rpartition(":")[2],
            }
            entries.append({**descriptor, "annotations": annotations})
        if not image.tags:
            entries.append(descriptor)
    members = [Member("blobs", type=tarfile.DIRTYPE, mode=0o755)]
    members.append(Member("blobs/sha256", type=tarfile.DIRTYPE, mode=0o755))
    members += [Member(f"blobs/sha256/{h}", data) for h, data in blobs.items()]
    members.append(Member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    index_json = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    members.append(Member("index.json", json.dumps(index_json).encode()))
    return tar_of(members)


def read_archive(data: bytes) -> tuple[list[str], dict[str, bytes]]:
    """Member names in archive order (regular files only) and their contents."""
    names: list[str] = []
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            if member.isfile():
                name = member.name.removeprefix("./")
                names.append(name)
                reader = tar.extractfile(member)
                assert reader is not None
                contents[name] = reader.read()
    return names, contents


# Cloud helpers ------------------------------------------------------------------------------


class Tidy:
    """What a test made, removed afterwards whatever happened: containers first, then the
    tags it added to shared images, then images it created (by id)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.containers: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []

    def image(self, image_id: str) -> str:
        self.images.append(image_id)
        return image_id

    def built(self, *images: BuiltImage) -> None:
        for image in images:
            self.images.append(image.id)

    def tag(self, tag: str) -> str:
        self.tags.append(tag)
        return tag

    def close(self) -> None:
        api = self.client.api
        for ref in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(ref, force=True, v=True)
        protected = set()
        with contextlib.suppress(docker.errors.APIError):
            protected.add(api.inspect_image("busybox:latest")["Id"])
        for tag in self.tags:
            with contextlib.suppress(docker.errors.APIError):
                if api.inspect_image(tag)["Id"] in protected:
                    api.remove_image(tag)  # a tag on a shared image: untag only
                else:
                    api.remove_image(tag, force=True)
        for image_id in reversed(self.images):
            if image_id in protected:
                continue
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_image(image_id, force=True)


def load(api: docker.APIClient, data: bytes) -> list[str]:
    """POST /images/load; the ``stream`` lines of the answer (raises APIError on 4xx/5xx)."""
    response = api._post(api._url("/images/load"), data=data, params={"quiet": "0"})
    api._raise_for_status(response)
    lines = []
    for line in response.text.splitlines():
        if line.strip():
            message = json.loads(line)
            assert "error" not in message and "errorDetail" not in message, message
            lines.append(message.get("stream", "").strip())
    return [line for line in lines if line]


def save(api: docker.APIClient, names: Sequence[str]) -> bytes:
    """GET /images/get?names=...: the ``docker save`` archive of ``names``."""
    response = api._get(api._url("/images/get"), params={"names": list(names)}, stream=True)
    api._raise_for_status(response)
    return b"".join(response.iter_content(1 << 20))


def image_state(api: docker.APIClient) -> set[tuple[str, tuple[str, ...]]]:
    """Every image id with its tags: to show that a rejected request changed nothing."""
    return {(i["Id"], tuple(sorted(i["RepoTags"] or []))) for i in api.images(all=True)}


def blob_names(blobs_dir: Path) -> set[str]:
    """Committed and in-progress blobs of the controller's content store."""
    if not blobs_dir.is_dir():
        return set()
    return {str(p.relative_to(blobs_dir)) for p in blobs_dir.rglob("*") if p.is_file()}
