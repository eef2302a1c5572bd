"""A ``busybox`` image built from the host's static busybox, for clouds with no registry.

The tarball is deterministic (sorted entries, fixed owners and times), and so is the image
config (fixed creation time), so a given busybox binary always gives the same image id.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from dockyard.core.errors import NotFound, Unavailable
from dockyard.images._model import ImageRecord, familiar_tag
from dockyard.images._rootfs import import_rootfs
from dockyard.images.content import ContentStore

__all__ = ["SEED_TIME_NS", "busybox_rootfs_tar", "seed_busybox"]

SEED_TIME_NS = 946_684_800 * 1_000_000_000  # 2000-01-01T00:00:00Z
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DIRS = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o555,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
}
_USERS = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def busybox_rootfs_tar(busybox: Path = Path("/bin/busybox")) -> bytes:
    """A minimal root filesystem as an uncompressed tar: ``/bin/busybox``, a symlink in
    ``/bin`` for every applet ``busybox --list`` names, the usual empty directories, and
    ``/etc/passwd`` and ``/etc/group`` with root, daemon and nobody.

    ``busybox`` must be a static binary (Debian's busybox-static). Raises NotFound if it is
    missing and Unavailable if it cannot list its applets.
    """
    try:
        binary = busybox.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{busybox} not found (install busybox-static)") from exc
    try:
        listing = subprocess.run(
            [str(busybox), "--list"], capture_output=True, check=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{busybox} --list failed: {exc}") from exc
    entries: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    for name, mode in _DIRS.items():
        entries[name] = (_info(name, tarfile.DIRTYPE, mode), b"")
    for name, data, mode in (
        ("bin/busybox", binary, 0o755),
        ("etc/passwd", _USERS.encode(), 0o644),
        ("etc/group", _GROUP.encode(), 0o644),
    ):
        info = _info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        entries[name] = (info, data)
    for applet in listing.split():
        name = f"bin/{applet}"
        if "/" in applet or name in entries:
            continue
        info = _info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = "busybox"
        entries[name] = (info, b"")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(entries):
            info, data = entries[name]
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def seed_busybox(
    store: ContentStore,
    *,
    spool_dir: Path,
    tags: Sequence[str] = ("busybox:latest",),
    busybox: Path = Path("/bin/busybox"),
) -> ImageRecord:
    """Import :func:`busybox_rootfs_tar` as an image with ``Cmd ["sh"]`` and a ``PATH``;
    return its record, tagged with ``tags`` (familiar form)."""
    record = import_rootfs(
        io.BytesIO(busybox_rootfs_tar(busybox)),
        store,
        changes=['CMD ["sh"]', f"ENV {_PATH}"],
        spool_dir=spool_dir,
        created=SEED_TIME_NS,
    )
    return dataclasses.replace(record, repo_tags=tuple(familiar_tag(tag) for tag in tags))


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = SEED_TIME_NS // 1_000_000_000
    info.uname = info.gname = "root"
    return info
