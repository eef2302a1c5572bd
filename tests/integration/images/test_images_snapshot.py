"""Snapshotter on the real kernel: idmapped layers under overlayfs, as a tenant sees them."""

from __future__ import annotations

import functools
import io
import os
import stat
import subprocess
from pathlib import Path

import pytest
from images_layer_builders import LayerBuilder, diff_id

from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.images import idmap, snapshot
from dockyard.images.idmap import idmap_mount, userns_fd
from dockyard.images.layers import LayerStore
from dockyard.images.snapshot import Snapshotter, mountpoints

UID_BASE = 1_000_000_000  # far from any uid in use on the host
UID_SIZE = 65536

BOTTOM = (
    LayerBuilder()
    .dir("etc")
    .file("etc/owned-by-root", b"root file\n")
    .file("etc/owned-by-1000", b"user file\n", uid=1000, gid=1000)
    .file("etc/edit-me", b"original\n")
    .dir("data")
    .file("data/old-1", b"1")
    .file("data/old-2", b"2")
    .file("gone", b"to be whited out")
    .dir("tmp", mode=0o1777)
    .build()
)
TOP = (
    LayerBuilder()
    .file(".wh.gone")
    .dir("data")
    .file("data/.wh..wh..opq")
    .file("data/new", b"new")
    .build()
)


@pytest.fixture
def stack(layers: LayerStore) -> list[str]:
    ids = []
    for data in (BOTTOM, TOP):
        layers.ensure(diff_id(data), functools.partial(io.BytesIO, data))
        ids.append(diff_id(data))
    return ids


@pytest.fixture
def snapshotter(layers: LayerStore, workdir: Path) -> Snapshotter:
    return Snapshotter(layers, workdir / "idmapped")


def mount(snapshotter: Snapshotter, workdir: Path, name: str, ids: list[str]) -> Path:
    container = workdir / "containers" / name
    snapshotter.mount_rootfs(
        layers=ids,
        uid_base=UID_BASE,
        uid_size=UID_SIZE,
        upper=container / "upper",
        work=container / "work",
        target=container / "rootfs",
    )
    return container


def as_tenant_root(cwd: Path, script: str) -> None:
    """Run ``script`` as host uid UID_BASE, i.e. the container's root, from ``cwd``."""
    subprocess.run(
        ["/bin/sh", "-c", script],
        cwd=cwd,
        user=UID_BASE,
        group=UID_BASE,
        extra_groups=[],
        check=True,
        timeout=30,
    )


def test_public_surface() -> None:
    assert set(snapshot.__all__) == {"Snapshotter", "is_mount_root", "mountpoints"}
    assert set(idmap.__all__) == {"idmap_mount", "userns_fd"}


def test_merged_view_is_idmapped_and_writes_land_in_upper(
    snapshotter: Snapshotter, stack: list[str], workdir: Path, layers: LayerStore
) -> None:
    container = mount(snapshotter, workdir, "c1", stack)
    rootfs, upper = container / "rootfs", container / "upper"
    assert str(rootfs) in mountpoints()

    assert (rootfs / "etc/owned-by-root").stat().st_uid == UID_BASE
    assert (rootfs / "etc/owned-by-root").stat().st_gid == UID_BASE
    assert (rootfs / "etc/owned-by-1000").stat().st_uid == UID_BASE + 1000
    assert rootfs.stat().st_uid == UID_BASE
    for path in (upper, container / "work"):
        info = path.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (UID_BASE, UID_BASE, 0o755)

    # Whiteouts and opaque directories hide the lower layer.
    assert not (rootfs / "gone").exists()
    assert sorted(p.name for p in (rootfs / "data").iterdir()) == ["new"]

    as_tenant_root(
        rootfs, "echo hello > created && echo changed > etc/edit-me && rm etc/owned-by-1000"
    )
    created = (upper / "created").stat()
    assert (created.st_uid, created.st_gid) == (UID_BASE, UID_BASE)
    assert (upper / "created").read_text() == "hello\n"
    assert (upper / "etc/edit-me").stat().st_uid == UID_BASE
    assert (upper / "etc/edit-me").read_text() == "changed\n"
    whiteout = (upper / "etc/owned-by-1000").lstat()
    assert stat.S_ISCHR(whiteout.st_mode)

    # The shared layer itself is untouched.
    bottom = layers.path(stack[0])
    assert (bottom / "etc/edit-me").read_text() == "original\n"
    assert (bottom / "etc/edit-me").stat().st_uid == 0
    assert (bottom / "etc/owned-by-1000").exists()

    snapshotter.unmount_rootfs(rootfs)
    snapshotter.unmount_rootfs(rootfs)  # not mounted any more: fine
    assert str(rootfs) not in mountpoints()


