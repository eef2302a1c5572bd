"""The curated image set: busybox-based stand-ins for the images clients expect on Docker Hub.

``dockyard images seed`` publishes these to the registry's ``library`` namespace (ADR 0021)
so that ``docker pull busybox``, ``alpine:3.10`` (docker-py's test image) and
``hello-world`` (testcontainers' and many smoke tests' image) work in a cloud with no way
out. Every image is built from the host's static busybox (Debian ``busybox-static``):

- ``busybox`` (tags ``latest``, ``<major.minor>``, ``<major.minor.patch>``):
  :func:`~dockyard.images.seed.busybox_rootfs_tar`, ``Cmd ["sh"]`` as Docker Hub's.
- ``alpine`` (tags ``3.10``, ``latest``): the busybox layer plus a layer with
  ``/etc/alpine-release`` and an ``/etc/os-release`` that says ``ID=alpine`` (scripts that
  check keep working) and names itself a stand-in; ``Cmd ["/bin/sh"]``. There is no apk.
- ``hello-world`` (tag ``latest``): ``/bin/busybox`` and a ``/hello`` script printing
  :data:`HELLO_TEXT`, whose first two lines are Docker's verbatim; ``Cmd ["/hello"]``.

The busybox version tags come from the binary's own version string. Everything is
deterministic: tarballs have sorted entries, fixed owners and times, configs are canonical
JSON created at :data:`~dockyard.images.seed.SEED_TIME_NS`, so the same busybox binary
always gives the same image ids and layer digests, on any host of the same architecture.
The alpine stand-in shares its first layer with busybox.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.clock import format_rfc3339
from dockyard.core.errors import NotFound
from dockyard.images._model import HOST_ARCH, ImageRecord, canonical_json
from dockyard.images.content import ContentStore, sha256_digest
from dockyard.images.seed import SEED_TIME_NS, busybox_rootfs_tar

__all__ = [
    "ALPINE_RELEASE",
    "HELLO_TEXT",
    "CuratedImage",
    "build_curated",
    "busybox_version",
]

ALPINE_RELEASE = "3.10.9"
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DESCRIPTION = "org.opencontainers.image.description"
_SOURCE = "Debian busybox-static"

# The first two lines are Docker's, verbatim: client test suites grep for the first.
HELLO_TEXT = """
Hello from Docker!
This message shows that your installation appears to be working correctly.

