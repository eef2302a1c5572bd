"""The archive child on the real kernel: a scratch directory plays a container's rootfs.

Every test keeps a host canary file outside the rootfs and checks it is untouched; every
hostile archive must be refused with InvalidArgument and leave the rootfs as it was.
Needs root (unshare, pivot_root, mknod, chown).
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.core.errors import InvalidArgument, NotFound, PermissionDenied
from dockyard.core.protocol import PathStat
from dockyard.core.serde import from_data
from dockyard.runtime.archive import ArchiveProcess
from dockyard.runtime.archive_child import ArchiveRequest
from dockyard.runtime.rootview import Bind

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

BASE = 300_000
SIZE = 65536


class Scene:
    """A rootfs, a volume, a canary on the host, and helpers to run the child."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rootfs = tmp / "rootfs"
        self.volume = tmp / "volume"
        self.canary = tmp / "canary"
        for directory in ("etc", "tmp", "data", "dev", "bin"):
            (self.rootfs / directory).mkdir(parents=True)
        self.volume.mkdir()
        (self.rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (self.rootfs / "escape").symlink_to("/")
        (self.rootfs / "up").symlink_to("../../../../..")
        (self.rootfs / "abs").symlink_to(str(tmp))
        (self.volume / "in-volume").write_text("volume data\n")
        (self.volume / "out").symlink_to("/")
        os.mknod(self.rootfs / "dev" / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        for path in [self.rootfs, *self.rootfs.rglob("*"), self.volume, *self.volume.rglob("*")]:
            os.chown(path, BASE, BASE, follow_symlinks=False)
        self.canary.write_text("host canary\n")
        os.utime(self.canary, (1_000_000_000, 1_000_000_000))
        self.canary_state = (self.canary.read_bytes(), os.stat(self.canary).st_mtime_ns)

    def request(self, op: str, **fields: Any) -> ArchiveRequest:
        binds = (Bind(str(self.volume), "/data", read_only=fields.pop("volume_ro", False)),)
        return ArchiveRequest(
            op=op,
            rootfs=str(self.rootfs),
            uid_base=BASE,
            uid_size=SIZE,
            binds=binds,
            spool_dir=str(self.tmp),
            **fields,
        )

    def stat(self, path: str) -> PathStat:
        async def go() -> PathStat:
            child = await ArchiveProcess.start(self.request("stat", path=path))
            try:
                return from_data(PathStat, (await child.answer())["stat"])
            finally:
                await child.close()

        return asyncio.run(go())

    def get(self, path: str, op: str = "get") -> tuple[dict[str, Any], tarfile.TarFile]:
        async def go() -> tuple[dict[str, Any], bytes]:
            child = await ArchiveProcess.start(self.request(op, path=path))
            try:
                head = await child.answer()
                return head, b"".join([chunk async for chunk in child.chunks()])
            finally:
                await child.close()

        head, data = asyncio.run(go())
        return head, tarfile.open(fileobj=io.BytesIO(data))

    def put(self, data: bytes, path: str = "/tmp", *, abort: bool = False, **fields: Any) -> None:
        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 7000):
                yield data[start : start + 7000]
            if abort:
                raise ConnectionResetError("client went away")

        async def go() -> None:
            child = await ArchiveProcess.start(self.request("put", path=path, **fields))
            try:
                await child.feed(body())
                await child.answer()
            finally:
                await child.close()

        asyncio.run(go())

    def tree(self) -> dict[str, tuple[int, int, int, bytes]]:
        found = {}
        for root in (self.rootfs, self.volume):
            for path in [root, *root.rglob("*")]:
                st = os.lstat(path)
                content = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
                found[str(path)] = (st.st_mode, st.st_uid, st.st_nlink, content)
        return found

    def assert_host_untouched(self) -> None:
        assert (self.canary.read_bytes(), os.stat(self.canary).st_mtime_ns) == self.canary_state
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(self.tmp) not in mounts


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    made = Scene(tmp_path)
    yield made
    made.assert_host_untouched()


def tar_of(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: Any) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_500_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data if kind == tarfile.REGTYPE else None


# reading -----------------------------------------------------------------------------


def test_symlinks_pointing_out_resolve_inside_the_root(scene: Scene) -> None:
    canary = str(scene.canary)
    for path in (f"/escape{canary}", f"/up{canary}", f"/data/out{canary}", "/abs/canary"):
        with pytest.raises(NotFound):
            scene.get(path)
    # The links themselves are stat-able, their targets resolved within the container.
    assert scene.stat("/escape").link_target == "/"
    assert scene.stat("/up").link_target == "/"
    assert scene.stat("/data/out").link_target == "/"
    # Followed with a trailing slash, /escape/ is the container's root, not the host's.
    head, tar = scene.get("/escape/")
    assert head["stat"]["name"] == "escape"
    names = tar.getnames()
    assert "escape/etc/passwd" in names and "escape/data/in-volume" in names
    assert not any("canary" in name for name in names)


def test_get_names_and_ids_follow_docker(scene: Scene) -> None:
    head, tar = scene.get("/etc/passwd")
    assert head["stat"]["name"] == "passwd" and not head["stat"]["link_target"]
    (member,) = tar.getmembers()
    assert (member.name, member.uid, member.gid) == ("passwd", 0, 0)
    assert tar.extractfile(member).read() == b"root:x:0:0::/root:/bin/sh\n"  # type: ignore[union-attr]
    _, tar = scene.get("/data/.")
    assert sorted(tar.getnames()) == [".", "./in-volume", "./out"]
    _, tar = scene.get("/escape")
    (link,) = tar.getmembers()
    assert link.issym() and link.linkname == "/"
    head, tar = scene.get("/")  # Docker names the root's entries "/", "/bin", ...
    assert head["stat"]["name"] == "/"
    first, *_ = tar.getmembers()
    assert first.isdir() and first.name == ""  # written "/", read back by Python as ""
    assert {"/etc/passwd", "/data/in-volume"} <= set(tar.getnames())


def test_device_nodes_are_archived_as_entries_never_read(scene: Scene) -> None:
    _, tar = scene.get("/dev")
    zero = tar.getmember("dev/zero")
    assert zero.ischr() and (zero.devmajor, zero.devminor) == (1, 5) and zero.size == 0


def test_hard_links_in_the_tree_are_archived_as_links(scene: Scene) -> None:
    os.link(scene.rootfs / "etc" / "passwd", scene.rootfs / "etc" / "passwd-")
    _, tar = scene.get("/etc")
    second = tar.getmember("etc/passwd-")
    assert second.islnk() and second.linkname == "etc/passwd"


def test_missing_paths_and_files_used_as_directories_are_not_found(scene: Scene) -> None:
    for path in ("/nope", "/etc/passwd/x", "/etc/passwd/"):
        with pytest.raises(NotFound):
            scene.stat(path)


def test_export_is_the_rootfs_without_volumes(scene: Scene) -> None:
    _, tar = scene.get("", op="export")
    names = tar.getnames()
    assert "etc/passwd" in names and "data" in names
    assert "data/in-volume" not in names
    assert all(not name.startswith(("/", "./")) for name in names)


# writing -----------------------------------------------------------------------------


def test_an_upload_lands_inside_with_the_container_roots_ids(scene: Scene) -> None:
    scene.put(
        tar_of(
            entry("d", tarfile.DIRTYPE, mode=0o750),
            entry("d/f", data=b"hello", uid=1000, gid=1000),
            entry("d/h", tarfile.LNKTYPE, linkname="d/f"),
            entry("d/s", tarfile.SYMTYPE, linkname="/etc/passwd"),
            entry("implied/deep/g", data=b"x"),
        )
    )
    d = scene.rootfs / "tmp" / "d"
    assert (d / "f").read_bytes() == b"hello"
    assert os.stat(d / "f").st_ino == os.stat(d / "h").st_ino
    assert os.readlink(d / "s") == "/etc/passwd"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o750
    assert os.stat(d).st_mtime == 1_500_000_000
    for path in (d, d / "f", d / "s", scene.rootfs / "tmp" / "implied" / "deep"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (BASE, BASE)


def test_copy_uid_gid_keeps_the_archive_ids_shifted_into_the_range(scene: Scene) -> None:
    scene.put(tar_of(entry("owned", data=b"x", uid=1000, gid=2000)), keep_ids=True)
    st = os.stat(scene.rootfs / "tmp" / "owned")
    assert (st.st_uid, st.st_gid) == (BASE + 1000, BASE + 2000)


def test_compressed_uploads_are_accepted(scene: Scene) -> None:
    scene.put(gzip.compress(tar_of(entry("gz", data=b"g"))))
    scene.put(lzma.compress(tar_of(entry("xz", data=b"x"))))
    scene.put(bz2.compress(tar_of(entry("bz2", data=b"b"))))
    assert (scene.rootfs / "tmp" / "bz2").read_bytes() == b"b"
    assert (scene.rootfs / "tmp" / "gz").read_bytes() == b"g"
    assert (scene.rootfs / "tmp" / "xz").read_bytes() == b"x"


def test_writes_into_a_volume_reach_the_volume(scene: Scene) -> None:
    scene.put(tar_of(entry("new", data=b"v")), path="/data")
    assert (scene.volume / "new").read_bytes() == b"v"
    assert not (scene.rootfs / "data" / "new").exists()


def hostile(scene: Scene) -> dict[str, bytes]:
    canary = str(scene.canary).lstrip("/")
    return {
        "symlink to / then a file through it": tar_of(
            entry("escape2", tarfile.SYMTYPE, linkname="/"),
            entry(f"escape2/{canary}", data=b"PWNED"),
        ),
        "relative symlink then through it": tar_of(
            entry("up2", tarfile.SYMTYPE, linkname="../../../../../../.."),
            entry(f"up2/{canary}", data=b"PWNED"),
        ),
        "dot-dot names": tar_of(entry(f"../../../../../../../{canary}", data=b"PWNED")),
        "absolute names": tar_of(entry(f"/{canary}", data=b"PWNED")),
        "hard link to the host canary": tar_of(
            entry("h", tarfile.LNKTYPE, linkname=str(scene.canary))
        ),
        "hard link to /etc/passwd": tar_of(entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")),
        "hard link climbing out": tar_of(
            entry("h", tarfile.LNKTYPE, linkname=f"../../../../../{canary}")
        ),
        "character device": tar_of(entry("mem", tarfile.CHRTYPE, devmajor=1, devminor=1)),
        "block device": tar_of(entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)),
        "setuid binary": tar_of(entry("su", data=b"\x7fELF", mode=0o4755)),
        "setgid binary": tar_of(entry("sg", data=b"\x7fELF", mode=0o2755)),
        "good entries first, a device last": tar_of(
            entry("fine", data=b"fine"), entry("dev2", tarfile.CHRTYPE, devmajor=1, devminor=5)
        ),
        "truncated": tar_of(entry("t", data=b"x" * 10000))[:3000],
        "not a tar": b"\x00garbage" * 500,
    }


@pytest.mark.parametrize("path", ["/tmp", "/", "/data", "/escape/tmp"])
def test_hostile_archives_are_refused_and_leave_nothing(scene: Scene, path: str) -> None:
    before = scene.tree()
    for name, data in hostile(scene).items():
        with pytest.raises(InvalidArgument):
            scene.put(data, path=path)
        assert scene.tree() == before, name


def test_ids_outside_the_range_are_refused_with_copy_uid_gid(scene: Scene) -> None:
    before = scene.tree()
    with pytest.raises(InvalidArgument, match="outside the container's id range"):
        scene.put(tar_of(entry("f", data=b"x", uid=SIZE)), keep_ids=True)
    assert scene.tree() == before


def test_an_aborted_upload_writes_nothing(scene: Scene) -> None:
    before = scene.tree()
    with pytest.raises(ConnectionResetError):
        scene.put(tar_of(entry("partial", data=b"x" * 100_000)), abort=True)
    assert scene.tree() == before


def test_destination_errors(scene: Scene) -> None:
    data = tar_of(entry("f", data=b"x"))
    with pytest.raises(NotFound):
        scene.put(data, path="/missing")
    with pytest.raises(InvalidArgument, match="extraction point is not a directory"):
        scene.put(data, path="/etc/passwd")


def test_no_overwrite_dir_non_dir(scene: Scene) -> None:
    before = scene.tree()
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        scene.put(
            tar_of(entry("ok", data=b"x"), entry("etc", data=b"x")),
            path="/",
            no_overwrite_dir_non_dir=True,
        )
    assert scene.tree() == before


def test_read_only_root_and_volume_are_refused(scene: Scene) -> None:
    data = tar_of(entry("f", data=b"x"))
    with pytest.raises(PermissionDenied, match="container rootfs is marked read-only"):
        scene.put(data, read_only_root=True)
    with pytest.raises(PermissionDenied, match="mounted volume is marked read-only"):
        scene.put(data, path="/data", volume_ro=True)
    scene.put(data, path="/data", read_only_root=True)  # a writable volume still is
    assert (scene.volume / "f").exists()


def test_an_existing_device_node_is_replaced_not_written_through(scene: Scene) -> None:
    scene.put(tar_of(entry("zero", data=b"not a device")), path="/dev")
    assert (scene.rootfs / "dev" / "zero").read_bytes() == b"not a device"


# the view itself -----------------------------------------------------------------------

_PROBE = """
import json, os, sys
from pathlib import Path
from dockyard.runtime.rootview import Bind, enter_root_view
rootfs, volume, canary = sys.argv[1:4]
enter_root_view(Path(rootfs), [Bind(volume, "/data")], read_only_root=False, owner=0)
try:
    os.open("/dev/zero", os.O_RDONLY)
    device = "opened"
except PermissionError:
    device = "refused"
print(json.dumps({
    "root": sorted(os.listdir("/")),
    "volume": sorted(os.listdir("/data")),
    "canary": os.path.exists(canary),
    "parent": sorted(os.listdir("/..")),
    "device": device,
}))
"""


def test_the_view_holds_the_container_and_nothing_of_the_host(scene: Scene) -> None:
    import json
    import subprocess
    import sys

    import dockyard

    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(scene.rootfs), str(scene.volume), str(scene.canary)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(dockyard.__file__).parents[1])},
    )
    seen = json.loads(probe.stdout)
    assert seen["root"] == sorted(os.listdir(scene.rootfs))
    assert seen["parent"] == seen["root"]  # ".." of "/" is "/"
    assert seen["volume"] == sorted(os.listdir(scene.volume))
    assert seen["canary"] is False
    assert seen["device"] == "refused"  # nodev: even root cannot open a device node
