"""A minimal inotify watch on one directory, integrated with the asyncio loop.

The agent learns that a container exited when conmon writes ``exits/<id>``; watching the
directory costs nothing while idle and reports within a loop iteration.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

from dockyard.core.errors import Unavailable

__all__ = ["IN_MODIFY", "IN_MOVED_TO", "IN_Q_OVERFLOW", "DirectoryWatch", "Watches"]

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")
_libc = ctypes.CDLL(None, use_errno=True)


class DirectoryWatch:
    """Call ``callback(name)`` for every file closed after writing (or moved) in ``path``."""

    def __init__(self, path: Path, callback: Callable[[str], None]) -> None:
        self._path = path
        self._callback = callback
        self._fd = -1

    def start(self) -> None:
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise Unavailable(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        mask = _IN_CLOSE_WRITE | _IN_MOVED_TO
        if _libc.inotify_add_watch(fd, str(self._path).encode(), mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise Unavailable(f"inotify_add_watch {self._path}: {os.strerror(err)}")
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            name = raw.split(b"\0", 1)[0].decode(errors="replace")
            if name:
                self._callback(name)

    def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


IN_MODIFY = 0x00000002
IN_MOVED_TO = _IN_MOVED_TO
IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000


class Watches:
    """One inotify instance watching many directories, each under a key.

    ``callback(key, name, mask)`` runs for every event in a watched directory; after a
    queue overflow (events were lost) it runs once as ``callback("", "", IN_Q_OVERFLOW)``.
    The instance is created on the first :meth:`watch` (inside the running loop).
    """

    def __init__(self, callback: Callable[[str, str, int], None]) -> None:
        self._callback = callback
        self._fd = -1
        self._keys: dict[int, str] = {}
        self._wds: dict[str, int] = {}

    def watch(self, key: str, path: Path, mask: int) -> None:
        """Watch ``path`` for ``mask`` under ``key`` (again: the mask is replaced)."""
        if self._fd < 0:
            fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd < 0:
                raise Unavailable(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
            self._fd = fd
            asyncio.get_running_loop().add_reader(fd, self._readable)
        wd = _libc.inotify_add_watch(self._fd, str(path).encode(), mask | _IN_ONLYDIR)
        if wd < 0:
            raise Unavailable(f"inotify_add_watch {path}: {os.strerror(ctypes.get_errno())}")
        old = self._wds.get(key)
        if old is not None and old != wd:
            self._keys.pop(old, None)
        self._wds[key] = wd
        self._keys[wd] = key

    def unwatch(self, key: str) -> None:
        wd = self._wds.pop(key, None)
        if wd is None:
            return
        self._keys.pop(wd, None)
        _libc.inotify_rm_watch(self._fd, wd)  # EINVAL if the directory is gone: fine

    def watching(self) -> list[str]:
        return list(self._wds)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self._callback("", "", IN_Q_OVERFLOW)
                continue
            key = self._keys.get(wd)
            if key is None:
                continue
            if mask & _IN_IGNORED:  # the directory went away
                self._keys.pop(wd, None)
                if self._wds.get(key) == wd:
                    del self._wds[key]
                continue
            self._callback(key, raw.split(b"\0", 1)[0].decode(errors="replace"), mask)

    def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._keys.clear()
            self._wds.clear()
