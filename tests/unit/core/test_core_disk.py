from __future__ import annotations

import os
from pathlib import Path

from dockyard.core.disk import tree_size


def test_counts_files_and_symlinks_and_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a").write_bytes(b"x" * 1000)
    os.link(tmp_path / "d/a", tmp_path / "b")
    (tmp_path / "c").symlink_to("d/a")
    (tmp_path / "e").write_bytes(b"y" * 10)
    assert tree_size(tmp_path) == 1000 + len("d/a") + 10


def test_sparse_file_counts_its_apparent_size(tmp_path: Path) -> None:
    with (tmp_path / "sparse").open("wb") as f:
        f.truncate(1 << 20)
    assert tree_size(tmp_path) == 1 << 20


def test_missing_tree_is_empty(tmp_path: Path) -> None:
    assert tree_size(tmp_path / "missing") == 0
