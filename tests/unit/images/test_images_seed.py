"""seed: a deterministic busybox image from the host's static busybox."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from dockyard.core.errors import NotFound
from dockyard.images.content import ContentStore
from dockyard.images.seed import busybox_rootfs_tar, seed_busybox

BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static")


def test_rootfs_tar_is_deterministic_and_complete() -> None:
    data = busybox_rootfs_tar()
    assert busybox_rootfs_tar() == data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar}
        names = list(members)
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
        group = tar.extractfile("etc/group").read().decode()  # type: ignore[union-attr]
        binary = tar.extractfile("bin/busybox").read()  # type: ignore[union-attr]
    assert names == sorted(names)
    assert binary == BUSYBOX.read_bytes()
    assert members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["bin/ls"].linkname == "busybox"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    for directory in (
        "dev",
        "proc",
        "sys",
        "etc",
        "root",
        "home",
        "var",
        "usr/bin",
        "usr/sbin",
        "sbin",
        "bin",
    ):
        assert members[directory].isdir(), directory
    assert {m.uid for m in members.values()} == {0}
    assert len({m.mtime for m in members.values()}) == 1
    assert "root:x:0:0:root:/root:/bin/sh" in passwd
    assert "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" in passwd
    assert group.startswith("root:x:0:")
    assert "nogroup:x:65534:" in group


def test_seed_busybox_is_stable(tmp_path: Path) -> None:
    first = seed_busybox(ContentStore(tmp_path / "a"), spool_dir=tmp_path)
    second = seed_busybox(
        ContentStore(tmp_path / "b"), spool_dir=tmp_path, tags=("docker.io/library/busybox:1",)
    )
    assert first.config_digest == second.config_digest
    assert first.repo_tags == ("busybox:latest",)
    assert second.repo_tags == ("busybox:1",)
    config = json.loads(first.config)
    assert config["config"] == {
        "Cmd": ["sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    }
    assert config["created"] == "2000-01-01T00:00:00Z"


def test_missing_busybox(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        busybox_rootfs_tar(tmp_path / "no-busybox")
