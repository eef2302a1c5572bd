"""docker commit in the controller: the tag a commit asks for, and ImageService.commit on
a real SQLite store and content store (the layer as the agent would stream it)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard.controller.commit import commit_tag
from dockyard.controller.events import EventLog
from dockyard.controller.hosts import HostRegistry
from dockyard.controller.images import ImageService
from dockyard.controller.plans import builtin_plans
from dockyard.controller.quotas import QuotaService
from dockyard.core.errors import InvalidArgument, QuotaExceeded, Unavailable
from dockyard.core.models import Image
from dockyard.images.commit import CommitInfo
from dockyard.images.content import ContentStore, sha256_digest
from dockyard.store import SqlStore

MIB = 1 << 20


def test_commit_tags_follow_docker() -> None:
    assert commit_tag("", "") == ""
    assert commit_tag("", "v1") == ""  # no repository, no tag (as Docker)
    assert commit_tag("app", "") == "app:latest"
    assert commit_tag("app", "v1") == "app:v1"
    assert commit_tag("registry.example:5000/team/app", "v2") == (
        "registry.example:5000/team/app:v2"
    )
    assert commit_tag("app:v3", "") == "app:v3"
    with pytest.raises(InvalidArgument):
        commit_tag("Bad Name", "x")
    with pytest.raises(InvalidArgument, match="digest"):
        commit_tag("app@sha256:" + "a" * 64, "")


# ImageService.commit ----------------------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Scene:
    def __init__(self, tmp: Path) -> None:
        self.store = SqlStore.sqlite(tmp / "db" / "dockyard.db", uid_range_start=100_000)
        self.content = ContentStore(tmp / "blobs")
        self.events = EventLog(self.store, keep=0, max_age=0)
        self.quotas = QuotaService(
            store=self.store,
            plans=builtin_plans(),
            content=self.content,
            hosts=HostRegistry(self.store),
        )
        self.images = ImageService(
            store=self.store,
            content=self.content,
            spool_dir=tmp / "spool",
            events=self.events,
            quotas=self.quotas,
        )
        self.tenant = self.store.ensure_tenant("acme").id
        base = _tar({"bin/sh": b"#!shell"})
        layer = self.content.ingest([base]).digest
        config = json.dumps(
            {"os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer]}, "history": []}
        ).encode()
        self.parent = Image(
            id=self.content.ingest([config]).digest,
            tenant=self.tenant,
            layers=(layer,),
            size=len(base),
            created=1,
            repo_tags=("base:1",),
        )
        self.store.put_image(self.parent)

    def blobs(self) -> set[str]:
        return {str(p.relative_to(self.content.root)) for p in self.content.root.rglob("*")}

    def commit(self, chunks: AsyncIterator[bytes], tag: str = "") -> Image:
        return asyncio.run(
            self.images.commit(
                tenant=self.tenant,
                parent=self.parent,
                layer=chunks,
                config={"Cmd": ["sh"]},
                info=CommitInfo(container_id="c" * 64, container_config={"Cmd": ["sh"]}),
                tag=tag,
            )
        )


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    made = Scene(tmp_path)
    yield made
    made.store.close()


async def stream(data: bytes, *, chunk: int = 65536, fail: bool = False) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
    if fail:
        raise Unavailable("agent stream broke off")


def test_the_committed_image_is_the_parent_plus_the_layer(scene: Scene) -> None:
    layer = _tar({"added": b"new\n"})
    image = scene.commit(stream(layer), tag="app:v1")
    assert image.layers == (*scene.parent.layers, sha256_digest(layer))
    assert image.parent == scene.parent.id and image.repo_tags == ("app:v1",)
    assert scene.images.resolve(tenant=scene.tenant, ref="app:v1").id == image.id
    assert scene.content.read(sha256_digest(layer)) == layer
    assert scene.images.config(image)["container"] == "c" * 64
    scene.events.flush()
    (event,) = scene.store.list_events(tenant=scene.tenant, after=0)
    assert (event.type, event.action, event.attributes["name"]) == ("image", "tag", "app:v1")


def test_a_layer_past_the_quota_leaves_no_blob_and_no_image(scene: Scene) -> None:
    scene.quotas.update(scene.tenant, limits={"image_storage": MIB})
    before = (scene.blobs(), scene.store.list_images(tenant=scene.tenant))
    with pytest.raises(QuotaExceeded, match="image_storage"):
        scene.commit(stream(_tar({"big": os.urandom(2 * MIB)})), tag="big:1")
    assert (scene.blobs(), scene.store.list_images(tenant=scene.tenant)) == before


def test_a_layer_far_past_the_quota_is_refused_before_it_all_arrives(scene: Scene) -> None:
    scene.quotas.update(scene.tenant, limits={"image_storage": MIB})
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += MIB
            yield os.urandom(MIB)

    before = scene.blobs()
    with pytest.raises(QuotaExceeded):
        scene.commit(endless())
    assert sent <= 65 * MIB
    assert scene.blobs() == before


def test_a_stream_that_breaks_off_leaves_nothing(scene: Scene) -> None:
    before = (scene.blobs(), scene.store.list_images(tenant=scene.tenant))
    with pytest.raises(Unavailable):
        scene.commit(stream(_tar({"x": b"1" * 200_000}), fail=True), tag="broken:1")
    assert (scene.blobs(), scene.store.list_images(tenant=scene.tenant)) == before
