"""docker cp's path reading and the refusal rules for uploaded archives."""

from __future__ import annotations

import tarfile

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.runtime.archive_rules import (
    MAX_ENTRIES,
    EntryKind,
    UploadCheck,
    UploadRules,
    archive_entry_name,
    container_path,
    go_base,
    member_path,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/etc/hosts", "/etc/hosts"),
        ("etc/hosts", "/etc/hosts"),
        ("/dir/", "/dir/"),
        ("/dir/.", "/dir/."),
        ("dir/./", "/dir/./"),
        (".", "/."),
        ("/", "/"),
        ("//a//b", "/a/b"),
        ("../../etc/passwd", "/etc/passwd"),
        ("/a/../../..", "/"),
        ("/a/b/../", "/a/"),
    ],
)
def test_container_path_keeps_docker_trailing_meaning(given: str, expected: str) -> None:
    assert container_path(given) == expected


@pytest.mark.parametrize("bad", ["", "a\x00b"])
def test_container_path_refuses_empty_and_nul(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        container_path(bad)


@pytest.mark.parametrize(
    ("path", "base"), [("/a/b", "b"), ("/a/b/", "b"), ("/a/.", "."), ("/", "/"), ("", ".")]
)
def test_go_base(path: str, base: str) -> None:
    assert go_base(path) == base


def test_archive_entry_names_follow_docker() -> None:
    assert archive_entry_name("dir", ".") == "dir"
    assert archive_entry_name("dir", "./a/b") == "dir/a/b"
    assert archive_entry_name(".", "./a") == "./a"  # "/dir/." copies the content
    assert archive_entry_name("/", ".") == ""  # a tar directory "/" once written
    assert archive_entry_name("/", "./bin") == "/bin"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a", "a"), ("./a/b/", "a/b"), (".", "."), ("./", "."), ("a//b/./c", "a/b/c")],
)
def test_member_path_cleans(name: str, expected: str) -> None:
    assert member_path(name) == expected


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../x", "a/..", "x" * 256, "a/" * 2100]
)
def test_member_path_refuses(name: str) -> None:
    with pytest.raises(InvalidArgument):
        member_path(name)


# UploadCheck -------------------------------------------------------------------------


def member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644 if kind != tarfile.DIRTYPE else 0o755
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def checker(
    rules: UploadRules | None = None,
    existing: dict[str, EntryKind] | None = None,
    dirs_behind_links: frozenset[str] = frozenset(),
) -> UploadCheck:
    fs = existing or {}
    return UploadCheck(
        rules or UploadRules(),
        existing=fs.get,
        leads_to_dir=lambda path: path in dirs_behind_links,
    )


def test_a_plain_archive_passes_with_clean_paths() -> None:
    check = checker()
    assert check.check(member(".", tarfile.DIRTYPE)) == "."
    assert check.check(member("./d", tarfile.DIRTYPE)) == "d"
    assert check.check(member("./d/f")) == "d/f"
    assert check.check(member("d/l", tarfile.SYMTYPE, linkname="/etc/passwd")) == "d/l"
    assert check.check(member("d/h", tarfile.LNKTYPE, linkname="d/f")) == "d/h"
    assert check.check(member("fifo", tarfile.FIFOTYPE)) == "fifo"
    assert check.check(member("implied/parents/f")) == "implied/parents/f"


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_device_nodes_are_refused(kind: bytes) -> None:
    with pytest.raises(InvalidArgument, match="device nodes"):
        checker().check(member("sda", kind, devmajor=8, devminor=0))


def test_unknown_entry_types_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unsupported entry type"):
        checker().check(member("odd", b"Z"))


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o6755])
def test_setuid_and_setgid_files_are_refused(mode: int) -> None:
    with pytest.raises(InvalidArgument, match="setuid"):
        checker().check(member("bin/su", mode=mode))


def test_setgid_directories_and_sticky_bits_pass_setuid_directories_do_not() -> None:
    check = checker()
    assert check.check(member("shared", tarfile.DIRTYPE, mode=0o2775)) == "shared"
    assert check.check(member("tmp", tarfile.DIRTYPE, mode=0o1777)) == "tmp"
    with pytest.raises(InvalidArgument, match="setuid"):
        check.check(member("odd", tarfile.DIRTYPE, mode=0o4755))


def test_a_symlink_made_by_the_archive_cannot_be_gone_through() -> None:
    check = checker()
    check.check(member("escape", tarfile.SYMTYPE, linkname="/"))
    with pytest.raises(InvalidArgument, match="symlink made by the archive"):
        check.check(member("escape/etc/shadow"))
    check.check(member("up", tarfile.SYMTYPE, linkname="../../.."))
    with pytest.raises(InvalidArgument, match="symlink made by the archive"):
        check.check(member("up/x/y", tarfile.DIRTYPE))


