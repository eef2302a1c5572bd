"""moves_favored: reads the cgroup2 root's super options from mountinfo (ADR 0024)."""

from __future__ import annotations

from pathlib import Path

from dockyard.runtime.cgroups import moves_favored

_V1 = "35 25 0:30 / /sys/fs/cgroup/pids rw,relatime shared:11 - cgroup cgroup rw,pids\n"


def _mountinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


def test_favordynmods_in_the_super_options_counts(tmp_path: Path) -> None:
    line = (
        "36 25 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:12 - cgroup2 cgroup2 "
        "rw,nsdelegate,favordynmods\n"
    )
    assert moves_favored(_mountinfo(tmp_path, _V1 + line)) is True


def test_a_cgroup2_root_without_it_is_reported(tmp_path: Path) -> None:
    # The per-mount options may name it; only the super options count.
    line = "36 25 0:31 / /sys/fs/cgroup rw,favordynmods - cgroup2 cgroup2 rw,nsdelegate\n"
    assert moves_favored(_mountinfo(tmp_path, line)) is False


def test_no_cgroup2_mount_or_no_mountinfo_says_nothing(tmp_path: Path) -> None:
    assert moves_favored(_mountinfo(tmp_path, _V1)) is None
    assert moves_favored(tmp_path / "missing") is None
