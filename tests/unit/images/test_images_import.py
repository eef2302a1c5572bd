"""import_rootfs: ``docker import`` of plain and compressed filesystem tarballs."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from collections.abc import Callable
from pathlib import Path

import pytest
from images_builders import NonSeekable, layer_tar, sha

from dockyard.core.errors import InvalidArgument
from dockyard.images.archive import image_config, import_rootfs
from dockyard.images.content import ContentStore

ROOTFS = layer_tar({"bin/sh": b"#!shell", "etc/hostname": b"box\n"})
CREATED = 1_700_000_000_123_456_789


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def identity(data: bytes) -> bytes:
    return data


@pytest.mark.parametrize(
    "compress",
    [identity, gzip.compress, bz2.compress, lzma.compress],
    ids=["plain", "gzip", "bzip2", "xz"],
)
def test_import_stores_one_uncompressed_layer(
    store: ContentStore, tmp_path: Path, compress: Callable[[bytes], bytes]
) -> None:
    record = import_rootfs(
        NonSeekable(compress(ROOTFS)),  # type: ignore[arg-type]
        store,
        spool_dir=tmp_path,
        created=CREATED,
    )
    assert record.diff_ids == (sha(ROOTFS),)
    assert record.layer_sizes == (len(ROOTFS),)
    assert record.repo_tags == ()
    assert record.config_digest == sha(record.config)
    assert store.read(sha(ROOTFS)) == ROOTFS
    config = image_config(store, record.config_digest)
    assert config == {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20.123456789Z",
        "comment": "Imported from -",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha(ROOTFS)]},
        "history": [
            {
                "created": "2023-11-14T22:13:20.123456789Z",
                "created_by": "",
                "comment": "Imported from -",
            }
        ],
    }


def test_import_is_deterministic_with_a_fixed_time(store: ContentStore, tmp_path: Path) -> None:
    first = import_rootfs(io.BytesIO(ROOTFS), store, spool_dir=tmp_path, created=CREATED)
    second = import_rootfs(
        io.BytesIO(gzip.compress(ROOTFS)), store, spool_dir=tmp_path, created=CREATED
    )
    assert first == second


def test_import_with_changes_and_message(store: ContentStore, tmp_path: Path) -> None:
    record = import_rootfs(
        io.BytesIO(ROOTFS),
        store,
        changes=['CMD ["sh"]', "ENV A=1 B=2", "EXPOSE 80", "WORKDIR /srv"],
        message="my import",
        spool_dir=tmp_path,
    )
    config = json.loads(record.config)
    assert config["config"] == {
        "Cmd": ["sh"],
        "Env": ["A=1", "B=2"],
        "ExposedPorts": {"80/tcp": {}},
        "WorkingDir": "/srv",
    }
    assert config["history"][0]["comment"] == "my import"
    assert config["created"].endswith("Z")


def test_bad_change_stores_nothing(store: ContentStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        import_rootfs(io.BytesIO(ROOTFS), store, changes=["RUN rm -rf /"], spool_dir=tmp_path)
    assert list(store.digests()) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"this is not a tar archive" * 100,
        gzip.compress(b"not a tar either" * 100),
        gzip.compress(ROOTFS)[:-40],
    ],
    ids=["empty", "garbage", "gzip-garbage", "truncated-gzip"],
)
def test_not_a_tarball(store: ContentStore, tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        import_rootfs(io.BytesIO(data), store, spool_dir=tmp_path)
    assert list(store.digests()) == []
    assert list((store.root / "tmp").iterdir()) == []
