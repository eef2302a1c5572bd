"""Docker's shapes for docker cp: Go file modes and the path-stat header."""

from __future__ import annotations

import base64
import json
import stat

import pytest

import dockyard.wire  # noqa: F401  (before aiohttp)
from dockyard.api.docker.files import go_file_mode, path_stat_header
from dockyard.core.protocol import PathStat


@pytest.mark.parametrize(
    ("st_mode", "go_mode"),
    [
        (stat.S_IFREG | 0o644, 0o644),
        (stat.S_IFDIR | 0o755, (1 << 31) | 0o755),  # os.ModeDir, "drwxr-xr-x"
        (stat.S_IFLNK | 0o777, (1 << 27) | 0o777),  # os.ModeSymlink
        (stat.S_IFCHR | 0o666, (1 << 26) | (1 << 21) | 0o666),  # ModeDevice|ModeCharDevice
        (stat.S_IFBLK | 0o660, (1 << 26) | 0o660),
        (stat.S_IFIFO | 0o600, (1 << 25) | 0o600),
        (stat.S_IFSOCK | 0o755, (1 << 24) | 0o755),
        (stat.S_IFREG | 0o4755, (1 << 23) | 0o755),  # setuid
        (stat.S_IFDIR | 0o2775, (1 << 31) | (1 << 22) | 0o775),  # setgid
        (stat.S_IFDIR | 0o1777, (1 << 31) | (1 << 20) | 0o777),  # sticky
    ],
)
def test_go_file_mode(st_mode: int, go_mode: int) -> None:
    assert go_file_mode(st_mode) == go_mode


def decode(header: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.b64decode(header))
    return decoded


def test_path_stat_header_is_base64_json_as_docker_clients_read_it() -> None:
    found = PathStat(
        name="passwd",
        size=42,
        mode=stat.S_IFLNK | 0o777,
        mtime=1_700_000_000_123_000_000,
        link_target="/etc/passwd",
    )
    assert decode(path_stat_header(found)) == {
        "name": "passwd",
        "size": 42,
        "mode": (1 << 27) | 0o777,
        "mtime": "2023-11-14T22:13:20.123Z",
        "linkTarget": "/etc/passwd",
    }
    assert list(decode(path_stat_header(found))) == ["name", "size", "mode", "mtime", "linkTarget"]


def test_path_stat_header_epoch_mtime_is_a_real_time() -> None:
    found = PathStat(name="f", size=0, mode=stat.S_IFREG | 0o644, mtime=0)
    assert decode(path_stat_header(found))["mtime"] == "1970-01-01T00:00:00Z"
