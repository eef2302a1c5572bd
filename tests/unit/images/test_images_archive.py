"""load_archive / save_archive / image_config on archives built here with tarfile."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from images_builders import (
    Image,
    Member,
    NonSeekable,
    WriteOnly,
    config_json,
    docker_members,
    hexof,
    layer_tar,
    oci_members,
    sha,
    tar_of,
)

from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.images import archive
from dockyard.images.archive import ImageRecord, image_config, load_archive, save_archive
from dockyard.images.content import ContentStore

BASE = layer_tar({"bin/sh": b"#!shell", "etc/os-release": b"ID=test\n"})
APP = layer_tar({"app/main": b"print('hi')"})
OTHER = layer_tar({"other/file": b"other"})


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


def load(data: bytes, store: ContentStore, spool: Path) -> list[ImageRecord]:
    records = load_archive(io.BytesIO(data), store, spool_dir=spool)
    assert list(spool.iterdir()) == []
    return records


def assert_stored(store: ContentStore, image: Image) -> None:
    assert store.read(image.image_id) == image.config
    for layer in image.layers:
        assert store.read(sha(layer)) == layer


def assert_nothing_stored(store: ContentStore) -> None:
    assert list(store.digests()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_public_surface() -> None:
    assert set(archive.__all__) == {
        "ImageRecord",
        "image_config",
        "import_rootfs",
        "load_archive",
        "save_archive",
    }


def test_docker_layout(store: ContentStore, spool: Path) -> None:
    image = Image([BASE, APP], tags=["busybox:latest", "docker.io/library/app:1"])
    (record,) = load(tar_of(docker_members([image])), store, spool)
    assert record == ImageRecord(
        config_digest=image.image_id,
        config=image.config,
        diff_ids=(sha(BASE), sha(APP)),
        layer_sizes=(len(BASE), len(APP)),
        repo_tags=("busybox:latest", "app:1"),
    )
    assert_stored(store, image)
    assert image_config(store, record.config_digest)["config"] == {"Cmd": ["sh"]}


def test_gzip_layers_are_stored_uncompressed(store: ContentStore, spool: Path) -> None:
    image = Image([BASE, APP], tags=["x:1"], gzip_layers=True)
    (record,) = load(tar_of(docker_members([image])), store, spool)
    assert record.diff_ids == (sha(BASE), sha(APP))
    assert_stored(store, image)
    assert not store.has(sha(image.blobs()[0]))


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("gzip_layers", [False, True])
def test_oci_layout(store: ContentStore, spool: Path, nested: bool, gzip_layers: bool) -> None:
    image = Image([BASE, APP], tags=["docker.io/library/busybox:1.36"], gzip_layers=gzip_layers)
    (record,) = load(tar_of(oci_members([image], nested=nested)), store, spool)
    assert record.config_digest == image.image_id
    assert record.repo_tags == ("busybox:1.36",)
    assert_stored(store, image)


def test_oci_ref_name_annotation(store: ContentStore, spool: Path) -> None:
    named = Image([BASE], tags=["registry.example:5000/team/app:v2"])
    bare = Image([APP], tags=["latest"])  # a bare tag names no repository
    records = load(
        tar_of(oci_members([named, bare], annotation="org.opencontainers.image.ref.name")),
        store,
        spool,
    )
    assert [r.repo_tags for r in records] == [("registry.example:5000/team/app:v2",), ()]


def test_oci_index_picks_linux_amd64(store: ContentStore, spool: Path) -> None:
    amd = Image([BASE], cmd=("amd",))
    arm = Image([APP], cmd=("arm",))
    members = {m.name: m for m in oci_members([amd, arm])}

    def manifest_of(image: Image) -> dict[str, object]:
        data = json.loads(members["index.json"].data)
        entry = next(
            e
            for e in data["manifests"]
            if members[f"blobs/sha256/{e['digest'][7:]}"].data.find(image.image_id.encode()) >= 0
        )
        return dict(entry)

    attestation = Member("blobs/sha256/" + hexof(b"{}"), b"{}")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {**manifest_of(arm), "platform": {"os": "linux", "architecture": "arm64"}},
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sha(b"{}"),
                    "size": 2,
                    "platform": {"os": "unknown", "architecture": "unknown"},
                },
                {**manifest_of(amd), "platform": {"os": "linux", "architecture": "amd64"}},
            ],
        }
    ).encode()
    index_member = Member(f"blobs/sha256/{hexof(index)}", index)
    top = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "digest": sha(index),
                    "size": len(index),
                    "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"},
                }
            ],
        }
    ).encode()
    members["index.json"] = Member("index.json", top)
    archive_bytes = tar_of([*members.values(), attestation, index_member])
    (record,) = load(archive_bytes, store, spool)
    assert record.config_digest == amd.image_id
    assert record.repo_tags == ("multi:1",)


def test_combined_layout_prefers_manifest_json(store: ContentStore, spool: Path) -> None:
    image = Image([BASE, APP], tags=["from-manifest:1"])
    oci_view = Image([BASE, APP], tags=["docker.io/library/from-index:1"])
    members = {m.name: m for m in [*oci_members([oci_view]), *docker_members([image])]}
    (record,) = load(tar_of(members.values()), store, spool)
    assert record.repo_tags == ("from-manifest:1",)


def test_several_images_sharing_layers(store: ContentStore, spool: Path) -> None:
    one = Image([BASE, APP], tags=["one:latest"])
    two = Image([BASE, OTHER], tags=["two:latest"])
    untagged = Image([BASE], cmd=("untagged",))
    records = load(tar_of(docker_members([one, two, untagged])), store, spool)
    assert [r.config_digest for r in records] == [one.image_id, two.image_id, untagged.image_id]
    assert [r.repo_tags for r in records] == [("one:latest",), ("two:latest",), ()]
    for image in (one, two, untagged):
        assert_stored(store, image)
    assert len(list(store.digests())) == 6


def test_same_image_twice_merges_tags(store: ContentStore, spool: Path) -> None:
    image = Image([BASE], tags=["a:1"])
    same = Image([BASE], tags=["b:2"])
    records = load(tar_of(oci_members([image, same])), store, spool)
    assert [r.repo_tags for r in records] == [("a:1", "b:2")]


def test_legacy_layout_with_symlinked_layer_and_repositories(
    store: ContentStore, spool: Path
) -> None:
    """Docker < 25: ``<v1id>/layer.tar``, duplicates as symlinks, tags in ``repositories``."""
    config = config_json([sha(BASE), sha(BASE)])
    v1a, v1b = "a" * 64, "b" * 64
    manifest = [
        {
            "Config": f"{hexof(config)}.json",
            "RepoTags": None,
            "Layers": [f"{v1a}/layer.tar", f"{v1b}/layer.tar"],
        }
    ]
    members = [
        Member(f"{v1a}", type=tarfile.DIRTYPE),
        Member(f"{v1a}/layer.tar", BASE),
        Member(f"{v1b}", type=tarfile.DIRTYPE),
        Member(f"{v1b}/layer.tar", type=tarfile.SYMTYPE, linkname=f"../{v1a}/layer.tar"),
        Member(f"{hexof(config)}.json", config),
        Member("manifest.json", json.dumps(manifest).encode()),
        Member("repositories", json.dumps({"legacy": {"v1": v1b}}).encode()),
    ]
    (record,) = load(tar_of(members), store, spool)
    assert record.diff_ids == (sha(BASE), sha(BASE))
    assert record.repo_tags == ("legacy:v1",)


def test_non_seekable_and_compressed_sources_are_spooled(store: ContentStore, spool: Path) -> None:
    image = Image([BASE, APP], tags=["x:1"])
    data = tar_of(docker_members([image]))
    (record,) = load_archive(NonSeekable(data), store, spool_dir=spool)  # type: ignore[arg-type]
    assert record.config_digest == image.image_id
    assert list(spool.iterdir()) == []
    (again,) = load(gzip.compress(data), ContentStore(spool.parent / "other"), spool)
    assert again == record


def test_layer_not_matching_diff_id_stores_nothing(store: ContentStore, spool: Path) -> None:
    good = Image([BASE], tags=["good:1"])
    bad = Image([APP, OTHER], tags=["bad:1"])
    members = docker_members([good, bad])
    # Swap in different content for OTHER's blob, keeping its name.
    other_name = f"blobs/sha256/{hexof(OTHER)}"
    members = [
        Member(m.name, layer_tar({"evil": b"1"})) if m.name == other_name else m for m in members
    ]
    with pytest.raises(InvalidArgument, match="does not match"):
        load(tar_of(members), store, spool)
    assert_nothing_stored(store)


def test_config_diff_id_mismatch_stores_nothing(store: ContentStore, spool: Path) -> None:
    image = Image([BASE, APP], tags=["x:1"])
    config = config_json([sha(BASE), sha(b"something else")])
    manifest = [{"Config": "config.json", "RepoTags": ["x:1"], "Layers": ["l1.tar", "l2.tar"]}]
    members = [
        Member("config.json", config),
        Member("l1.tar", BASE),
        Member("l2.tar", APP),
        Member("manifest.json", json.dumps(manifest).encode()),
    ]
    with pytest.raises(InvalidArgument, match="config says"):
        load(tar_of(members), store, spool)
    assert_nothing_stored(store)
    assert image.image_id != sha(config)


def test_blobs_already_present_survive_a_failed_load(store: ContentStore, spool: Path) -> None:
    store.ingest([BASE])
    bad = Image([BASE, APP])
    members = [
        Member(m.name, b"corrupted" if m.name.endswith(hexof(APP)) else m.data, m.type)
        for m in docker_members([bad])
    ]
    with pytest.raises(InvalidArgument):
        load(tar_of(members), store, spool)
    assert list(store.digests()) == [sha(BASE)]


@dataclass
class Claim(Image):
    """An image whose config names the diff ids ``named``, whatever its layers hold."""

    named: list[str] = field(default_factory=list)

    @property
    def diff_ids(self) -> list[str]:
        return self.named


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_a_layer_in_the_store_is_not_had_by_naming_its_digest(
    store: ContentStore, spool: Path, layout: str
) -> None:
    """The store is shared by tenants: an archive whose config names a layer someone else
    loaded, with other bytes in its place, must not get that layer."""
    secret = layer_tar({"etc/secret": b"another tenant's file"})
    store.ingest([secret])
    claim = Claim([BASE, APP], tags=["docker.io/library/claim:1"], named=[sha(BASE), sha(secret)])
    members = docker_members([claim]) if layout == "docker" else oci_members([claim])
    with pytest.raises(InvalidArgument, match=f"config says {sha(secret)}"):
        load(tar_of(members), store, spool)
    assert sorted(store.digests()) == [sha(secret)]


def test_a_layer_in_the_store_loads_again_with_its_content(
    store: ContentStore, spool: Path
) -> None:
    """Bringing the content of a layer the store holds is fine, compressed too."""
    store.ingest([BASE])
    image = Image([BASE, APP], tags=["x:1"], gzip_layers=True)
    (record,) = load(tar_of(docker_members([image])), store, spool)
    assert record.diff_ids == (sha(BASE), sha(APP))
    assert record.layer_sizes == (len(BASE), len(APP))
    assert_stored(store, image)


def test_oci_blob_digest_mismatch(store: ContentStore, spool: Path) -> None:
    image = Image([BASE], tags=["docker.io/library/x:1"])
    members = [
        Member(m.name, m.data + b"\0" * 512) if m.name == f"blobs/sha256/{hexof(BASE)}" else m
        for m in oci_members([image])
    ]
    with pytest.raises(InvalidArgument):
        load(tar_of(members), store, spool)
    assert_nothing_stored(store)


def test_config_not_matching_its_path(store: ContentStore, spool: Path) -> None:
    image = Image([BASE], tags=["x:1"])
    members = [
        Member(m.name, image.config.replace(b'"sh"', b'"bash"'))
        if m.name == f"blobs/sha256/{hexof(image.config)}"
        else m
        for m in docker_members([image])
    ]
    with pytest.raises(InvalidArgument, match="does not match"):
        load(tar_of(members), store, spool)
    assert_nothing_stored(store)


def test_zstd_layers_are_refused(store: ContentStore, spool: Path) -> None:
    fake_zstd = b"\x28\xb5\x2f\xfd" + b"\0" * 100
    config = config_json([sha(BASE)])
    manifest = [{"Config": "c.json", "RepoTags": [], "Layers": ["layer.tar.zst"]}]
    members = [
        Member("c.json", config),
        Member("layer.tar.zst", fake_zstd),
        Member("manifest.json", json.dumps(manifest).encode()),
    ]
    with pytest.raises(InvalidArgument, match="zstd-compressed layers are not supported"):
        load(tar_of(members), store, spool)
    assert_nothing_stored(store)


@pytest.mark.parametrize(
    "bad_member",
    [
        Member("../escape", b"x"),
        Member("blobs/../../escape", b"x"),
        Member("/etc/passwd", b"x"),
        Member("link", type=tarfile.SYMTYPE, linkname="../../etc/passwd"),
        Member("link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-dotdot", "symlink-absolute"],
)
def test_escaping_member_names_are_refused(
    store: ContentStore, spool: Path, bad_member: Member
) -> None:
    image = Image([BASE], tags=["x:1"])
    with pytest.raises(InvalidArgument, match="invalid archive"):
        load(tar_of([bad_member, *docker_members([image])]), store, spool)
    assert_nothing_stored(store)


def test_manifest_paths_that_escape_are_refused(store: ContentStore, spool: Path) -> None:
    manifest = [{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}]
    with pytest.raises(InvalidArgument, match=r"\.\."):
        load(tar_of([Member("manifest.json", json.dumps(manifest).encode())]), store, spool)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a tar at all" * 100, tar_of([Member("hello.txt", b"hi")])],
    ids=["empty", "garbage", "no-manifest"],
)
def test_not_an_image_archive(store: ContentStore, spool: Path, data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        load(data, store, spool)
    assert_nothing_stored(store)


def test_truncated_archive(store: ContentStore, spool: Path) -> None:
    data = tar_of(docker_members([Image([BASE, APP], tags=["x:1"])]))
    with pytest.raises(InvalidArgument):
        load(data[: len(data) // 2], store, spool)
    assert_nothing_stored(store)


def test_missing_layer_member(store: ContentStore, spool: Path) -> None:
    image = Image([BASE, APP], tags=["x:1"])
    members = [m for m in docker_members([image]) if not m.name.endswith(hexof(APP))]
    with pytest.raises(InvalidArgument, match="not found"):
        load(tar_of(members), store, spool)
    assert_nothing_stored(store)


def test_bad_repo_tag(store: ContentStore, spool: Path) -> None:
    image = Image([BASE], tags=["UPPER/case:1"])
    with pytest.raises(InvalidArgument, match="lowercase"):
        load(tar_of(docker_members([image])), store, spool)


# save_archive ------------------------------------------------------------------------------


def loaded(store: ContentStore, spool: Path, *images: Image) -> list[ImageRecord]:
    return load(tar_of(docker_members(list(images))), store, spool)


def test_save_layout(store: ContentStore, spool: Path) -> None:
    one = Image([BASE, APP], tags=["busybox:latest", "me/app:1"])
    two = Image([BASE], cmd=("two",))
    records = loaded(store, spool, one, two)
    out = WriteOnly()
    save_archive(out, records, store)  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(bytes(out.data))) as tar:
        names = tar.getnames()
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert names.count(f"blobs/sha256/{hexof(BASE)}") == 1
    assert files[f"blobs/sha256/{hexof(BASE)}"] == BASE
    assert files[f"blobs/sha256/{hexof(one.config)}"] == one.config
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    manifest = json.loads(files["manifest.json"])
    assert manifest == [
        {
            "Config": f"blobs/sha256/{hexof(one.config)}",
            "RepoTags": ["busybox:latest", "me/app:1"],
            "Layers": [f"blobs/sha256/{hexof(BASE)}", f"blobs/sha256/{hexof(APP)}"],
        },
        {
            "Config": f"blobs/sha256/{hexof(two.config)}",
            "RepoTags": None,
            "Layers": [f"blobs/sha256/{hexof(BASE)}"],
        },
    ]
    assert json.loads(files["repositories"]) == {
        "busybox": {"latest": hexof(APP)},
        "me/app": {"1": hexof(APP)},
    }
    index = json.loads(files["index.json"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    annotations = [m.get("annotations") for m in index["manifests"]]
    assert annotations == [
        {
            "io.containerd.image.name": "docker.io/library/busybox:latest",
            "org.opencontainers.image.ref.name": "latest",
        },
        {
            "io.containerd.image.name": "docker.io/me/app:1",
            "org.opencontainers.image.ref.name": "1",
        },
        None,
    ]
    oci_manifest = json.loads(files[f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"])
    assert oci_manifest["config"]["digest"] == one.image_id
    assert [layer["mediaType"] for layer in oci_manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar"
    ] * 2


def test_save_then_load_round_trip_through_a_pipe(
    store: ContentStore, spool: Path, tmp_path: Path
) -> None:
    records = loaded(
        store,
        spool,
        Image([BASE, APP], tags=["one:1"], gzip_layers=True),
        Image([BASE, OTHER], tags=["two:2", "two:latest"]),
    )
    read_fd, write_fd = os.pipe()
    received: list[ImageRecord] = []
    other = ContentStore(tmp_path / "other")

    def reader() -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            received.extend(load_archive(pipe, other, spool_dir=spool))

    thread = threading.Thread(target=reader)
    thread.start()
    with os.fdopen(write_fd, "wb") as pipe:
        save_archive(pipe, records, store)
    thread.join(timeout=30)
    assert received == records
    assert sorted(other.digests()) == sorted(store.digests())
    assert list(spool.iterdir()) == []


def test_save_round_trip_without_manifest_json(store: ContentStore, spool: Path) -> None:
    """The OCI half of our output stands on its own."""
    records = loaded(store, spool, Image([BASE, APP], tags=["one:1", "reg.io:5000/a/b:c"]))
    out = io.BytesIO()
    save_archive(out, records, store)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = [
            Member(m.name, tar.extractfile(m).read() if m.isfile() else b"", m.type)  # type: ignore[union-attr]
            for m in tar
            if m.name not in ("manifest.json", "repositories")
        ]
    other = ContentStore(spool.parent / "oci-only")
    assert load(tar_of(members), other, spool) == records


def test_save_missing_layer_writes_nothing(store: ContentStore, spool: Path) -> None:
    (record,) = loaded(store, spool, Image([BASE, APP], tags=["x:1"]))
    store.delete(sha(APP))
    out = WriteOnly()
    with pytest.raises(NotFound):
        save_archive(out, [record], store)  # type: ignore[arg-type]
    assert out.data == b""


def test_image_config_errors(store: ContentStore) -> None:
    with pytest.raises(NotFound):
        image_config(store, sha(b"nothing"))
    blob = store.ingest([b"[1, 2]"])
    with pytest.raises(InvalidArgument):
        image_config(store, blob.digest)