def test_idmapped_layers_are_shared_and_found_again(
    snapshotter: Snapshotter, stack: list[str], workdir: Path, layers: LayerStore
) -> None:
    mount(snapshotter, workdir, "c1", stack)
    mount(snapshotter, workdir, "c2", stack[:1])
    # A new Snapshotter, as after an agent restart, reuses the existing mounts.
    Snapshotter(layers, workdir / "idmapped").mount_rootfs(
        layers=stack,
        uid_base=UID_BASE,
        uid_size=UID_SIZE,
        upper=workdir / "c3/upper",
        work=workdir / "c3/work",
        target=workdir / "c3/rootfs",
    )
    points = [p for p in mountpoints() if p.startswith(str(workdir / "idmapped"))]
    assert sorted(points) == sorted(str(snapshotter.idmapped_path(UID_BASE, d)) for d in stack)
    all_points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in points:
        assert all_points.count(point) == 1

    # Releasing idmaps does not disturb running overlays.
    snapshotter.release_idmaps(UID_BASE, keep={stack[0]})
    remaining = [p for p in mountpoints() if p.startswith(str(workdir / "idmapped"))]
    assert remaining == [str(snapshotter.idmapped_path(UID_BASE, stack[0]))]
    assert not snapshotter.idmapped_path(UID_BASE, stack[1]).exists()
    assert (workdir / "containers/c1/rootfs/data/new").read_bytes() == b"new"
    snapshotter.release_idmaps(UID_BASE, keep=set())
    assert [p for p in mountpoints() if p.startswith(str(workdir / "idmapped"))] == []
    assert (workdir / "c3/rootfs/etc/owned-by-root").stat().st_uid == UID_BASE


def test_duplicate_layers_in_a_stack(
    snapshotter: Snapshotter, stack: list[str], workdir: Path
) -> None:
    container = mount(snapshotter, workdir, "dup", [stack[0], stack[1], stack[0]])
    assert (container / "rootfs/etc/owned-by-root").exists()


def test_failed_mount_leaves_nothing(
    snapshotter: Snapshotter, stack: list[str], workdir: Path
) -> None:
    container = workdir / "containers" / "bad"
    before = mountpoints()
    with pytest.raises(Exception, match="overlay mount"):
        snapshotter.mount_rootfs(
            layers=stack,
            uid_base=UID_BASE,
            uid_size=UID_SIZE,
            upper=container / "upper",
            work=container / "upper" / "work",  # overlayfs refuses a workdir inside upperdir
            target=container / "rootfs",
        )
    assert mountpoints() == before
    assert not container.exists()


def test_argument_errors(snapshotter: Snapshotter, stack: list[str], workdir: Path) -> None:
    kwargs = {
        "uid_base": UID_BASE,
        "uid_size": UID_SIZE,
        "upper": workdir / "u",
        "work": workdir / "w",
        "target": workdir / "t",
    }
    with pytest.raises(NotFound):
        snapshotter.mount_rootfs(layers=[diff_id(b"not unpacked")], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        snapshotter.mount_rootfs(layers=[], **kwargs)  # type: ignore[arg-type]
    many = [diff_id(str(i).encode()) for i in range(60)]
    with pytest.raises(InvalidArgument, match="too many layers"):
        snapshotter.mount_rootfs(layers=many, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="unusable"):
        snapshotter.mount_rootfs(
            layers=stack,
            **{**kwargs, "upper": workdir / "a,b"},  # type: ignore[arg-type]
        )
    assert not (workdir / "u").exists()


def test_userns_fd_is_cached_and_idmap_mount_works(workdir: Path) -> None:
    fd = userns_fd(UID_BASE, UID_SIZE)
    assert userns_fd(UID_BASE, UID_SIZE) == fd
    assert os.readlink(f"/proc/self/fd/{fd}").startswith("user:[")
    with pytest.raises(InvalidArgument):
        userns_fd(0, UID_SIZE)
    source = workdir / "src"
    source.mkdir()
    (source / "f").write_text("x")
    target = workdir / "mapped"
    idmap_mount(source, target, userns_fd=fd)
    assert (target / "f").stat().st_uid == UID_BASE
    with pytest.raises(OSError, match="Read-only"):
        (target / "g").write_text("y")


def test_is_mount_root_tells_a_bind_mount_on_the_same_file_system(workdir: Path) -> None:
    source, target = workdir / "source", workdir / "target"
    source.mkdir()
    target.mkdir()
    assert not snapshot.is_mount_root(target)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        # Same device and a different inode than its parent: only the kernel can tell.
        assert target.stat().st_dev == workdir.stat().st_dev
        assert snapshot.is_mount_root(target)
        assert not snapshot.is_mount_root(source)
        assert str(target) in mountpoints()
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert not snapshot.is_mount_root(target)
    assert not snapshot.is_mount_root(workdir / "missing")