This is Dockyard's stand-in for Docker's hello-world image: a few lines of shell run by a
static busybox. To print them, Dockyard:
 1. Resolved "hello-world" to the curated library/hello-world image in the cloud's own
    registry (Dockyard's clouds have no way out to Docker Hub).
 2. Pulled the image onto the host picked for the container.
 3. Created a container from it and ran the executable that prints this text.
 4. Streamed the output back to your client, which wrote it to your terminal.

To try something more ambitious, run a shell in the busybox-based alpine stand-in:
 $ docker run -it alpine sh

See the Dockyard documentation for namespaces, registries and quotas.
"""

_OS_RELEASE = f"""\
NAME="Dockyard busybox stand-in for Alpine Linux"
ID=alpine
ID_LIKE=busybox
VERSION_ID={ALPINE_RELEASE}
PRETTY_NAME="Dockyard busybox-based stand-in for Alpine Linux v3.10 (no apk)"
HOME_URL="https://alpinelinux.org/"
"""

_HELLO_SCRIPT = f"""\
#!/bin/busybox sh
/bin/busybox cat <<'DOCKYARD_HELLO'
{HELLO_TEXT}DOCKYARD_HELLO
"""


@dataclass(frozen=True)
class CuratedImage:
    """One curated repository: its name in ``library`` (``busybox``), the tags to publish
    and the image (stored in the content store :func:`build_curated` was given; its
    ``repo_tags`` are the familiar ``busybox:<tag>`` forms)."""

    repository: str
    tags: tuple[str, ...]
    record: ImageRecord


def busybox_version(busybox: Path = Path("/bin/busybox")) -> str | None:
    """The ``major.minor.patch`` version ``busybox`` says it is (``1.35.0``), read from the
    binary's own banner string; None if it has none. NotFound if the file is missing."""
    try:
        binary = busybox.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{busybox} not found (install busybox-static)") from exc
    match = re.search(rb"BusyBox v(\d+\.\d+\.\d+)", binary)
    return match.group(1).decode() if match else None


def build_curated(
    content: ContentStore, *, busybox: Path = Path("/bin/busybox")
) -> list[CuratedImage]:
    """Build the curated set into ``content`` (layers and configs) and return it: busybox,
    alpine and hello-world, in that order.

    Idempotent and deterministic: the same binary gives the same digests. Raises NotFound if
    ``busybox`` is missing and Unavailable if it cannot list its applets.
    """
    version = busybox_version(busybox)
    base = _layer(content, busybox_rootfs_tar(busybox))
    alpine = _layer(
        content,
        _tar(
            {"etc": None},
            {
                "etc/alpine-release": f"{ALPINE_RELEASE}\n".encode(),
                "etc/os-release": _OS_RELEASE.encode(),
            },
            {},
        ),
    )
    hello = _layer(
        content,
        _tar(
            {"bin": None, "dev": None, "etc": None, "proc": 0o555, "sys": 0o555},
            {"bin/busybox": busybox.read_bytes(), "hello": _HELLO_SCRIPT.encode()},
            {"bin/sh": "busybox"},
        ),
    )
    busybox_tags = ["latest"]
    if version is not None:
        busybox_tags += [version.rsplit(".", 1)[0], version]
    return [
        _image(
            content,
            "busybox",
            tuple(busybox_tags),
            layers=[(base, f"busybox {version or ''}".rstrip() + f" from {_SOURCE}")],
            cmd=["sh"],
            description=f"Dockyard stand-in for busybox, built from {_SOURCE}",
        ),
        _image(
            content,
            "alpine",
            ("3.10", "latest"),
            layers=[
                (base, f"busybox from {_SOURCE}"),
                (alpine, f"/etc/alpine-release {ALPINE_RELEASE} and /etc/os-release"),
            ],
            cmd=["/bin/sh"],
            description=(
                f"Dockyard stand-in for Alpine Linux {ALPINE_RELEASE}: a busybox userland "
                f"built from {_SOURCE}, with no apk"
            ),
        ),
        _image(
            content,
            "hello-world",
            ("latest",),
            layers=[(hello, f"/hello, a shell script run by busybox from {_SOURCE}")],
            cmd=["/hello"],
            description=f"Dockyard stand-in for hello-world, built from {_SOURCE}",
        ),
    ]


def _layer(content: ContentStore, tar: bytes) -> tuple[str, int]:
    blob = content.ingest([tar])
    return blob.digest, blob.size


def _image(
    content: ContentStore,
    repository: str,
    tags: tuple[str, ...],
    *,
    layers: list[tuple[tuple[str, int], str]],
    cmd: list[str],
    description: str,
) -> CuratedImage:
    stamp = format_rfc3339(SEED_TIME_NS)
    config = canonical_json(
        {
            "architecture": HOST_ARCH,
            "os": "linux",
            "created": stamp,
            "config": {
                "Env": [_PATH],
                "Cmd": cmd,
                "Labels": {_DESCRIPTION: description},
            },
            "rootfs": {"type": "layers", "diff_ids": [digest for (digest, _), _ in layers]},
            "history": [
                {"created": stamp, "created_by": f"dockyard images seed: {what}"}
                for _, what in layers
            ],
        }
    )
    digest = sha256_digest(config)
    content.ingest([config], expected=digest)
    record = ImageRecord(
        config_digest=digest,
        config=config,
        diff_ids=tuple(digest for (digest, _), _ in layers),
        layer_sizes=tuple(size for (_, size), _ in layers),
        repo_tags=tuple(f"{repository}:{tag}" for tag in tags),
    )
    return CuratedImage(repository=repository, tags=tags, record=record)


def _tar(
    dirs: Mapping[str, int | None], files: Mapping[str, bytes], links: Mapping[str, str]
) -> bytes:
    """A deterministic tar: directories (mode, default 0755), regular files (0755 when they
    start with ``#!``, else 0644) and symlinks, sorted by name, owned by root."""
    entries: list[tuple[tarfile.TarInfo, bytes]] = []
    for name, mode in dirs.items():
        entries.append((_info(name, tarfile.DIRTYPE, 0o755 if mode is None else mode), b""))
    for name, data in files.items():
        executable = data.startswith(b"#!") or data.startswith(b"\x7fELF")
        info = _info(name, tarfile.REGTYPE, 0o755 if executable else 0o644)
        info.size = len(data)
        entries.append((info, data))
    for name, target in links.items():
        info = _info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        entries.append((info, b""))
    return _write(sorted(entries, key=lambda entry: entry[0].name))


def _write(entries: Iterable[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = SEED_TIME_NS // 1_000_000_000
    info.uname = info.gname = "root"
    return info
