"""Disk usage of a directory tree: as Docker reports it (``ps -s``, ``system df``), and as
the disk is really taken (quotas and the writable-layer cap)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["tree_size", "tree_usage"]


def tree_size(root: Path) -> int:
    """Apparent bytes of everything under ``root`` but directories; hard links counted once.

    A missing ``root`` (or a subtree removed while walking) counts as empty.
    """
    return _walk(root, lambda info: info.st_size)


def tree_usage(root: Path) -> int:
    """Bytes allocated on disk for everything under ``root`` but directories (``du``'s
    blocks): a sparse file counts what it holds, not its length, so a ``truncate -s 1T``
    costs nothing here, as it costs nothing on the disk. Hard links counted once."""
    return _walk(root, lambda info: info.st_blocks * 512)


def _walk(root: Path, measure: Callable[[os.stat_result], int]) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            if info.st_nlink > 1:
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
            total += measure(info)
    return total
