"""ContentStore: blobs by digest, atomic writes, digest validation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from images_builders import sha

from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.images import content
from dockyard.images.content import Blob, ContentStore


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def leftovers(store: ContentStore) -> list[Path]:
    return sorted((store.root / "tmp").iterdir())


def test_public_surface() -> None:
    assert set(content.__all__) == {
        "Blob",
        "BlobWriter",
        "ContentStore",
        "digest_hex",
        "sha256_digest",
    }


def test_ingest_bytes_file_and_chunks(store: ContentStore) -> None:
    data = b"hello world" * 1000
    blob = store.ingest(io.BytesIO(data))
    assert blob == Blob(digest=sha(data), size=len(data))
    assert store.path(blob.digest) == store.root / "sha256" / blob.digest.removeprefix("sha256:")
    assert store.has(blob.digest)
    assert store.size(blob.digest) == len(data)
    with store.open(blob.digest) as reader:
        assert reader.read() == data
    assert store.ingest([b"hello ", b"world"] * 1).digest == sha(b"hello world")
    assert sorted(store.digests()) == sorted([blob.digest, sha(b"hello world")])
    assert leftovers(store) == []


def test_ingest_twice_is_idempotent(store: ContentStore) -> None:
    first = store.ingest([b"same"])
    second = store.ingest([b"same"])
    assert first == second
    assert list(store.digests()) == [first.digest]


def test_expected_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument, match="mismatch"):
        store.ingest([b"data"], expected=sha(b"other"))
    assert list(store.digests()) == []
    assert leftovers(store) == []
    assert store.ingest([b"data"], expected=sha(b"data")).size == 4


def test_writer_commit_and_abandon(store: ContentStore) -> None:
    with store.writer() as writer:
        writer.write(b"abc")
        writer.write(b"def")
        assert writer.digest == sha(b"abcdef")
        assert writer.size == 6
        blob = writer.commit()
    assert store.read(blob.digest) == b"abcdef"
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")

    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"half a blob")
        raise RuntimeError("boom")
    assert not store.has(sha(b"half a blob"))
    assert leftovers(store) == []

    with store.writer() as writer:
        writer.write(b"never committed")
    assert not store.has(sha(b"never committed"))
    assert leftovers(store) == []


def test_missing_blobs(store: ContentStore) -> None:
    missing = sha(b"missing")
    assert not store.has(missing)
    with pytest.raises(NotFound):
        store.open(missing)
    with pytest.raises(NotFound):
        store.size(missing)
    store.delete(missing)  # no error


def test_delete(store: ContentStore) -> None:
    blob = store.ingest([b"x"])
    store.delete(blob.digest)
    assert not store.has(blob.digest)
    assert list(store.digests()) == []


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../etc/passwd",
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 64 + "/x",
        "a" * 64,
        "",
    ],
)
def test_invalid_digests_are_refused(store: ContentStore, digest: str) -> None:
    with pytest.raises(InvalidArgument):
        store.path(digest)
    with pytest.raises(InvalidArgument):
        store.has(digest)
    with pytest.raises(InvalidArgument):
        store.ingest([b"x"], expected=digest)
    assert leftovers(store) == []


def test_digests_ignores_foreign_files(store: ContentStore) -> None:
    (store.root / "sha256" / "not-a-digest").write_bytes(b"")
    blob = store.ingest([b"x"])
    assert list(store.digests()) == [blob.digest]
