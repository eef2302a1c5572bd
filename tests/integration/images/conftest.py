"""Fixtures for the images integration tests: root only, and no mount left behind."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.images.content import ContentStore
from dockyard.images.layers import LayerStore

_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4].replace("\\040", " ") for line in info]
    return [p for p in points if p.startswith(prefix)]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, with every mount made under it detached at teardown (deepest first),
    even when the test failed."""
    root = Path(os.path.realpath(tmp_path))
    yield root
    for point in sorted(_mounts_under(root), key=len, reverse=True):
        _libc.umount2(point.encode(), _MNT_DETACH)
    assert _mounts_under(root) == []


@pytest.fixture
def content(workdir: Path) -> ContentStore:
    return ContentStore(workdir / "content")


@pytest.fixture
def layers(workdir: Path) -> LayerStore:
    return LayerStore(workdir / "layers")
