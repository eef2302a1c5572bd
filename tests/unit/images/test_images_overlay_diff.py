"""docker diff from an overlay upper dir and its layers, built by hand in a temp dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.images.overlay_diff import ChangeKind, overlay_changes

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="whiteouts and trusted.* xattrs need root"
)

A, C, D = ChangeKind.ADDED, ChangeKind.MODIFIED, ChangeKind.DELETED
SHIFT = 100_000
OLD = 946_684_800


def make(root: Path, spec: dict[str, str], *, owner: int = 0) -> Path:
    """``spec`` maps paths to ``dir``, ``file``, ``whiteout``, ``opaque`` (a directory)
    or ``-> target`` (a symlink)."""
    root.mkdir(parents=True, exist_ok=True)
    for path, what in sorted(spec.items()):
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if what in ("dir", "opaque"):
            full.mkdir(exist_ok=True)
            if what == "opaque":
                os.setxattr(full, "trusted.overlay.opaque", b"y")
        elif what == "file":
            full.write_text(path)
        elif what == "whiteout":
            os.mknod(full, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        else:
            full.symlink_to(what.removeprefix("-> "))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath, name), owner, owner, follow_symlinks=False)
    for dirpath, dirnames, _ in os.walk(root, topdown=False):
        for name in dirnames:
            os.utime(Path(dirpath, name), (OLD, OLD))
    return root


def test_added_modified_deleted_and_parents(tmp_path: Path) -> None:
    base = make(tmp_path / "base", {"etc": "dir", "etc/passwd": "file", "usr/bin/ls": "file"})
    top = make(tmp_path / "top", {"etc/group": "file", "var/log": "dir"})
    upper = make(
        tmp_path / "upper",
        {
            "etc": "dir",
            "etc/passwd": "whiteout",
            "etc/group": "file",
            "new/deep/file": "file",
            "usr": "dir",
            "usr/bin": "dir",
            "usr/bin/ls": "file",
            "ghost": "whiteout",  # a whiteout of something the layers never had
        },
        owner=SHIFT,
    )
    changes = overlay_changes(upper, [top, base], uid_shift=SHIFT)
    assert changes == [
        ("/etc", C),  # holds a deletion
        ("/etc/group", C),
        ("/etc/passwd", D),
        ("/new", A),
        ("/new/deep", A),
        ("/new/deep/file", A),
        ("/usr/bin/ls", C),  # /usr and /usr/bin were only copied up
    ]


def test_directory_attributes_count_and_ids_are_compared_shifted(tmp_path: Path) -> None:
    lower = make(tmp_path / "lower", {"same": "dir", "chmod": "dir", "chown": "dir"})
    upper = make(tmp_path / "upper", {"same": "dir", "chmod": "dir", "chown": "dir"}, owner=SHIFT)
    os.chmod(upper / "chmod", 0o700)
    os.chown(upper / "chown", SHIFT + 1, SHIFT)
    assert overlay_changes(upper, [lower], uid_shift=SHIFT) == [("/chmod", C), ("/chown", C)]
    # Unshifted, every directory's owner differs.
    assert len(overlay_changes(upper, [lower])) == 3


def test_opaque_directory_reports_what_the_layers_had(tmp_path: Path) -> None:
    base = make(tmp_path / "base", {"data/a": "file", "data/b": "file", "data/gone": "file"})
    top = make(tmp_path / "top", {"data/gone": "whiteout", "data/c": "file"})
    upper = make(tmp_path / "upper", {"data": "opaque", "data/b": "file", "data/n": "file"})
    assert overlay_changes(upper, [top, base]) == [
        ("/data", C),
        ("/data/a", D),
        ("/data/b", A),  # the old b is gone with the opaque directory; this one is new
        ("/data/c", D),
        ("/data/n", A),
    ]


def test_layers_merge_as_overlayfs_does(tmp_path: Path) -> None:
    base = make(tmp_path / "base", {"x/old": "file", "hidden/f": "file", "w/f": "file"})
    # top replaces hidden/ with an opaque directory and deletes w/ entirely.
    top = make(tmp_path / "top", {"hidden": "opaque", "w": "whiteout"})
    upper = make(tmp_path / "upper", {"x/old": "file", "hidden/f": "file", "w/f": "file"})
    assert overlay_changes(upper, [top, base]) == [
        ("/hidden", C),  # holds an addition
        ("/hidden/f", A),  # the opaque top layer hides base's hidden/f
        ("/w", A),
        ("/w/f", A),
        ("/x/old", C),
    ]


def test_symlinks_in_layers_or_upper_are_never_followed(tmp_path: Path) -> None:
    # A layer whose "etc" is a symlink to the host's /etc must not make the upper's
    # etc/passwd look like a modification of the host's file.
    lower = make(tmp_path / "lower", {"etc": "-> /etc", "dir/link": "-> /"})
    upper = make(tmp_path / "upper", {"etc/passwd": "file", "dir/link/etc/passwd": "file"})
    assert overlay_changes(upper, [lower]) == [
        ("/dir/link", C),
        ("/dir/link/etc", A),
        ("/dir/link/etc/passwd", A),
        ("/etc", C),
        ("/etc/passwd", A),
    ]
    # An upper symlink is an entry, never a way in.
    upper2 = make(tmp_path / "upper2", {"escape": "-> /"})
    assert overlay_changes(upper2, [lower]) == [("/escape", A)]


def test_runtime_paths_are_ignored_with_their_parents_mtime(tmp_path: Path) -> None:
    lower = make(tmp_path / "lower", {"etc/passwd": "file", "proc": "dir"})
    upper = make(
        tmp_path / "upper",
        {"etc/hosts": "file", "etc/resolv.conf": "file", "proc/1/x": "file"},
        owner=SHIFT,
    )
    os.utime(upper / "etc", (OLD + 60, OLD + 60))
    ignore = frozenset({"/etc/hosts", "/etc/resolv.conf", "/proc"})
    assert overlay_changes(upper, [lower], uid_shift=SHIFT, ignore=ignore) == []
    (upper / "etc" / "mine").write_text("x")
    assert overlay_changes(upper, [lower], uid_shift=SHIFT, ignore=ignore) == [
        ("/etc", C),
        ("/etc/mine", A),
    ]


def test_mtime_of_a_directory_counts_outside_runtime_paths(tmp_path: Path) -> None:
    lower = make(tmp_path / "lower", {"tmp": "dir"})
    upper = make(tmp_path / "upper", {"tmp": "dir"})
    os.utime(upper / "tmp", (OLD + 60, OLD + 60))
    assert overlay_changes(upper, [lower]) == [("/tmp", C)]


def test_missing_layers_count_as_empty(tmp_path: Path) -> None:
    upper = make(tmp_path / "upper", {"f": "file"})
    assert overlay_changes(upper, [tmp_path / "nope"]) == [("/f", A)]
    with pytest.raises(FileNotFoundError):
        overlay_changes(tmp_path / "no-upper", [])
