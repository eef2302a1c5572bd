"""runtime.tmpfs on the real kernel: the agent's runtime directory is a tmpfs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dockyard.runtime.tmpfs import TMPFS_MAGIC, ensure_tmpfs, fs_type


def _mounted_at(path: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if line.split()[4] == str(path)]


def test_mounts_once_and_finds_its_own_mount_again(tmp_path: Path) -> None:
    target = tmp_path / "run" / "agent"
    try:
        assert ensure_tmpfs(target)  # tmp_path is on the root disk here
        assert fs_type(target) == TMPFS_MAGIC
        (target / "kept").write_text("x")
        assert not ensure_tmpfs(target)  # a restarted agent: same mount, same files
        assert (target / "kept").read_text() == "x"
        (line,) = _mounted_at(target)
        assert " - tmpfs tmpfs " in line and "mode=711" in line
        assert "nosuid" in line.split()[5] and "nodev" in line.split()[5]
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_directory_on_a_tmpfs_already_is_left_as_it_is(tmp_path: Path) -> None:
    parent = tmp_path / "run"
    parent.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(parent)], check=True)
    try:
        assert not ensure_tmpfs(parent / "agent")  # as under systemd's /run
        assert _mounted_at(parent / "agent") == []
        assert fs_type(parent / "agent") == TMPFS_MAGIC
    finally:
        subprocess.run(["umount", "-l", str(parent)], check=False)
