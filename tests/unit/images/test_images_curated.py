"""curated: deterministic busybox-based stand-ins for busybox, alpine and hello-world."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.core.errors import NotFound
from dockyard.images import curated
from dockyard.images._model import HOST_ARCH
from dockyard.images.content import ContentStore, sha256_digest
from dockyard.images.curated import (
    ALPINE_RELEASE,
    HELLO_TEXT,
    CuratedImage,
    build_curated,
    busybox_version,
)

BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static")
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ContentStore, list[CuratedImage]]:
    content = ContentStore(tmp_path_factory.mktemp("curated"))
    return content, build_curated(content)


def test_public_surface() -> None:
    assert set(curated.__all__) == {
        "ALPINE_RELEASE",
        "HELLO_TEXT",
        "CuratedImage",
        "build_curated",
        "busybox_version",
    }


def _by_name(images: list[CuratedImage]) -> dict[str, CuratedImage]:
    return {image.repository: image for image in images}


def _members(content: ContentStore, digest: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(content.read(digest))) as tar:
        for member in tar:
            data = tar.extractfile(member)
            out[member.name] = (member, data.read() if data else b"")
    return out


def test_same_binary_same_images(
    tmp_path: Path, built: tuple[ContentStore, list[CuratedImage]]
) -> None:
    again = build_curated(ContentStore(tmp_path / "again"))
    assert [(i.repository, i.tags, i.record) for i in again] == [
        (i.repository, i.tags, i.record) for i in built[1]
    ]
    # Building twice into the same store is harmless.
    assert build_curated(built[0]) == built[1]


def test_repositories_and_tags(built: tuple[ContentStore, list[CuratedImage]]) -> None:
    images = _by_name(built[1])
    assert list(images) == ["busybox", "alpine", "hello-world"]
    version = busybox_version()
    assert version is not None
    major_minor = version.rsplit(".", 1)[0]
    assert images["busybox"].tags == ("latest", major_minor, version)
    assert images["busybox"].record.repo_tags == (
        "busybox:latest",
        f"busybox:{major_minor}",
        f"busybox:{version}",
    )
    assert images["alpine"].tags == ("3.10", "latest")
    assert images["hello-world"].tags == ("latest",)


def test_version_comes_from_the_binary() -> None:
    banner = subprocess.run([str(BUSYBOX)], capture_output=True, text=True, check=False).stdout
    assert banner.startswith(f"BusyBox v{busybox_version()} ")


def test_configs_are_dockers_form_and_stored(
    built: tuple[ContentStore, list[CuratedImage]],
) -> None:
    content, images = built
    cmds = {"busybox": ["sh"], "alpine": ["/bin/sh"], "hello-world": ["/hello"]}
    for image in images:
        record = image.record
        assert record.config_digest == sha256_digest(record.config)
        assert content.read(record.config_digest) == record.config
        config = json.loads(record.config)
        assert config["architecture"] == HOST_ARCH
        assert config["os"] == "linux"
        assert config["created"] == "2000-01-01T00:00:00Z"
        assert config["config"]["Env"] == [_PATH]
        assert config["config"]["Cmd"] == cmds[image.repository]
        label = config["config"]["Labels"]["org.opencontainers.image.description"]
        assert "Dockyard stand-in" in label and "Debian busybox-static" in label
        assert config["rootfs"] == {"type": "layers", "diff_ids": list(record.diff_ids)}
        assert len(config["history"]) == len(record.diff_ids)
        for digest, size in zip(record.diff_ids, record.layer_sizes, strict=True):
            assert content.size(digest) == size
            assert sha256_digest(content.read(digest)) == digest


def test_alpine_is_busybox_plus_release_files(
    built: tuple[ContentStore, list[CuratedImage]],
) -> None:
    content, images = built
    busybox, alpine = _by_name(images)["busybox"], _by_name(images)["alpine"]
    assert alpine.record.diff_ids[0] == busybox.record.diff_ids[0]
    top = _members(content, alpine.record.diff_ids[1])
    assert sorted(top) == ["etc", "etc/alpine-release", "etc/os-release"]
    assert top["etc/alpine-release"][1] == f"{ALPINE_RELEASE}\n".encode()
    os_release = dict(line.split("=", 1) for line in top["etc/os-release"][1].decode().splitlines())
    assert os_release["ID"] == "alpine"
    assert os_release["VERSION_ID"] == ALPINE_RELEASE
    assert "stand-in" in os_release["NAME"]


def test_hello_world_prints_dockers_greeting(
    tmp_path: Path, built: tuple[ContentStore, list[CuratedImage]]
) -> None:
    content, images = built
    hello = _by_name(images)["hello-world"]
    (layer,) = hello.record.diff_ids
    members = _members(content, layer)
    assert sorted(members) == ["bin", "bin/busybox", "bin/sh", "dev", "etc", "hello", "proc", "sys"]
    assert members["bin/busybox"][1] == BUSYBOX.read_bytes()
    assert members["bin/sh"][0].linkname == "busybox"
    info, script = members["hello"]
    assert info.mode == 0o755 and script.startswith(b"#!/bin/busybox sh\n")
    # The script names only /bin/busybox, which the host has too: run it here.
    path = tmp_path / "hello"
    path.write_bytes(script)
    path.chmod(0o755)
    out = subprocess.run([str(path)], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout == HELLO_TEXT
    assert out.stdout.startswith(
        "\nHello from Docker!\n"
        "This message shows that your installation appears to be working correctly.\n"
    )


def test_missing_busybox(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        build_curated(ContentStore(tmp_path / "c"), busybox=tmp_path / "no-busybox")
