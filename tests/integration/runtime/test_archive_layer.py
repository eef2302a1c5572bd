"""The archive child's ``layer`` operation (``docker commit``) on the real kernel.

A real overlay plays a container: a lower layer, an upper dir, changes made through the
merged mount. The layer the child writes from the upper dir, unpacked by the agent's own
unpacker (``dockyard.images.unpack``) and stacked on the same lower layer, must show
exactly the merged tree the container saw. A scratch upper dir with a host uid range checks
the ids, the runtime's mount points and what Docker's format says entry by entry.
Needs root (mount, mknod, trusted xattrs).
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.core.errors import Unavailable
from dockyard.runtime.archive import ArchiveProcess
from dockyard.runtime.archive_child import ArchiveRequest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

BASE = 300_000
SIZE = 65536
RUNTIME_PATHS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/sys", "/dev")
OPAQUE = "trusted.overlay.opaque"
# A VFS_CAP_REVISION_3 security.capability (cap_net_bind_service, root id BASE), as the
# kernel stores what setcap writes inside a user namespace whose root is BASE.
CAP_V3 = (
    (0x03000000 | 0x1).to_bytes(4, "little")  # revision 3, effective
    + (1 << 10).to_bytes(4, "little")  # permitted: cap_net_bind_service
    + (0).to_bytes(4, "little")  # inheritable
    + (0).to_bytes(8, "little")  # the high words
    + BASE.to_bytes(4, "little")  # rootid
)
CAP_V2 = (0x02000000 | 0x1).to_bytes(4, "little") + CAP_V3[4:20]

_libc = ctypes.CDLL(None, use_errno=True)


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    options = (
        f"lowerdir={lower},upperdir={upper},workdir={work},index=off,metacopy=off,redirect_dir=off"
    )
    for path in (upper, work, target):
        path.mkdir(exist_ok=True)
    if _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode()) != 0:
        raise OSError(ctypes.get_errno(), f"mount overlay at {target}")


def unmount(target: Path) -> None:
    _libc.umount2(os.fsencode(target), 2)


def layer_of(
    upper: Path, *, base: int = 0, size: int = SIZE, ignore: tuple[str, ...] = ()
) -> bytes:
    request = ArchiveRequest(
        op="layer", rootfs=str(upper), uid_base=base, uid_size=size, ignore=ignore
    )

    async def go() -> bytes:
        child = await ArchiveProcess.start(request)
        try:
            await child.answer()
            return b"".join([chunk async for chunk in child.chunks()])
        finally:
            await child.close()

    return asyncio.run(go())


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def unpack(data: bytes, target: Path) -> None:
    target.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.images.unpack", str(target)],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a container sees of a tree: types, modes, owners, contents, link
    targets, file capabilities, and which names are the same file."""
    found: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        name = str(path.relative_to(root))
        if stat.S_ISREG(st.st_mode):
            content: object = path.read_bytes()
            first = inodes.setdefault((st.st_dev, st.st_ino), name)
            try:
                caps: object = os.getxattr(path, "security.capability")
            except OSError:
                caps = None
            found[name] = ("file", st.st_mode, st.st_uid, st.st_gid, content, first, caps)
        elif stat.S_ISLNK(st.st_mode):
            found[name] = ("link", st.st_uid, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[name] = ("dir", st.st_mode, st.st_uid, st.st_gid)
        else:
            found[name] = ("other", st.st_mode, st.st_uid, st.st_rdev)
        if not stat.S_ISDIR(st.st_mode):
            found[name] = (*found[name], st.st_mtime_ns // 1_000_000_000)
    return found


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(lower, upper, merged): a small image and a container's view of it."""
    lower = tmp_path / "lower"
    for directory in ("etc", "usr/bin", "var/cache/app", "var/lib/keep", "opt/gone"):
        (lower / directory).mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (lower / "etc" / "motd").write_text("welcome\n")
    (lower / "usr" / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (lower / "var" / "cache" / "app" / "a").write_text("cached a\n")
    (lower / "var" / "cache" / "app" / "b").write_text("cached b\n")
    (lower / "var" / "lib" / "keep" / "k").write_text("kept\n")
    (lower / "opt" / "gone" / "file").write_text("to be removed with its directory\n")
    merged = tmp_path / "merged"
    upper = tmp_path / "upper"
    mount_overlay(lower, upper, tmp_path / "work", merged)
    try:
        yield lower, upper, merged
    finally:
        unmount(merged)


def test_the_layer_on_the_image_gives_back_what_the_container_saw(
    overlay: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    lower, upper, merged = overlay
    (merged / "etc" / "motd").write_text("changed\n")  # modified
    (merged / "etc" / "passwd").unlink()  # deleted: a whiteout
    shutil.rmtree(merged / "opt" / "gone")  # a deleted directory
    shutil.rmtree(merged / "var" / "cache" / "app")  # replaced: an opaque directory
    (merged / "var" / "cache" / "app").mkdir()
    (merged / "var" / "cache" / "app" / "fresh").write_text("new in the opaque dir\n")
    (merged / "srv" / "deep").mkdir(parents=True)  # added, nested
    (merged / "srv" / "deep" / "data").write_bytes(os.urandom(70_000))
    os.link(merged / "srv" / "deep" / "data", merged / "srv" / "hardlink")
    (merged / "srv" / "link").symlink_to("deep/data")
    os.mkfifo(merged / "srv" / "pipe")
    os.chown(merged / "srv" / "deep" / "data", 1000, 1001)
    (merged / "usr" / "bin" / "tool").chmod(0o4755)
    os.setxattr(merged / "usr" / "bin" / "tool", "security.capability", CAP_V2)
    (merged / "var" / "lib" / "keep").chmod(0o700)  # a directory's mode only

    data = layer_of(upper)
    found = members(data)
    assert found["etc/.wh.passwd"].isreg() and found["etc/.wh.passwd"].size == 0
    assert found["opt/.wh.gone"].isreg()
    assert "var/cache/app/.wh..wh..opq" in found
    assert found["srv/hardlink"].islnk() and found["srv/hardlink"].linkname == "srv/deep/data"
    assert found["usr/bin/tool"].pax_headers["SCHILY.xattr.security.capability"]
    assert not any("trusted.overlay" in key for m in found.values() for key in m.pax_headers)

    unpack(data, tmp_path / "layer")
    replay = tmp_path / "replay"
    mount_overlay(
        Path(f"{tmp_path / 'layer'}:{lower}"), tmp_path / "replay-upper", tmp_path / "rw", replay
    )
    try:
        assert tree(replay) == tree(merged)
    finally:
        unmount(replay)


def test_an_untouched_container_gives_an_empty_layer(overlay: tuple[Path, Path, Path]) -> None:
    _, upper, merged = overlay
    assert (merged / "etc" / "motd").read_text() == "welcome\n"  # reads copy nothing up
    assert members(layer_of(upper)) == {}


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    """A scratch upper dir of a container whose ids start at BASE, with what the runtime
    leaves there: its mount points, and the directories made to hold them."""
    root = tmp_path / "upper"
    for directory in ("etc", "proc", "sys", "dev", "data", "sbin"):
        (root / directory).mkdir(parents=True)
    for name in ("hostname", "hosts", "resolv.conf"):
        (root / "etc" / name).write_text("")
    (root / "sbin" / "docker-init").write_text("")
    (root / "data" / "mine").write_text("owned by container uid 1000\n")
    (root / "stranger").write_text("owned by a host uid outside the range\n")
    for path in [root, *root.rglob("*")]:
        os.chown(path, BASE, BASE, follow_symlinks=False)
    os.chown(root / "data" / "mine", BASE + 1000, BASE + 1000)
    os.chown(root / "stranger", 4242, 4242)
    os.mknod(root / "gone", stat.S_IFCHR, os.makedev(0, 0))  # made by the kernel as root
    return root


def test_runtime_mount_points_are_left_out_with_the_directories_made_for_them(
    upper: Path,
) -> None:
    found = members(layer_of(upper, base=BASE, ignore=(*RUNTIME_PATHS, "/sbin/docker-init")))
    assert set(found) == {"data", "data/mine", "stranger", ".wh.gone"}
    assert (found["data/mine"].uid, found["data/mine"].gid) == (1000, 1000)
    assert (found["data"].uid, found["data"].gid) == (0, 0)
    assert (found["stranger"].uid, found["stranger"].gid) == (65534, 65534)
    assert (found[".wh.gone"].uid, found[".wh.gone"].mode) == (0, 0)


def test_a_directory_above_a_mount_point_comes_along_with_other_changes(upper: Path) -> None:
    (upper / "etc" / "motd").write_text("mine\n")
    os.chown(upper / "etc" / "motd", BASE, BASE)
    os.mknod(upper / "etc" / "passwd", stat.S_IFCHR, os.makedev(0, 0))
    found = members(layer_of(upper, base=BASE, ignore=RUNTIME_PATHS))
    assert {"etc", "etc/motd", "etc/.wh.passwd"} <= set(found)
    assert not {"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "dev"} & set(found)
    names = list(found)
    assert names.index("etc") < names.index("etc/.wh.passwd")
    assert names.index("etc") < names.index("etc/motd")


def test_an_opaque_directory_above_a_mount_point_is_kept(upper: Path) -> None:
    os.setxattr(upper / "etc", OPAQUE, b"y")
    found = members(layer_of(upper, base=BASE, ignore=RUNTIME_PATHS))
    marker = found["etc/.wh..wh..opq"]
    assert found["etc"].isdir() and marker.isreg() and (marker.uid, marker.mode) == (0, 0o755)


def test_file_capabilities_lose_the_namespace_root_id(upper: Path) -> None:
    tool = upper / "data" / "tool"
    tool.write_text("#!/bin/sh\n")
    os.setxattr(tool, "security.capability", CAP_V3)
    found = members(layer_of(upper, base=BASE))
    value = found["data/tool"].pax_headers["SCHILY.xattr.security.capability"]
    assert value.encode("utf-8", "surrogateescape") == CAP_V2


def test_a_redirected_directory_fails_the_commit_rather_than_lose_files(upper: Path) -> None:
    os.setxattr(upper / "data", "trusted.overlay.redirect", b"/elsewhere")
    with pytest.raises(Unavailable):
        layer_of(upper, base=BASE)
