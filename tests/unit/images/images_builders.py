"""Builders of layer tars, image configs and image archives for the images tests.

Archives are built member by member with tarfile, the way ``docker save`` lays them out,
so the loader is tested against the formats rather than against our own writer.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hexof(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    """A deterministic layer tar holding ``files`` (name -> content)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def config_json(
    diff_ids: Sequence[str], *, cmd: Sequence[str] = ("sh",), arch: str = "amd64"
) -> bytes:
    return json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": list(cmd)},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [],
        }
    ).encode()


@dataclass
class Member:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def tar_of(members: Iterable[Member], *, compress: bool = False) -> bytes:
    """An (optionally gzip-compressed) archive of ``members``, in the given order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.mtime = 1_700_000_000
            if member.type == tarfile.DIRTYPE:
                info.mode = 0o755
                tar.addfile(info)
            elif member.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = member.linkname
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
    data = out.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


@dataclass
class Image:
    """An image to put in a test archive."""

    layers: list[bytes]  # uncompressed layer tars, bottom first
    tags: list[str] = field(default_factory=list)
    gzip_layers: bool = False
    cmd: tuple[str, ...] = ("sh",)

    @property
    def diff_ids(self) -> list[str]:
        return [sha(layer) for layer in self.layers]

    @property
    def config(self) -> bytes:
        return config_json(self.diff_ids, cmd=self.cmd)

    @property
    def image_id(self) -> str:
        return sha(self.config)

    def blobs(self) -> list[bytes]:
        """Layer blobs as stored in the archive (maybe gzip-compressed)."""
        if self.gzip_layers:
            return [gzip.compress(layer, mtime=0) for layer in self.layers]
        return list(self.layers)


def docker_members(images: Sequence[Image]) -> list[Member]:
    """The Docker 25 ``manifest.json`` layout with blobs/sha256 paths."""
    members: dict[str, Member] = {}
    manifest = []
    for image in images:
        members[f"blobs/sha256/{hexof(image.config)}"] = Member(
            f"blobs/sha256/{hexof(image.config)}", image.config
        )
        layer_paths = []
        for blob in image.blobs():
            path = f"blobs/sha256/{hexof(blob)}"
            members[path] = Member(path, blob)
            layer_paths.append(path)
        manifest.append(
            {
                "Config": f"blobs/sha256/{hexof(image.config)}",
                "RepoTags": image.tags or None,
                "Layers": layer_paths,
            }
        )
    return [
        *members.values(),
        Member("manifest.json", json.dumps(manifest).encode()),
    ]


def oci_manifest(image: Image) -> bytes:
    layers = [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar"
            + ("+gzip" if image.gzip_layers else ""),
            "digest": sha(blob),
            "size": len(blob),
        }
        for blob in image.blobs()
    ]
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": image.image_id,
                "size": len(image.config),
            },
            "layers": layers,
        }
    ).encode()


def oci_members(
    images: Sequence[Image], *, annotation: str = "io.containerd.image.name", nested: bool = False
) -> list[Member]:
    """The OCI image layout; names in ``annotation``; each manifest wrapped in an index if
    ``nested``."""
    members: dict[str, Member] = {}

    def blob(data: bytes) -> dict[str, Any]:
        members[f"blobs/sha256/{hexof(data)}"] = Member(f"blobs/sha256/{hexof(data)}", data)
        return {"digest": sha(data), "size": len(data)}

    entries = []
    for image in images:
        blob(image.config)
        for layer in image.blobs():
            blob(layer)
        descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json"}
        descriptor.update(blob(oci_manifest(image)))
        if nested:
            index = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [
                        {**descriptor, "platform": {"os": "linux", "architecture": "amd64"}}
                    ],
                }
            ).encode()
            descriptor = {"mediaType": "application/vnd.oci.image.index.v1+json", **blob(index)}
        for tag in image.tags or [""]:
            entry: dict[str, Any] = dict(descriptor)
            if tag:
                entry["annotations"] = {annotation: tag}
            entries.append(entry)
    index_json = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    return [
        *members.values(),
        Member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        Member("index.json", index_json),
    ]


class NonSeekable(io.RawIOBase):
    """A read-only stream that cannot seek, like a socket or a pipe."""

    def __init__(self, data: bytes, chunk: int = 7000) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._chunk = chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._chunk, len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size


class WriteOnly(io.RawIOBase):
    """A write-only, non-seekable sink that records what it gets."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        self.data += bytes(data)
        return len(data)
