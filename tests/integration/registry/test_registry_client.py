"""images.registry_client against a bare distribution registry (Debian docker-registry)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import shutil
import tarfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.core.errors import InvalidArgument, NotFound
from dockyard.images._manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
)
from dockyard.images._model import HOST_ARCH, OCI_INDEX, OCI_MANIFEST, ImageRecord, canonical_json
from dockyard.images.content import ContentStore, sha256_digest
from dockyard.images.registry_client import PulledImage, RegistryClient
from dockyard.testing.bare_registry import BareRegistry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("docker-registry") is None, reason="needs docker-registry"),
]

T = TypeVar("T")
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareRegistry]:
    with BareRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def run(registry: BareRegistry, body: Callable[[RegistryClient], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        async with RegistryClient(registry.url, **kw) as client:
            return await body(client)

    return asyncio.run(main())


def layer_tar(name: str, size: int, *, seed: bytes = b"") -> bytes:
    data = (seed + os.urandom(size))[:size] if size else b""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def config_for(diff_ids: Sequence[str], *, arch: str = HOST_ARCH) -> bytes:
    return canonical_json(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        }
    )


def make_image(store: ContentStore, sizes: Sequence[int], *, arch: str = HOST_ARCH) -> ImageRecord:
    tars = [layer_tar(f"file{i}", size) for i, size in enumerate(sizes)]
    diff_ids = [store.ingest([tar]).digest for tar in tars]
    config = config_for(diff_ids, arch=arch)
    store.ingest([config])
    return ImageRecord(
        config_digest=sha256_digest(config),
        config=config,
        diff_ids=tuple(diff_ids),
        layer_sizes=tuple(len(t) for t in tars),
    )


def statuses(messages: list[dict[str, Any]], status: str) -> list[str]:
    return [m.get("id", "") for m in messages if m.get("status") == status]


def assert_same_image(pulled: PulledImage, record: ImageRecord, store: ContentStore) -> None:
    assert pulled.record.config_digest == record.config_digest
    assert pulled.record.diff_ids == record.diff_ids
    assert pulled.record.layer_sizes == record.layer_sizes
    assert pulled.record.repo_tags == ()
    for diff_id in record.diff_ids:
        assert sha256_digest(store.read(diff_id)) == diff_id
    assert list((store.root / "tmp").iterdir()) == []


def test_push_then_pull_into_a_fresh_store(registry: BareRegistry, tmp_path: Path) -> None:
    source = ContentStore(tmp_path / "a")
    record = make_image(source, [3_000_000, 10_000, 0, 700_000, 5, 2_000_000])
    pushed_msgs: list[dict[str, Any]] = []
    pushed = run(
        registry, lambda c: c.push("ns/app", "v1", record, source, progress=pushed_msgs.append)
    )
    assert pushed.media_type == OCI_MANIFEST
    ids = [d[7:19] for d in record.diff_ids]
    assert statuses(pushed_msgs, "Preparing") == ids[::-1]  # top layer first, as dockerd
    assert statuses(pushed_msgs, "Waiting") == ids[::-1][5:]
    assert sorted(statuses(pushed_msgs, "Pushed")) == sorted(ids)
    pushing = [m for m in pushed_msgs if m.get("status") == "Pushing"]
    assert pushing and all(m["progressDetail"]["total"] > 0 for m in pushing)
    assert pushed_msgs[-2] == {"status": f"v1: digest: {pushed.digest} size: {pushed.size}"}
    assert pushed_msgs[-1]["aux"] == {"Tag": "v1", "Digest": pushed.digest, "Size": pushed.size}

    target = ContentStore(tmp_path / "b")
    pulled_msgs: list[dict[str, Any]] = []
    pulled = run(registry, lambda c: c.pull("ns/app", "v1", target, progress=pulled_msgs.append))
    assert_same_image(pulled, record, target)
    assert (pulled.manifest_digest, pulled.media_type, pulled.size) == (
        pushed.digest,
        OCI_MANIFEST,
        pushed.size,
    )
    assert pulled_msgs[0] == {"status": "Pulling from ns/app", "id": "v1"}
    assert pulled_msgs[-1] == {"status": f"Digest: {pushed.digest}"}
    assert statuses(pulled_msgs, "Pulling fs layer") == ids
    assert statuses(pulled_msgs, "Waiting") == ids[3:]
    for status in ("Verifying Checksum", "Download complete", "Pull complete"):
        assert sorted(statuses(pulled_msgs, status)) == sorted(ids)
    first = next(m for m in pulled_msgs if m.get("status") == "Downloading")
    assert set(first["progressDetail"]) == {"current", "total"} and first["progress"].startswith(
        "["
    )

    # Pulling again by digest: every layer is already there.
    again: list[dict[str, Any]] = []
    by_digest = run(
        registry, lambda c: c.pull("ns/app", pushed.digest, target, progress=again.append)
    )
    assert by_digest.manifest_digest == pushed.digest
    assert statuses(again, "Already exists") == ids
    assert again[0] == {"status": "Pulling from ns/app", "id": pushed.digest}


def test_push_again_and_mount_from_another_repository(
    registry: BareRegistry, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "c")
    record = make_image(store, [100_000, 200_000])
    ids = sorted(d[7:19] for d in record.diff_ids)
    run(registry, lambda c: c.push("ns/base", "1", record, store))
    again: list[dict[str, Any]] = []
    run(registry, lambda c: c.push("ns/base", "2", record, store, progress=again.append))
    assert sorted(statuses(again, "Layer already exists")) == ids
    assert statuses(again, "Pushing") == []

    mounted: list[dict[str, Any]] = []
    pushed = run(
        registry,
        lambda c: c.push(
            "other/app",
            "1",
            record,
            store,
            progress=mounted.append,
            mount_from=["nope/x", "ns/base"],
        ),
    )
    assert sorted(statuses(mounted, "Mounted from ns/base")) == ids
    assert statuses(mounted, "Pushing") == []
    assert run(registry, lambda c: c.manifest("other/app", "1"))[1] == pushed.digest
    assert run(registry, lambda c: c.mount_blob("third/app", record.diff_ids[0], "ns/base"))
    assert not run(registry, lambda c: c.mount_blob("third/app", "sha256:" + "0" * 64, "ns/base"))
    assert run(registry, lambda c: c.blob_exists("third/app", record.diff_ids[0]))
    assert not run(registry, lambda c: c.blob_exists("third/app", record.diff_ids[1]))


async def push_gzip_image(
    client: RegistryClient, repo: str, tag: str, tars: Sequence[bytes], *, arch: str = HOST_ARCH
) -> tuple[str, bytes]:
    """A Docker schema 2 image with gzip layers, as Docker Hub serves them."""
    layers = []
    for tar in tars:
        blob = gzip.compress(tar)
        layers.append(
            {
                "mediaType": DOCKER_LAYER_GZIP,
                "size": len(blob),
                "digest": await client.put_blob(repo, blob),
            }
        )
    config = config_for([sha256_digest(t) for t in tars], arch=arch)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "size": len(config),
                "digest": await client.put_blob(repo, config),
            },
            "layers": layers,
        },
        indent=3,
    ).encode()
    return await client.put_manifest(repo, tag, DOCKER_MANIFEST, manifest), manifest


def test_pull_gzip_layers_stores_them_uncompressed(registry: BareRegistry, tmp_path: Path) -> None:
    tars = [layer_tar("a", 400_000), layer_tar("b", 3_000_000, seed=b"x" * 2_000_000)]
    store = ContentStore(tmp_path / "d")

    async def body(client: RegistryClient) -> PulledImage:
        await push_gzip_image(client, "hub/gz", "latest", tars)
        return await client.pull("hub/gz", "latest", store)

    pulled = run(registry, body)
    assert pulled.media_type == DOCKER_MANIFEST
    assert pulled.record.diff_ids == tuple(sha256_digest(t) for t in tars)
    assert [store.read(d) for d in pulled.record.diff_ids] == tars
    assert pulled.record.layer_sizes == tuple(len(t) for t in tars)


def test_an_index_resolves_to_this_host_and_fails_clearly_for_others(
    registry: BareRegistry, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "e")
    mine, theirs = make_image(store, [50_000]), make_image(store, [60_000], arch=OTHER_ARCH)

    async def body(client: RegistryClient) -> tuple[str, str]:
        other = await client.push("multi/app", "other", theirs, store)
        own = await client.push("multi/app", "own", mine, store)
        entries = [
            {"mediaType": OCI_MANIFEST, "digest": other.digest, "size": other.size,
             "platform": {"os": "linux", "architecture": OTHER_ARCH}},
            {"mediaType": OCI_MANIFEST, "digest": own.digest, "size": own.size,
             "platform": {"os": "linux", "architecture": HOST_ARCH}},
        ]  # fmt: skip
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        return await client.put_manifest("multi/app", "latest", OCI_INDEX, index), own.digest

    index_digest, own_digest = run(registry, body)
    target = ContentStore(tmp_path / "f")
    pulled = run(registry, lambda c: c.pull("multi/app", "latest", target))
    assert pulled.record.config_digest == mine.config_digest
    assert (pulled.manifest_digest, pulled.media_type) == (index_digest, OCI_INDEX)
    assert run(registry, lambda c: c.manifest("multi/app", own_digest))[0] == OCI_MANIFEST

    with pytest.raises(NotFound) as caught:
        run(
            registry,
            lambda c: c.pull("multi/app", "latest", target),
            platform=("linux", "s390x"),
        )
    assert str(caught.value) == (
        "no matching manifest for linux/s390x in the manifest list entries "
        f"(available: {', '.join(sorted(['linux/' + HOST_ARCH, 'linux/' + OTHER_ARCH]))})"
    )

    # copy: the index and both manifests land in the other repository, blobs mounted.
    digest = run(registry, lambda c: c.copy("multi/app", "latest", "copies/app", "v1"))
    assert digest == index_digest
    again = run(registry, lambda c: c.pull("copies/app", "v1", ContentStore(tmp_path / "g")))
    assert again.record.config_digest == mine.config_digest
    assert run(registry, lambda c: c.manifest("copies/app", "v1"))[:2] == (OCI_INDEX, index_digest)


def blob_data_path(registry: BareRegistry, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    return registry.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def test_a_blob_that_does_not_match_its_digest_is_rejected(
    registry: BareRegistry, tmp_path: Path
) -> None:
    source = ContentStore(tmp_path / "h")
    record = make_image(source, [200_000])
    run(registry, lambda c: c.push("bad/blob", "latest", record, source))
    # The registry's disk goes bad under it: same size, other bytes.
    path = blob_data_path(registry, record.diff_ids[0])
    path.write_bytes(os.urandom(path.stat().st_size))
    target = ContentStore(tmp_path / "i")
    with pytest.raises(InvalidArgument, match="filesystem layer verification failed for digest"):
        run(registry, lambda c: c.pull("bad/blob", "latest", target))
    assert not target.has(record.diff_ids[0])
    assert list((target.root / "tmp").iterdir()) == []


def test_a_gzip_layer_that_does_not_match_its_diff_id_is_rejected(
    registry: BareRegistry, tmp_path: Path
) -> None:
    tar = layer_tar("x", 100_000)

    async def body(client: RegistryClient) -> None:
        blob = gzip.compress(tar)
        layer = {
            "mediaType": DOCKER_LAYER_GZIP,
            "size": len(blob),
            "digest": await client.put_blob("bad/diff", blob),
        }
        config = config_for([sha256_digest(b"something else")])
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG,
                    "size": len(config),
                    "digest": await client.put_blob("bad/diff", config),
                },
                "layers": [layer],
            }
        )
        await client.put_manifest("bad/diff", "latest", DOCKER_MANIFEST, manifest)

    run(registry, body)
    target = ContentStore(tmp_path / "j")
    with pytest.raises(InvalidArgument, match="not the diff id"):
        run(registry, lambda c: c.pull("bad/diff", "latest", target))
    assert list(target.digests()) == []
    assert list((target.root / "tmp").iterdir()) == []


def test_tags_catalog_pagination_and_delete(registry: BareRegistry, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "k")
    record = make_image(store, [1000])

    async def body(client: RegistryClient) -> tuple[list[str], list[str], str]:
        pushed = await client.push("paged/app", "t0", record, store)
        _, _, raw = await client.manifest("paged/app", "t0")
        for i in range(1, 7):
            await client.put_manifest("paged/app", f"t{i}", OCI_MANIFEST, raw)
        return (
            await client.tags("paged/app", page_size=2),
            await client.catalog(page_size=1),
            pushed.digest,
        )

    tags, catalog, digest = run(registry, body)
    assert sorted(tags) == [f"t{i}" for i in range(7)]
    assert "paged/app" in catalog and "ns/app" in catalog
    assert len(catalog) == len(set(catalog))

    with pytest.raises(NotFound, match=r"^repository never/there not found: name unknown"):
        run(registry, lambda c: c.tags("never/there"))

    run(registry, lambda c: c.delete_manifest("paged/app", digest))
    with pytest.raises(NotFound, match=r"^manifest for paged/app:t3 not found: manifest unknown"):
        run(registry, lambda c: c.pull("paged/app", "t3", ContentStore(tmp_path / "l")))
    with pytest.raises(NotFound):
        run(registry, lambda c: c.delete_manifest("paged/app", digest))


def test_missing_things_are_not_found_in_dockers_words(
    registry: BareRegistry, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "m")
    with pytest.raises(NotFound) as caught:
        run(registry, lambda c: c.pull("library/busybox", "nope", store))
    assert str(caught.value) == (
        "manifest for busybox:nope not found: manifest unknown: manifest unknown"
    )
    with pytest.raises(NotFound, match=r"^manifest for ns/app@sha256:0+ not found"):
        run(registry, lambda c: c.manifest("ns/app", "sha256:" + "0" * 64))


def test_a_token_source_is_asked_for_the_scopes_of_each_call(
    registry: BareRegistry, tmp_path: Path
) -> None:
    asked: list[tuple[str, ...]] = []

    async def tokens(scopes: Sequence[str]) -> str | None:
        asked.append(tuple(scopes))
        return "opaque-token"

    store = ContentStore(tmp_path / "n")
    record = make_image(store, [1000])

    async def body(client: RegistryClient) -> None:
        await client.push("tok/app", "1", record, store, mount_from=["ns/base"])
        await client.pull("tok/app", "1", ContentStore(tmp_path / "o"))
        await client.catalog()
        await client.delete_manifest("tok/app", (await client.manifest("tok/app", "1"))[1])

    run(registry, body, tokens=tokens)
    assert set(asked) == {
        ("repository:tok/app:pull,push",),
        ("repository:ns/base:pull", "repository:tok/app:pull,push"),
        ("repository:tok/app:pull",),
        ("registry:catalog:*",),
        ("repository:tok/app:delete",),
    }
    # Tokens are cached per scope set, not fetched per request.
    assert len(asked) == len(set(asked))


def test_an_unreachable_registry_is_unavailable(tmp_path: Path) -> None:
    from dockyard.core.errors import Unavailable

    async def body() -> None:
        async with RegistryClient(unix_socket=str(tmp_path / "nothing.sock")) as client:
            await client.ping()

    with pytest.raises(Unavailable, match="cannot reach the registry on"):
        asyncio.run(body())


def test_ping(registry: BareRegistry) -> None:
    run(registry, lambda c: c.ping())


class NoMounts(RegistryClient):
    """A client whose registry refuses every cross-repository mount."""

    async def _mount(self, repo: str, digest: str, source: str) -> tuple[bool, str | None]:
        return False, None


def test_copy_streams_blobs_when_the_registry_will_not_mount(
    registry: BareRegistry, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "p")
    record = make_image(store, [2_500_000, 1000])

    async def body() -> tuple[str, str]:
        async with NoMounts(registry.url) as client:
            pushed = await client.push("stream/src", "1", record, store)
            copied = await client.copy("stream/src", "1", "stream/dst", "2")
            for digest in (*record.diff_ids, record.config_digest):
                assert await client.blob_exists("stream/dst", digest)
            return pushed.digest, copied

    pushed, copied = asyncio.run(body())
    assert copied == pushed
    pulled = run(registry, lambda c: c.pull("stream/dst", "2", ContentStore(tmp_path / "q")))
    assert pulled.record.diff_ids == record.diff_ids
