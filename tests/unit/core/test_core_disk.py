from __future__ import annotations

import os
from pathlib import Path

from dockyard.core.disk import tree_size, tree_usage


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


def test_usage_counts_blocks_so_a_sparse_file_costs_what_it_holds(tmp_path: Path) -> None:
    with (tmp_path / "sparse").open("wb") as f:
        f.truncate(1 << 30)
    assert tree_usage(tmp_path) < 64 * 1024
    (tmp_path / "full").write_bytes(os.urandom(1 << 20))
    os.sync()
    assert 1 << 20 <= tree_usage(tmp_path) < (1 << 20) + 64 * 1024
    os.link(tmp_path / "full", tmp_path / "again")
    assert tree_usage(tmp_path) < (1 << 20) + 64 * 1024  # a hard link counted once
    assert tree_usage(tmp_path / "missing") == 0
