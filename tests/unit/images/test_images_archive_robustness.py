"""Hostile archives: whatever the JSON says, load_archive answers InvalidArgument or loads."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from images_builders import Image, Member, docker_members, layer_tar, oci_members, tar_of

from dockyard.core.errors import InvalidArgument
from dockyard.images.archive import load_archive
from dockyard.images.content import ContentStore

IMAGE = Image([layer_tar({"a": b"a"})], tags=["x:1"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Config",
                    "Layers",
                    "RepoTags",
                    "manifests",
                    "digest",
                    "size",
                    "mediaType",
                    "annotations",
                    "platform",
                    "config",
                    "layers",
                    "rootfs",
                    "diff_ids",
                    "type",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def try_load(members: list[Member]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = ContentStore(Path(tmp) / "content")
        try:
            load_archive(io.BytesIO(tar_of(members)), store, spool_dir=Path(tmp))
        except InvalidArgument:
            assert list(store.digests()) == []


def replaced(members: list[Member], name: str, value: Any) -> list[Member]:
    data = json.dumps(value).encode()
    return [Member(m.name, data) if m.name == name else m for m in members]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_arbitrary_manifest_json(value: Any) -> None:
    try_load(replaced(docker_members([IMAGE]), "manifest.json", value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_arbitrary_index_json(value: Any) -> None:
    try_load(replaced(oci_members([IMAGE], nested=True), "index.json", value))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, which=st.integers(min_value=0, max_value=10))
def test_arbitrary_blob_json(value: Any, which: int) -> None:
    members = oci_members([IMAGE], nested=True)
    blobs = [m.name for m in members if m.name.startswith("blobs/") and m.data.startswith(b"{")]
    try_load(replaced(members, blobs[which % len(blobs)], value))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(InvalidArgument):
        load_archive(io.BytesIO(data), ContentStore(Path(tmp) / "c"), spool_dir=Path(tmp))