def test_a_symlink_replaced_by_a_directory_is_a_directory_again() -> None:
    check = checker()
    check.check(member("a", tarfile.SYMTYPE, linkname="/"))
    check.check(member("a", tarfile.DIRTYPE))
    assert check.check(member("a/f")) == "a/f"


@pytest.mark.parametrize(
    "target", ["/etc/passwd", "../../etc/passwd", "missing", "dir", ".", "later"]
)
def test_hard_links_must_point_at_a_file_the_archive_made_earlier(target: str) -> None:
    check = checker(existing={"missing": EntryKind.FILE})
    check.check(member("dir", tarfile.DIRTYPE))
    with pytest.raises(InvalidArgument, match="hard link"):
        check.check(member("h", tarfile.LNKTYPE, linkname=target))
    check.check(member("later"))


def test_a_hard_link_through_an_archive_symlink_is_refused() -> None:
    check = checker()
    check.check(member("real", tarfile.DIRTYPE))
    check.check(member("real/f"))
    check.check(member("alias", tarfile.SYMTYPE, linkname="real"))
    with pytest.raises(InvalidArgument):
        check.check(member("h", tarfile.LNKTYPE, linkname="alias/f"))


def test_a_hard_link_to_a_file_under_a_replaced_directory_is_refused() -> None:
    check = checker()
    check.check(member("d", tarfile.DIRTYPE))
    check.check(member("d/f"))
    check.check(member("d"))  # the directory becomes a file: d/f is gone
    with pytest.raises(InvalidArgument, match="hard link"):
        check.check(member("h", tarfile.LNKTYPE, linkname="d/f"))


def test_ids_are_checked_only_when_kept() -> None:
    assert checker().check(member("f", uid=10**9, gid=10**9)) == "f"
    kept = checker(UploadRules(keep_ids=True, id_count=65536))
    assert kept.check(member("ok", uid=65535, gid=0)) == "ok"
    with pytest.raises(InvalidArgument, match="uid 65536 is outside"):
        kept.check(member("big", uid=65536))
    with pytest.raises(InvalidArgument, match="gid 70000 is outside"):
        kept.check(member("big", gid=70000))


def test_the_extraction_directory_itself_cannot_be_replaced() -> None:
    with pytest.raises(InvalidArgument, match="extraction directory"):
        checker().check(member("."))


def test_parents_must_lead_to_directories() -> None:
    fs = {"file": EntryKind.FILE, "link": EntryKind.SYMLINK, "dirlink": EntryKind.SYMLINK}
    check = checker(existing=fs, dirs_behind_links=frozenset({"dirlink"}))
    with pytest.raises(InvalidArgument, match="not a directory"):
        check.check(member("file/x"))
    with pytest.raises(InvalidArgument, match="not a directory"):
        check.check(member("link/x"))
    assert check.check(member("dirlink/x")) == "dirlink/x"  # e.g. /bin -> usr/bin
    check.check(member("made"))
    with pytest.raises(InvalidArgument, match="not a directory"):
        check.check(member("made/x"))


def test_no_overwrite_dir_non_dir_guards_both_ways() -> None:
    fs = {"dir": EntryKind.DIR, "file": EntryKind.FILE, "link": EntryKind.SYMLINK}
    rules = UploadRules(no_overwrite_dir_non_dir=True)
    check = checker(rules, existing=fs)
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        check.check(member("dir"))
    with pytest.raises(InvalidArgument, match="cannot overwrite non-directory"):
        check.check(member("file", tarfile.DIRTYPE))
    with pytest.raises(InvalidArgument, match="cannot overwrite non-directory"):
        check.check(member("link", tarfile.DIRTYPE))
    assert check.check(member("dir", tarfile.DIRTYPE)) == "dir"
    assert check.check(member("file")) == "file"
    check.check(member("new", tarfile.DIRTYPE))
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        check.check(member("new", tarfile.SYMTYPE, linkname="x"))
    # Without the flag, Docker replaces either way.
    loose = checker(existing=fs)
    assert loose.check(member("dir")) == "dir"
    assert loose.check(member("file", tarfile.DIRTYPE)) == "file"


def test_the_number_of_entries_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.runtime.archive_rules.MAX_ENTRIES", 3)
    check = checker()
    for index in range(3):
        check.check(member(f"f{index}"))
    with pytest.raises(InvalidArgument, match="more than 3 entries"):
        check.check(member("f3"))
    assert MAX_ENTRIES == 1_000_000
