"""Layer tars with every entry type, for the unpack and snapshot integration tests."""

from __future__ import annotations

import hashlib
import io
import tarfile

MTIME = 1_600_000_000


class LayerBuilder:
    """Accumulates tar entries; :meth:`build` returns the uncompressed layer bytes."""

    def __init__(self) -> None:
        self._entries: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def _info(self, name: str, kind: bytes, *, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = uid
        info.gid = gid
        info.mtime = MTIME
        return info

    def dir(self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> LayerBuilder:
        self._entries.append((self._info(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid), None))
        return self

    def file(
        self,
        name: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: dict[str, bytes] | None = None,
    ) -> LayerBuilder:
        info = self._info(name, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid)
        info.size = len(data)
        info.pax_headers = {
            f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
            for key, value in (xattrs or {}).items()
        }
        self._entries.append((info, data))
        return self

    def symlink(self, name: str, target: str) -> LayerBuilder:
        info = self._info(name, tarfile.SYMTYPE, mode=0o777, uid=0, gid=0)
        info.linkname = target
        self._entries.append((info, None))
        return self

    def hardlink(self, name: str, target: str) -> LayerBuilder:
        info = self._info(name, tarfile.LNKTYPE, mode=0o644, uid=0, gid=0)
        info.linkname = target
        self._entries.append((info, None))
        return self

    def device(self, name: str, *, char: bool, major: int, minor: int) -> LayerBuilder:
        kind = tarfile.CHRTYPE if char else tarfile.BLKTYPE
        info = self._info(name, kind, mode=0o600, uid=0, gid=0)
        info.devmajor, info.devminor = major, minor
        self._entries.append((info, None))
        return self

    def fifo(self, name: str) -> LayerBuilder:
        self._entries.append((self._info(name, tarfile.FIFOTYPE, mode=0o644, uid=0, gid=0), None))
        return self

    def build(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self._entries:
                tar.addfile(info, None if data is None else io.BytesIO(data))
        return out.getvalue()


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
