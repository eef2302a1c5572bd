"""Disk usage of a directory tree, as Docker reports it (``ps -s``, ``system df``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tree_size"]


def tree_size(root: Path) -> int:
    """Apparent bytes of everything under ``root`` but directories; hard links counted once.

    A missing ``root`` (or a subtree removed while walking) counts as empty.
    """
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
            total += info.st_size
    return total
