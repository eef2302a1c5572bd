"""images.commit: the config and the image ``docker commit`` makes (moby's commit rules)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from images_builders import layer_tar, sha

from dockyard.core.errors import InvalidArgument
from dockyard.images import commit
from dockyard.images.archive import image_config
from dockyard.images.commit import CommitInfo, LayerWriter, commit_image, committed_config
from dockyard.images.content import ContentStore

CREATED = 1_700_000_000_123_456_789
STAMP = "2023-11-14T22:13:20.123456789Z"
BASE_LAYER = layer_tar({"bin/sh": b"#!shell"})

CONTAINER: dict[str, Any] = {
    "Hostname": "c0ffee",
    "Domainname": "",
    "User": "app",
    "AttachStdin": False,
    "AttachStdout": True,
    "AttachStderr": True,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": ["PATH=/bin", "MODE=container"],
    "Cmd": ["sh", "-c", "echo hi > /x"],
    "Image": "busybox",
    "Volumes": {"/data": {}},
    "WorkingDir": "/srv",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": {"from": "container"},
    "ExposedPorts": {"80/tcp": {}},
    "StopSignal": "SIGINT",
}


def test_the_public_surface() -> None:
    assert set(commit.__all__) == {
        "CONFIG_FIELDS",
        "CommitInfo",
        "LayerWriter",
        "commit_image",
        "committed_config",
    }


# committed_config -----------------------------------------------------------------------


def test_without_body_or_changes_the_image_keeps_the_containers_config() -> None:
    assert committed_config(CONTAINER, None, ()) == CONTAINER
    assert committed_config(CONTAINER, {}, ()) == CONTAINER  # docker-py's "{}"


def test_a_container_without_labels_gives_an_empty_label_map() -> None:
    config = committed_config({**CONTAINER, "Labels": None}, None, ())
    assert config["Labels"] == {}


def test_changes_apply_over_the_containers_config() -> None:
    config = committed_config(
        CONTAINER,
        None,
        ['CMD ["cat", "/x"]', "ENV MODE=image EXTRA=$MODE", "LABEL from=change", "EXPOSE 53/udp"],
    )
    assert config["Cmd"] == ["cat", "/x"]
    assert config["Env"] == ["PATH=/bin", "MODE=image", "EXTRA=container"]
    assert config["Labels"] == {"from": "change"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["User"] == "app" and config["WorkingDir"] == "/srv"


def test_an_entrypoint_change_drops_the_command_as_in_a_dockerfile() -> None:
    config = committed_config(CONTAINER, None, ['ENTRYPOINT ["/bin/serve"]'])
    assert config["Entrypoint"] == ["/bin/serve"] and config["Cmd"] is None


def test_a_change_docker_refuses_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        committed_config(CONTAINER, None, ["RUN rm -rf /"])


def test_a_body_is_merged_with_the_containers_config_as_moby_merges() -> None:
    body = {
        "Cmd": "true",  # a lone string is one word
        "Env": ["MODE=body"],
        "Labels": {"from": "body"},
        "ExposedPorts": {"443/tcp": {}},
        "Volumes": {"/cache": {}},
        "Unknown": "ignored",
    }
    config = committed_config(CONTAINER, body, ())
    assert config["Cmd"] == ["true"]
    assert config["Env"] == ["MODE=body", "PATH=/bin"]  # the container's other keys added
    assert config["Labels"] == {"from": "body"}
    assert config["ExposedPorts"] == {"443/tcp": {}, "80/tcp": {}}
    assert config["Volumes"] == {"/cache": {}, "/data": {}}
    assert (config["User"], config["WorkingDir"], config["StopSignal"]) == ("app", "/srv", "SIGINT")
    assert config["Image"] == ""  # Docker leaves a body's missing Image empty
    assert "Unknown" not in config


def test_a_body_entrypoint_keeps_its_own_command() -> None:
    config = committed_config(CONTAINER, {"Entrypoint": ["/bin/serve"]}, ())
    assert config["Entrypoint"] == ["/bin/serve"] and config["Cmd"] is None
    config = committed_config(CONTAINER, {"User": "root"}, ())
    assert config["Cmd"] == CONTAINER["Cmd"] and config["Entrypoint"] is None


def test_healthcheck_fields_missing_from_the_body_come_from_the_container() -> None:
    container = {**CONTAINER, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}}
    config = committed_config(container, {"Healthcheck": {"Retries": 7}}, ())
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5, "Retries": 7}


# commit_image ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


@pytest.fixture
def parent(store: ContentStore) -> dict[str, Any]:
    store.ingest([BASE_LAYER])
    return {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(BASE_LAYER)]},
        "history": [{"created": "2001-01-01T00:00:00Z", "created_by": "ADD base"}],
    }


def write(store: ContentStore, data: bytes) -> LayerWriter:
    writer = LayerWriter(store)
    for start in range(0, len(data), 1000):
        writer.write(data[start : start + 1000])
    return writer


def info(**fields: Any) -> CommitInfo:
    return CommitInfo(container_id="c" * 64, container_config=CONTAINER, created=CREATED, **fields)


def test_the_image_is_the_parent_plus_the_layer(
    store: ContentStore, parent: dict[str, Any]
) -> None:
    layer = layer_tar({"x": b"hi\n"})
    config = committed_config(CONTAINER, None, ())
    record = commit_image(
        write(store, layer),
        store,
        parent,
        config=config,
        info=info(author="Ann <ann@example.com>", comment="fixed it"),
    )
    assert record.diff_ids == (sha(BASE_LAYER), sha(layer))
    assert record.layer_sizes == (len(BASE_LAYER), len(layer))
    assert store.read(sha(layer)) == layer
    assert record.config_digest == sha(record.config)
    assert image_config(store, record.config_digest) == {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": STAMP,
        "author": "Ann <ann@example.com>",
        "config": config,
        "container": "c" * 64,
        "container_config": CONTAINER,
        "rootfs": {"type": "layers", "diff_ids": [sha(BASE_LAYER), sha(layer)]},
        "history": [
            {"created": "2001-01-01T00:00:00Z", "created_by": "ADD base"},
            {
                "created": STAMP,
                "author": "Ann <ann@example.com>",
                "created_by": "sh -c echo hi > /x",
                "comment": "fixed it",
            },
        ],
    }


def test_a_layer_without_entries_adds_no_layer(store: ContentStore, parent: dict[str, Any]) -> None:
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w"):
        pass  # Python pads to 10 KiB of zeros; Go's writer to 1 KiB: neither has entries
    before = set(store.digests())
    record = commit_image(write(store, empty.getvalue()), store, parent, config={}, info=info())
    assert record.diff_ids == (sha(BASE_LAYER),)
    config = image_config(store, record.config_digest)
    assert config["history"][-1] == {
        "created": STAMP,
        "created_by": "sh -c echo hi > /x",
        "empty_layer": True,
    }
    assert "author" not in config
    assert set(store.digests()) == before | {record.config_digest}


def test_an_abandoned_layer_leaves_nothing(store: ContentStore) -> None:
    with LayerWriter(store) as writer:
        writer.write(layer_tar({"x": b"1"}))
    assert list(store.digests()) == []
    assert list((store.root / "tmp").iterdir()) == []
