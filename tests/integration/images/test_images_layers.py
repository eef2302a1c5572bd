"""LayerStore on the real kernel, as root: what a layer becomes on disk, and what it cannot do."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from images_layer_builders import MTIME, LayerBuilder, diff_id

from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.images import layers as layers_module
from dockyard.images.content import ContentStore
from dockyard.images.layers import LayerStore

CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw=ep


def opener(data: bytes, calls: list[int] | None = None):  # type: ignore[no-untyped-def]
    @contextmanager
    def open_blob() -> Iterator[BinaryIO]:
        if calls is not None:
            calls.append(1)
        yield io.BytesIO(data)

    return open_blob


def ensure(store: LayerStore, data: bytes) -> Path:
    return store.ensure(diff_id(data), opener(data))


def assert_no_debris(store: LayerStore) -> None:
    leftovers = [p.name for p in store.root.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    assert leftovers == []


def test_public_surface() -> None:
    assert set(layers_module.__all__) == {"BlobOpener", "LayerStore"}


def test_entry_types_owners_modes_and_times(layers: LayerStore) -> None:
    data = (
        LayerBuilder()
        .dir("etc", mode=0o755)
        .file("etc/config", b"key=value\n", mode=0o640, uid=1000, gid=1001)
        .dir("usr/bin", mode=0o755)
        .file("usr/bin/su", b"\x7fELF", mode=0o4755)
        .file("usr/bin/sgid", b"x", mode=0o2711, gid=42)
        .file(
            "usr/bin/ping",
            b"\x7fELF ping",
            mode=0o755,
            xattrs={
                "security.capability": CAPABILITY,
                "user.note": b"hello",
                "trusted.overlay.redirect": b"/etc",
                "security.evil": b"x",
            },
        )
        .symlink("usr/bin/sh", "/bin/busybox")
        .hardlink("usr/bin/su-again", "usr/bin/su")
        .device("dev/null", char=True, major=1, minor=3)
        .device("dev/loop9", char=False, major=7, minor=9)
        .fifo("run/fifo")
        .dir("tmp", mode=0o1777)
        .dir("private", mode=0o700, uid=33, gid=33)
        .file("private/secret", b"s", mode=0o600, uid=33, gid=33)
        .build()
    )
    root = ensure(layers, data)
    assert root == layers.path(diff_id(data))
    assert layers.has(diff_id(data))
    assert layers.list() == [diff_id(data)]
    assert layers.size(diff_id(data)) == len(b"key=value\n") + 4 + 1 + len(b"\x7fELF ping") + 1

    config = (root / "etc/config").lstat()
    assert (config.st_uid, config.st_gid, stat.S_IMODE(config.st_mode)) == (1000, 1001, 0o640)
    assert config.st_mtime == MTIME
    assert (root / "etc/config").read_bytes() == b"key=value\n"
    assert stat.S_IMODE((root / "usr/bin/su").stat().st_mode) == 0o4755
    sgid = (root / "usr/bin/sgid").stat()
    assert (stat.S_IMODE(sgid.st_mode), sgid.st_gid) == (0o2711, 42)
    assert os.getxattr(root / "usr/bin/ping", "security.capability") == CAPABILITY
    assert os.getxattr(root / "usr/bin/ping", "user.note") == b"hello"
    names = os.listxattr(root / "usr/bin/ping")
    assert "trusted.overlay.redirect" not in names and "security.evil" not in names
    assert os.readlink(root / "usr/bin/sh") == "/bin/busybox"
    assert (root / "usr/bin/sh").lstat().st_mtime == MTIME
    assert (root / "usr/bin/su-again").stat().st_ino == (root / "usr/bin/su").stat().st_ino
    null = (root / "dev/null").lstat()
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    loop = (root / "dev/loop9").lstat()
    assert stat.S_ISBLK(loop.st_mode) and os.minor(loop.st_rdev) == 9
    assert stat.S_ISFIFO((root / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    private = (root / "private").stat()
    assert (private.st_uid, stat.S_IMODE(private.st_mode)) == (33, 0o700)
    assert private.st_mtime == MTIME  # set after its children were written
    assert_no_debris(layers)


def test_whiteouts_become_overlay_whiteouts(layers: LayerStore) -> None:
    data = (
        LayerBuilder()
        .file(".wh.removed")
        .dir("dir")
        .file("dir/.wh..wh..opq")
        .file("dir/kept", b"k")
        .file("deep/nested/.wh.gone")
        .file(".wh..wh.plnk")
        .file("both")
        .file(".wh.both")
        .build()
    )
    root = ensure(layers, data)
    removed = (root / "removed").lstat()
    assert stat.S_ISCHR(removed.st_mode) and removed.st_rdev == os.makedev(0, 0)
    assert stat.S_ISCHR((root / "deep/nested/gone").lstat().st_mode)
    assert os.getxattr(root / "dir", "trusted.overlay.opaque") == b"y"
    assert sorted(p.name for p in (root / "dir").iterdir()) == ["kept"]
    assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))
    assert (root / "both").is_file()  # a whiteout never hides its own layer's entry


def test_hostile_paths_stay_inside_the_layer(layers: LayerStore, workdir: Path) -> None:
    canary = workdir / "canary"
    canary.mkdir()
    secret = canary / "secret"
    secret.write_text("do not touch")
    data = (
        LayerBuilder()
        .file("../../etc/x", b"dotdot")
        .file("/abs/file", b"absolute")
        .symlink("a", "/")
        .file(f"a/{canary.relative_to('/')}/escape", b"through symlink")
        .symlink("c", str(canary))
        .file("c/escape2", b"through absolute symlink")
        .symlink("up", "../../../../../../..")
        .file(f"up/{canary.relative_to('/')}/escape3", b"through relative symlink")
        .build()
    )
    root = ensure(layers, data)
    assert sorted(p.name for p in canary.iterdir()) == ["secret"]
    assert secret.read_text() == "do not touch"
    assert (root / "etc/x").read_bytes() == b"dotdot"
    assert (root / "abs/file").read_bytes() == b"absolute"
    inside = root / canary.relative_to("/")
    assert sorted(p.name for p in inside.iterdir()) == ["escape", "escape2", "escape3"]


def test_hardlink_to_a_host_file_is_refused(layers: LayerStore, workdir: Path) -> None:
    secret = workdir / "secret"
    secret.write_text("host file")
    data = LayerBuilder().hardlink("stolen", str(secret)).build()
    with pytest.raises(InvalidArgument, match="invalid layer"):
        ensure(layers, data)
    assert secret.stat().st_nlink == 1
    assert layers.list() == []
    assert_no_debris(layers)


def test_digest_mismatch_keeps_nothing(layers: LayerStore) -> None:
    data = LayerBuilder().file("a", b"a").build()
    claimed = diff_id(b"something else")
    with pytest.raises(InvalidArgument, match="does not match its digest"):
        layers.ensure(claimed, opener(data))
    assert not layers.has(claimed)
    assert not (layers.root / claimed[7:]).exists()
    assert_no_debris(layers)


def test_garbage_is_an_invalid_layer(layers: LayerStore) -> None:
    data = b"definitely not a tar archive" * 100
    with pytest.raises(InvalidArgument):
        ensure(layers, data)
    assert layers.list() == []
    assert_no_debris(layers)


def test_missing_blob_error_propagates(layers: LayerStore, content: ContentStore) -> None:
    missing = diff_id(b"missing")
    with pytest.raises(NotFound):
        layers.ensure(missing, lambda: content.open(missing))
    assert_no_debris(layers)


def test_unpack_from_content_store_then_remove(layers: LayerStore, content: ContentStore) -> None:
    data = LayerBuilder().file("hello", b"world").build()
    blob = content.ingest([data])
    path = layers.ensure(blob.digest, lambda: content.open(blob.digest))
    assert (path / "hello").read_bytes() == b"world"
    layers.remove(blob.digest)
    layers.remove(blob.digest)  # absent: no error
    assert not layers.has(blob.digest)
    assert not path.exists()
    with pytest.raises(NotFound):
        layers.size(blob.digest)
    assert_no_debris(layers)


def test_concurrent_threads_unpack_once(layers: LayerStore) -> None:
    data = LayerBuilder().file("big", os.urandom(1 << 20)).build()
    calls: list[int] = []
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(layers.ensure(diff_id(data), opener(data, calls)))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(calls) == 1
    assert set(results) == {layers.path(diff_id(data))}


def test_concurrent_processes_unpack_once(layers: LayerStore, content: ContentStore) -> None:
    data = LayerBuilder().file("big", os.urandom(1 << 20)).build()
    blob = content.ingest([data])
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from dockyard.images.content import ContentStore\n"
        "from dockyard.images.layers import LayerStore\n"
        "c = ContentStore(Path(sys.argv[1])); s = LayerStore(Path(sys.argv[2]))\n"
        "print(s.ensure(sys.argv[3], lambda: c.open(sys.argv[3])))\n"
    )
    args = [sys.executable, "-c", script, str(content.root), str(layers.root), blob.digest]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4
    assert set(outputs) == {str(layers.path(blob.digest))}
    assert layers.list() == [blob.digest]
    assert_no_debris(layers)


def test_stale_temporary_directories_are_cleaned(layers: LayerStore) -> None:
    data = LayerBuilder().file("f", b"x").build()
    stale = layers.root / f".tmp-{diff_id(data)[7:]}-crashed"
    (stale / "diff").mkdir(parents=True)
    ensure(layers, data)
    assert not stale.exists()
    trash = layers.root / ".trash-crashed"
    trash.mkdir()
    LayerStore(layers.root)
    assert not trash.exists()


def test_gnu_tar_is_not_needed(layers: LayerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    data = LayerBuilder().file("f", b"x").build()
    assert (ensure(layers, data) / "f").read_bytes() == b"x"
