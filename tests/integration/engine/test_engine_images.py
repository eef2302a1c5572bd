"""Images through docker-py against a real Dockyard: save, load, import, tag, list, inspect,
history, remove, prune, and how bad input is refused.

Every test works on images it builds (unique ids and names) or on its own tags of
``busybox:latest``, and removes them afterwards, so tests run in any order on the shared
cloud. Archives are hand-built with tarfile in :mod:`engine_image_builders`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from engine_image_builders import (
    BUSYBOX,
    PATH_ENV,
    BuiltImage,
    Member,
    Tidy,
    blob_names,
    busybox_rootfs,
    docker_archive,
    files_layer,
    full_name,
    gz,
    hexof,
    image_state,
    load,
    nonce,
    oci_archive,
    read_archive,
    rfc3339,
    runnable_image,
    save,
    sha,
    tar_of,
)

from dockyard.testing.cloud import TestCloud


@pytest.fixture
def tidy(client: docker.DockerClient) -> Iterator[Tidy]:
    made = Tidy(client)
    yield made
    made.close()


@pytest.fixture
def name() -> str:
    """A repository name no other test uses."""
    return f"dyt-img-{nonce()}"


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_output(client: docker.DockerClient, image: str, *cmd: str) -> bytes:
    """``docker run --rm image cmd``: the output of a container that must exit 0.

    Polls the container's state rather than calling wait: a fast-exiting container can make
    POST /containers/{id}/wait miss its exit (reported separately); these tests are about
    the image, not about wait.
    """
    container = client.containers.run(image, list(cmd) or None, detach=True)
    try:
        wait_exited(container)
        out: bytes = container.logs()
        assert container.attrs["State"]["ExitCode"] == 0, (container.attrs["State"], out)
        return out
    finally:
        container.remove(force=True)


def wait_exited(container: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        if container.attrs["State"]["Status"] in ("exited", "dead"):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"container did not exit: {container.attrs['State']}")
        time.sleep(0.05)


def api_error(call: Any, *args: Any, **kwargs: Any) -> docker.errors.APIError:
    with pytest.raises(docker.errors.APIError) as info:
        call(*args, **kwargs)
    return info.value


def error_message(error: docker.errors.APIError) -> str:
    return str(error.explanation or "")


def ids_of(rows: list[dict[str, Any]]) -> set[str]:
    return {row["Id"] for row in rows}


def load_built(api: docker.APIClient, tidy: Tidy, *images: BuiltImage) -> list[str]:
    tidy.built(*images)
    return load(api, docker_archive(images))


# docker save ------------------------------------------------------------------------------


def test_save_one_image_layout(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    image = runnable_image(tags=[f"{name}:v1"])
    load_built(api, tidy, image)

    data = b"".join(api.get_image(f"{name}:v1"))
    names, files = read_archive(data)

    manifest = json.loads(files["manifest.json"])
    assert manifest == [
        {
            "Config": f"blobs/sha256/{image.id[7:]}",
            "RepoTags": [f"{name}:v1"],
            "Layers": [f"blobs/sha256/{d[7:]}" for d in image.diff_ids],
        }
    ]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    # The config is kept byte for byte (its digest is the image id; the builder pretty-prints
    # it, so a re-serialised config would not match), layers uncompressed.
    assert files[f"blobs/sha256/{image.id[7:]}"] == image.config
    for layer in image.layers:
        assert files[f"blobs/sha256/{hexof(layer)}"] == layer
    for member, content in files.items():
        if member.startswith("blobs/sha256/"):
            assert hexof(content) == member.rsplit("/", 1)[1], member
    assert len(names) == len(set(names)), "a member is written twice"

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    [descriptor] = index["manifests"]
    assert descriptor["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert descriptor["annotations"]["io.containerd.image.name"] == full_name(f"{name}:v1")
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    oci_manifest = json.loads(files[f"blobs/sha256/{descriptor['digest'][7:]}"])
    assert descriptor["size"] == len(files[f"blobs/sha256/{descriptor['digest'][7:]}"])
    assert oci_manifest["config"]["digest"] == image.id
    assert [layer["digest"] for layer in oci_manifest["layers"]] == image.diff_ids


def test_save_several_images_writes_shared_layers_once(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    first = runnable_image(tags=[f"{name}-a:1"])
    second = runnable_image(tags=[f"{name}-b:2", f"{name}-b:also"])
    load_built(api, tidy, first, second)
    shared = first.diff_ids[0]
    assert shared == second.diff_ids[0]

    data = save(api, [f"{name}-a:1", f"{name}-b:2", f"{name}-b:also", "busybox:latest"])
    names, files = read_archive(data)

    assert names.count(f"blobs/sha256/{shared[7:]}") == 1
    assert len(names) == len(set(names))
    by_config = {entry["Config"]: entry for entry in json.loads(files["manifest.json"])}
    busybox_id = api.inspect_image("busybox:latest")["Id"]
    assert set(by_config) == {f"blobs/sha256/{i[7:]}" for i in (first.id, second.id, busybox_id)}
    assert by_config[f"blobs/sha256/{first.id[7:]}"]["RepoTags"] == [f"{name}-a:1"]
    assert sorted(by_config[f"blobs/sha256/{second.id[7:]}"]["RepoTags"]) == [
        f"{name}-b:2",
        f"{name}-b:also",
    ]
    assert by_config[f"blobs/sha256/{busybox_id[7:]}"]["RepoTags"] == ["busybox:latest"]
    named = {
        d["annotations"]["io.containerd.image.name"]
        for d in json.loads(files["index.json"])["manifests"]
        if "annotations" in d
    }
    assert {full_name(f"{name}-a:1"), full_name(f"{name}-b:2"), full_name(f"{name}-b:also")} <= (
        named
    )

    # Round trip: remove both, load the archive back, same ids and tags, and they run.
    for tag in (f"{name}-a:1", f"{name}-b:2", f"{name}-b:also"):
        api.remove_image(tag)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(first.id)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(second.id)

    lines = load(api, data)
    assert sorted(lines) == sorted(
        [
            f"Loaded image: {name}-a:1",
            f"Loaded image: {name}-b:2",
            f"Loaded image: {name}-b:also",
            "Loaded image: busybox:latest",
        ]
    )
    assert api.inspect_image(f"{name}-a:1")["Id"] == first.id
    assert sorted(api.inspect_image(second.id)["RepoTags"]) == [f"{name}-b:2", f"{name}-b:also"]
    assert api.inspect_image("busybox:latest")["Id"] == busybox_id
    assert run_output(client, f"{name}-b:also") == second.marker.encode() + b"\n"


def test_save_by_id_writes_no_tags(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    image = runnable_image(tags=[f"{name}:v1"])
    load_built(api, tidy, image)
    _, files = read_archive(save(api, [image.id[7:19]]))
    [entry] = json.loads(files["manifest.json"])
    assert entry["Config"] == f"blobs/sha256/{image.id[7:]}"
    assert not entry["RepoTags"]


def test_save_repository_name_saves_all_its_tags(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    # `docker save repo` (no tag) saves every tag of the repository, not just :latest.
    one = runnable_image(tags=[f"{name}:one"])
    two = runnable_image(tags=[f"{name}:two"])
    load_built(api, tidy, one, two)
    _, files = read_archive(save(api, [name]))
    tags = {entry["Config"]: entry["RepoTags"] for entry in json.loads(files["manifest.json"])}
    assert tags == {
        f"blobs/sha256/{one.id[7:]}": [f"{name}:one"],
        f"blobs/sha256/{two.id[7:]}": [f"{name}:two"],
    }


def test_save_unknown_image_is_404(api: docker.APIClient) -> None:
    error = api_error(save, api, ["busybox:latest", f"dyt-img-missing-{nonce()}:1"])
    assert error.status_code == 404
    assert "dyt-img-missing" in error_message(error)


# docker load ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legacy_layout", "compress_layers"),
    [(True, False), (True, True), (False, False)],
    ids=["v1-dirs", "v1-dirs-gzip-layers", "blobs"],
)
def test_load_docker_archive_with_several_images(
    client: docker.DockerClient,
    api: docker.APIClient,
    tidy: Tidy,
    name: str,
    legacy_layout: bool,
    compress_layers: bool,
) -> None:
    tagged = runnable_image(tags=[f"{name}-a:1", f"{name}-a:2"])
    other = runnable_image(tags=[f"{name}-b:1"], cmd=["sh", "-c", "echo from-b; cat /etc/marker"])
    untagged = runnable_image()
    images = (tagged, other, untagged)
    tidy.built(*images)

    lines = load(
        api, docker_archive(images, legacy_layout=legacy_layout, compress_layers=compress_layers)
    )

    assert sorted(lines) == sorted(
        [
            f"Loaded image: {name}-a:1",
            f"Loaded image: {name}-a:2",
            f"Loaded image: {name}-b:1",
            f"Loaded image ID: {untagged.id}",
        ]
    )
    for image in images:
        attrs = api.inspect_image(image.id)
        assert attrs["Id"] == image.id
        assert sorted(attrs["RepoTags"]) == sorted(image.tags)
        # Layers are stored uncompressed: the ids are the config's diff_ids.
        assert attrs["RootFS"]["Layers"] == image.diff_ids
    assert run_output(client, f"{name}-b:1") == f"from-b\n{other.marker}\n".encode()
    assert run_output(client, untagged.id[7:19]) == untagged.marker.encode() + b"\n"


def test_load_oci_layout_with_several_images(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    plain = runnable_image(tags=[f"{name}-plain:1"])
    multi = runnable_image(tags=[f"{name}-multi:1", f"registry.example:5000/{name}/multi:2"])
    untagged = runnable_image()
    images = (plain, multi, untagged)
    tidy.built(*images)

    lines = load(api, oci_archive(images, nested=[False, True, False]))

    assert sorted(lines) == sorted(
        [
            f"Loaded image: {name}-plain:1",
            f"Loaded image: {name}-multi:1",
            f"Loaded image: registry.example:5000/{name}/multi:2",
            f"Loaded image ID: {untagged.id}",
        ]
    )
    for image in images:
        attrs = api.inspect_image(image.id)
        assert sorted(attrs["RepoTags"]) == sorted(image.tags)
        # gzip blobs in the archive, but the image's layers are the uncompressed diff ids
        assert attrs["RootFS"]["Layers"] == image.diff_ids
    assert run_output(client, f"{name}-multi:1") == multi.marker.encode() + b"\n"
    assert (
        run_output(client, f"registry.example:5000/{name}/multi:2", "cat", "/etc/marker")
        == multi.marker.encode() + b"\n"
    )


def test_load_whole_archive_gzip_compressed(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:gz"])
    tidy.built(image)
    assert load(api, gz(docker_archive([image]))) == [f"Loaded image: {name}:gz"]
    assert run_output(client, f"{name}:gz") == image.marker.encode() + b"\n"


def test_docker_py_images_load_returns_every_image(
    client: docker.DockerClient, tidy: Tidy, name: str
) -> None:
    first = runnable_image(tags=[f"{name}-a:1"])
    second = runnable_image(tags=[f"{name}-b:1"])
    tidy.built(first, second)
    loaded = client.images.load(docker_archive([first, second]))
    assert sorted(i.id for i in loaded) == sorted([first.id, second.id])


def test_load_moves_an_existing_tag(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    old = runnable_image(tags=[f"{name}:v1"])
    new = runnable_image(tags=[f"{name}:v1"])
    load_built(api, tidy, old)
    load_built(api, tidy, new)
    assert api.inspect_image(f"{name}:v1")["Id"] == new.id
    assert api.inspect_image(old.id)["RepoTags"] == []  # the old image is now dangling


def test_load_same_archive_twice_is_idempotent(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:v1"])
    archive = docker_archive([image])
    tidy.built(image)
    load(api, archive)
    state = image_state(api)
    assert load(api, archive) == [f"Loaded image: {name}:v1"]
    assert image_state(api) == state


# docker import ----------------------------------------------------------------------------


def import_image(
    api: docker.APIClient,
    data: bytes,
    *,
    repo: str = "",
    tag: str = "",
    message: str = "",
    changes: list[str] | None = None,
) -> str:
    """POST /images/create?fromSrc=-; the new image id from the answer."""
    params: dict[str, Any] = {"fromSrc": "-"}
    for key, value in (("repo", repo), ("tag", tag), ("message", message)):
        if value:
            params[key] = value
    if changes:
        params["changes"] = changes
    response = api._post(
        api._url("/images/create"),
        params=params,
        data=data,
        headers={"Content-Type": "application/tar"},
    )
    api._raise_for_status(response)
    statuses = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert not any("error" in s for s in statuses), statuses
    image_id: str = statuses[-1]["status"]
    assert image_id.startswith("sha256:") and len(image_id) == 71
    return image_id


@pytest.mark.parametrize("compressed", [False, True], ids=["tar", "tar.gz"])
def test_import_rootfs_with_changes(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy, name: str, compressed: bool
) -> None:
    rootfs = busybox_rootfs()
    tidy.tag(f"{name}:v1")
    image_id = tidy.image(
        import_image(
            api,
            gz(rootfs) if compressed else rootfs,
            repo=name,
            tag="v1",
            message="imported by the engine tests",
            changes=[
                'CMD ["echo","hi"]',
                "ENV A=b",
                "WORKDIR /w",
                "EXPOSE 80",
                "LABEL dyt.suite=import",
            ],
        )
    )
    attrs = api.inspect_image(f"{name}:v1")
    assert attrs["Id"] == image_id
    assert attrs["RepoTags"] == [f"{name}:v1"]
    assert attrs["Comment"] == "imported by the engine tests"
    config = attrs["Config"]
    assert config["Cmd"] == ["echo", "hi"]
    assert "A=b" in config["Env"]
    assert config["WorkingDir"] == "/w"
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["Labels"] == {"dyt.suite": "import"}
    # One layer: the uncompressed tarball as sent.
    assert attrs["RootFS"] == {"Type": "layers", "Layers": [sha(rootfs)]}
    assert attrs["Os"] == "linux"
    assert abs(epoch(attrs["Created"]) - time.time()) < 120

    [entry] = api.history(image_id)
    assert entry["Id"] == image_id and entry["Tags"] == [f"{name}:v1"]
    assert entry["Comment"] == "imported by the engine tests"

    assert run_output(client, f"{name}:v1") == b"hi\n"
    assert run_output(client, f"{name}:v1", "sh", "-c", "pwd; echo $A") == b"/w\nb\n"


def test_import_without_name_is_dangling(api: docker.APIClient, tidy: Tidy) -> None:
    marker = nonce()
    data = files_layer({"etc/marker": marker.encode()})
    image_id = tidy.image(import_image(api, data, changes=[f"LABEL dyt.nonce={marker}"]))
    attrs = api.inspect_image(image_id)
    assert attrs["RepoTags"] == []
    assert attrs["Comment"] == "Imported from -"
    rows = api.images(filters={"dangling": True, "label": f"dyt.nonce={marker}"})
    assert ids_of(rows) == {image_id}


def test_import_refuses_bad_input(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    state = image_state(api)
    rootfs = busybox_rootfs()
    for data, params, wanted in [
        (b"this is not a tar archive, " * 100, {"repo": name}, ""),
        (gz(b"not a tar either " * 100), {"repo": name}, ""),
        (rootfs[: len(rootfs) // 2], {"repo": name}, ""),
        (rootfs, {"repo": name, "changes": ["RUN echo no"]}, "not a valid change command"),
        (rootfs, {"repo": name, "changes": ["EXPOSE notaport"]}, ""),
        (rootfs, {"repo": f"{name}-UPPER"}, "invalid reference format"),
        (rootfs, {"repo": name, "tag": "bad:tag"}, "invalid"),
    ]:
        response = api._post(
            api._url("/images/create"), params={"fromSrc": "-", **params}, data=data
        )
        assert 400 <= response.status_code < 500, (params, response.status_code, response.text)
        message = response.json()["message"]
        assert message and wanted in message, (params, message)
    assert image_state(api) == state


# tag, list, inspect, history --------------------------------------------------------------


def test_tag_adds_names_and_untag_keeps_the_image(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    busybox_id = api.inspect_image("busybox:latest")["Id"]
    assert api.tag("busybox", tidy.tag(f"{name}/bb"), "one") is True
    tidy.tag(f"{name}-bb:latest")
    assert api.tag(busybox_id, f"{name}-bb") is True  # no tag: latest
    tags = api.inspect_image(f"{name}/bb:one")["RepoTags"]
    assert {"busybox:latest", f"{name}/bb:one", f"{name}-bb:latest"} <= set(tags)
    assert api.inspect_image(f"{name}-bb")["Id"] == busybox_id

    assert api.remove_image(f"{name}/bb:one") == [{"Untagged": f"{name}/bb:one"}]
    assert api.remove_image(f"{name}-bb") == [{"Untagged": f"{name}-bb:latest"}]
    attrs = api.inspect_image("busybox:latest")
    assert attrs["Id"] == busybox_id
    assert f"{name}/bb:one" not in attrs["RepoTags"]


def test_tag_moves_from_one_image_to_another(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    first = runnable_image(tags=[f"{name}-first:1"])
    second = runnable_image(tags=[f"{name}-second:1"])
    load_built(api, tidy, first, second)
    api.tag(first.id, name, "moving")
    api.tag(f"{name}-second:1", name, "moving")
    assert api.inspect_image(f"{name}:moving")["Id"] == second.id
    assert api.inspect_image(first.id)["RepoTags"] == [f"{name}-first:1"]
    assert sorted(api.inspect_image(second.id)["RepoTags"]) == [
        f"{name}-second:1",
        f"{name}:moving",
    ]


def test_list_filters(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    mark = nonce()
    old = runnable_image(
        tags=[f"{name}-old:1"], created=rfc3339(2), labels={"dyt.nonce": mark, "role": "base"}
    )
    mid = runnable_image(
        tags=[f"{name}-mid:1", f"{name}-mid:2"],
        created=rfc3339(3),
        labels={"dyt.nonce": mark, "role": "app"},
    )
    new = runnable_image(created=rfc3339(4), labels={"dyt.nonce": mark, "role": "app"})
    load_built(api, tidy, old, mid, new)
    mine = f"dyt.nonce={mark}"

    def listed(**filters: Any) -> set[str]:
        return ids_of(api.images(filters=filters))

    assert listed(reference=f"{name}-*") == {old.id, mid.id}
    assert listed(reference=f"{name}-mid") == {mid.id}
    assert listed(reference=f"{name}-*:2") == {mid.id}
    assert listed(reference=f"{name}-old:1") == {old.id}
    assert listed(reference=f"{name}-nothing*") == set()
    assert listed(label=mine) == {old.id, mid.id, new.id}
    assert listed(label=[mine, "role=app"]) == {mid.id, new.id}
    assert listed(label=[mine, "role"]) == {old.id, mid.id, new.id}
    assert listed(label=[mine, "role=nope"]) == set()
    assert listed(label=mine, dangling=True) == {new.id}
    assert listed(label=mine, dangling=False) == {old.id, mid.id}
    assert listed(label=mine, before=f"{name}-mid:1") == {old.id}
    assert listed(label=mine, before=new.id) == {old.id, mid.id}
    assert listed(label=mine, since=f"{name}-old:1") == {mid.id, new.id}
    assert listed(label=mine, since=mid.id[7:19]) == {new.id}
    assert listed(reference=f"{name}-*", since=f"{name}-old:1") == {mid.id}

    # Newest first, and the summary shape.
    rows = api.images(filters={"label": mine})
    assert [r["Id"] for r in rows] == [new.id, mid.id, old.id]
    row = rows[1]
    assert sorted(row["RepoTags"]) == [f"{name}-mid:1", f"{name}-mid:2"]
    assert row["RepoDigests"] == []
    assert row["Created"] == int(epoch(rfc3339(3)))
    assert row["Labels"] == {"dyt.nonce": mark, "role": "app"}
    assert row["Size"] >= BUSYBOX.stat().st_size
    assert row["Containers"] in (-1, 0)
    assert "ParentId" in row and "SharedSize" in row

    # quiet listing (docker images -q) and the unknown filter
    assert set(api.images(quiet=True, filters={"label": mine})) == {old.id, mid.id, new.id}
    error = api_error(api.images, filters={"colour": "blue"})
    assert error.status_code == 400
    error = api_error(api.images, filters={"before": f"dyt-img-missing-{nonce()}:1"})
    assert error.status_code == 404


def test_reference_filter_lists_only_matching_tags(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    # moby returns, per image, only the RepoTags that match the reference filter.
    image = runnable_image(tags=[f"{name}-x:1", f"{name}-x:2", f"{name}-y:1"])
    load_built(api, tidy, image)
    [row] = api.images(filters={"reference": f"{name}-x:2"})
    assert row["Id"] == image.id
    assert row["RepoTags"] == [f"{name}-x:2"]
    [row] = api.images(filters={"reference": f"{name}-x"})
    assert sorted(row["RepoTags"]) == [f"{name}-x:1", f"{name}-x:2"]


def test_inspect_shape(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    image = runnable_image(
        tags=[f"{name}:v1", f"{name}:v2"], created=rfc3339(5), labels={"purpose": "inspect"}
    )
    load_built(api, tidy, image)
    attrs = api.inspect_image(f"{name}:v1")
    assert attrs["Id"] == image.id
    assert sorted(attrs["RepoTags"]) == [f"{name}:v1", f"{name}:v2"]
    assert attrs["RepoDigests"] == []
    assert epoch(attrs["Created"]) == epoch(rfc3339(5))
    assert attrs["Created"].startswith("2001-01-05T00:00:00")
    assert attrs["Config"]["Cmd"] == ["cat", "/etc/marker"]
    assert attrs["Config"]["Env"] == [PATH_ENV]
    assert attrs["Config"]["Labels"] == {"purpose": "inspect"}
    assert attrs["Author"] == "dockyard engine tests"
    assert attrs["RootFS"] == {"Type": "layers", "Layers": image.diff_ids}
    assert attrs["Size"] >= BUSYBOX.stat().st_size
    assert attrs["Os"] == "linux"
    assert attrs["Architecture"] == "amd64"
    # Every way of naming the image finds the same one.
    for ref in (image.id, image.id[7:], image.id[7:19], image.id[:19], f"{name}:v2"):
        assert api.inspect_image(ref)["Id"] == image.id, ref
    assert api.inspect_image(f"docker.io/library/{name}:v1")["Id"] == image.id


def test_history_newest_first(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    history = [
        {"created": rfc3339(1), "created_by": "/bin/sh -c #(nop) ADD file:busybox in /"},
        {
            "created": rfc3339(2),
            "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
            "empty_layer": True,
        },
        {
            "created": rfc3339(3),
            "created_by": "/bin/sh -c echo marker > /etc/marker",
            "comment": "the marker",
        },
    ]
    image = runnable_image(tags=[f"{name}:v1"], created=rfc3339(3), history=history)
    load_built(api, tidy, image)

    rows = api.history(f"{name}:v1")
    assert [r["CreatedBy"] for r in rows] == [h["created_by"] for h in reversed(history)]
    assert [r["Created"] for r in rows] == [int(epoch(rfc3339(d))) for d in (3, 2, 1)]
    assert rows[0]["Id"] == image.id
    assert rows[0]["Tags"] == [f"{name}:v1"]
    assert rows[0]["Comment"] == "the marker"
    assert [r["Id"] for r in rows[1:]] == ["<missing>", "<missing>"]
    assert not rows[1]["Tags"] and not rows[2]["Tags"]
    assert rows[1]["Size"] == 0  # empty_layer
    assert rows[0]["Size"] > 0
    assert rows[2]["Size"] >= BUSYBOX.stat().st_size


# docker rmi -------------------------------------------------------------------------------


def deleted(report: list[dict[str, str]]) -> set[str]:
    return {r["Deleted"] for r in report if "Deleted" in r}


def untagged(report: list[dict[str, str]]) -> set[str]:
    return {r["Untagged"] for r in report if "Untagged" in r}


def test_rmi_untags_while_other_tags_remain(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    image = runnable_image(tags=[f"{name}:a", f"{name}:b"])
    load_built(api, tidy, image)
    assert api.remove_image(f"{name}:a") == [{"Untagged": f"{name}:a"}]
    assert api.inspect_image(image.id)["RepoTags"] == [f"{name}:b"]

    report = api.remove_image(f"{name}:b")  # the last tag: the image goes too
    assert report[0] == {"Untagged": f"{name}:b"}
    assert untagged(report) == {f"{name}:b"}
    assert image.id in deleted(report)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)
    assert api.images(filters={"reference": name}) == []
    assert image.id not in ids_of(api.images(all=True))


def test_rmi_by_id_with_several_tags_needs_force(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    image = runnable_image(tags=[f"{name}-x:1", f"{name}-y:1"])
    load_built(api, tidy, image)
    error = api_error(api.remove_image, image.id[7:19])
    assert error.status_code == 409
    assert "must be forced" in error_message(error)
    assert "referenced in multiple repositories" in error_message(error)
    assert sorted(api.inspect_image(image.id)["RepoTags"]) == [f"{name}-x:1", f"{name}-y:1"]

    report = api.remove_image(image.id[7:19], force=True)
    assert untagged(report) == {f"{name}-x:1", f"{name}-y:1"}
    assert image.id in deleted(report)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)


def test_rmi_by_id_with_one_tag_deletes(api: docker.APIClient, tidy: Tidy, name: str) -> None:
    image = runnable_image(tags=[f"{name}:only"])
    load_built(api, tidy, image)
    report = api.remove_image(image.id)
    assert untagged(report) == {f"{name}:only"}
    assert image.id in deleted(report)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(f"{name}:only")


def test_rmi_refused_while_a_stopped_container_uses_the_image(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:used"])
    load_built(api, tidy, image)
    container = api.create_container(f"{name}:used", ["true"])["Id"]
    tidy.containers.append(container)

    error = api_error(api.remove_image, f"{name}:used")
    assert error.status_code == 409
    assert "must force" in error_message(error)
    assert container[:12] in error_message(error)
    error = api_error(api.remove_image, image.id)
    assert error.status_code == 409
    assert "must be forced" in error_message(error)
    assert "stopped container" in error_message(error)
    assert api.inspect_image(f"{name}:used")["Id"] == image.id

    # Once the container is gone, the same request succeeds.
    api.remove_container(container)
    report = api.remove_image(f"{name}:used")
    assert image.id in deleted(report)


def test_rmi_force_by_tag_with_a_stopped_container_deletes_the_image(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    # moby: force skips the soft "stopped container" conflict, so the image goes.
    image = runnable_image(tags=[f"{name}:used"])
    load_built(api, tidy, image)
    container = api.create_container(f"{name}:used", ["true"])["Id"]
    tidy.containers.append(container)

    report = api.remove_image(f"{name}:used", force=True)
    assert report[0] == {"Untagged": f"{name}:used"}
    assert image.id in deleted(report)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)
    assert api.inspect_container(container)["Image"] == image.id


def test_rmi_force_by_id_with_a_stopped_container(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:used"])
    load_built(api, tidy, image)
    container = api.create_container(image.id, ["true"])["Id"]
    tidy.containers.append(container)
    report = api.remove_image(image.id, force=True)
    assert untagged(report) == {f"{name}:used"}
    assert image.id in deleted(report)


def test_rmi_running_container_cannot_be_forced(
    api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:run"])
    load_built(api, tidy, image)
    container = api.create_container(f"{name}:run", ["sleep", "30"])["Id"]
    tidy.containers.append(container)
    api.start(container)

    for force in (False, True):
        error = api_error(api.remove_image, image.id, force=force)
        assert error.status_code == 409
    assert "cannot be forced" in error_message(error)
    assert f"running container {container[:12]}" in error_message(error)
    error = api_error(api.remove_image, f"{name}:run")
    assert error.status_code == 409
    assert api.inspect_image(f"{name}:run")["Id"] == image.id

    # By tag with force: the tag goes, the image stays (dangling) for its container.
    assert api.remove_image(f"{name}:run", force=True) == [{"Untagged": f"{name}:run"}]
    assert api.inspect_image(image.id)["RepoTags"] == []
    assert api.inspect_container(container)["State"]["Running"] is True


# prune -------------------------------------------------------------------------------------


def test_image_prune_dangling_only(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    mark = nonce()
    labels = {"dyt.nonce": mark}
    tagged = runnable_image(tags=[f"{name}:keep"], labels=labels)
    dangling = runnable_image(labels=labels)
    used = runnable_image(labels=labels)
    load_built(api, tidy, tagged, dangling, used)
    container = api.create_container(used.id, ["true"])["Id"]
    tidy.containers.append(container)

    result = client.images.prune(filters={"label": f"dyt.nonce={mark}"})
    assert set(result) == {"ImagesDeleted", "SpaceReclaimed"}
    assert deleted(result["ImagesDeleted"]) >= {dangling.id}
    assert not deleted(result["ImagesDeleted"]) & {tagged.id, used.id}
    assert not untagged(result["ImagesDeleted"])
    assert result["SpaceReclaimed"] > 0
    assert ids_of(api.images(filters={"label": f"dyt.nonce={mark}"})) == {tagged.id, used.id}

    again = client.images.prune(filters={"label": f"dyt.nonce={mark}"})
    assert again == {"ImagesDeleted": None, "SpaceReclaimed": 0}


def test_image_prune_all_removes_unused(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy, name: str
) -> None:
    mark = nonce()
    labels = {"dyt.nonce": mark}
    tagged = runnable_image(tags=[f"{name}:a", f"{name}:b"], labels=labels)
    dangling = runnable_image(labels=labels)
    used = runnable_image(tags=[f"{name}:used"], labels=labels)
    load_built(api, tidy, tagged, dangling, used)
    container = api.create_container(f"{name}:used", ["true"])["Id"]
    tidy.containers.append(container)

    result = client.images.prune(filters={"dangling": False, "label": f"dyt.nonce={mark}"})
    assert deleted(result["ImagesDeleted"]) >= {tagged.id, dangling.id}
    assert used.id not in deleted(result["ImagesDeleted"])
    assert untagged(result["ImagesDeleted"]) == {f"{name}:a", f"{name}:b"}
    assert result["SpaceReclaimed"] > 0
    assert ids_of(api.images(filters={"label": f"dyt.nonce={mark}"})) == {used.id}
    assert api.inspect_image("busybox:latest")  # unlabelled images are untouched


# bad input ---------------------------------------------------------------------------------


def assert_load_refused(
    api: docker.APIClient, cloud: TestCloud, data: bytes, *, wanted: str = ""
) -> str:
    """The archive is refused with a 4xx and a message, and nothing is left behind."""
    state = image_state(api)
    blobs = blob_names(cloud.layout.blobs_dir)
    response = api._post(api._url("/images/load"), data=data, params={"quiet": "0"})
    if 200 <= response.status_code < 300:
        pytest.fail(f"archive accepted: {response.text}")
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    message: str = response.json()["message"]
    assert message and wanted in message
    assert image_state(api) == state
    assert blob_names(cloud.layout.blobs_dir) == blobs
    return message


def test_load_truncated_archive(api: docker.APIClient, cloud: TestCloud, name: str) -> None:
    image = runnable_image(tags=[f"{name}:cut"])
    archive = docker_archive([image])
    assert_load_refused(api, cloud, archive[: len(archive) // 2])
    assert_load_refused(api, cloud, gz(archive)[: len(archive) // 4])
    # manifest.json first, then the layers cut short: the manifest alone is not enough.
    names, files = read_archive(archive)
    names.sort(key=lambda n: n != "manifest.json")
    manifest_first = tar_of([Member(n, files[n]) for n in names])
    assert_load_refused(api, cloud, manifest_first[: len(manifest_first) // 2])
    assert_load_refused(api, cloud, manifest_first[: len(manifest_first) - 20_000])
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)


def test_load_tar_that_is_not_an_image_archive(api: docker.APIClient, cloud: TestCloud) -> None:
    assert_load_refused(api, cloud, tar_of([Member("hello.txt", b"hello\n")]))
    assert_load_refused(api, cloud, b"plain bytes, not even a tar archive\n" * 50)
    assert_load_refused(api, cloud, busybox_rootfs())  # a root filesystem is not an image
    assert_load_refused(api, cloud, tar_of([Member("manifest.json", b"{not json")]))


def test_load_layer_not_matching_diff_ids(
    api: docker.APIClient, cloud: TestCloud, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:liar"])
    # The real config (it names the real marker layer), but another layer in the archive.
    impostor = BuiltImage(
        layers=[image.layers[0], files_layer({"etc/marker": b"something else\n"})],
        config=image.config,
        tags=image.tags,
    )
    # Docker < 25 layout: <id>/layer.tar holds the impostor layer.
    names, files = read_archive(docker_archive([image]))
    files[json.loads(files["manifest.json"])[0]["Layers"][1]] = impostor.layers[1]
    assert_load_refused(api, cloud, tar_of([Member(n, files[n]) for n in names]))
    # Docker 25 layout: the impostor under its own digest, but not the config's diff id.
    assert_load_refused(api, cloud, docker_archive([impostor], legacy_layout=False))
    # OCI layout: manifest and blobs agree with each other, not with the config.
    assert_load_refused(api, cloud, oci_archive([impostor], compress_layers=False))
    assert_load_refused(api, cloud, oci_archive([impostor], compress_layers=True))
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)


def test_load_several_images_one_bad_loads_none(
    api: docker.APIClient, cloud: TestCloud, name: str
) -> None:
    good = runnable_image(tags=[f"{name}-good:1"])
    bad = runnable_image(tags=[f"{name}-bad:1"])
    archive = docker_archive([good, bad], legacy_layout=False)
    names, files = read_archive(archive)
    files[f"blobs/sha256/{bad.diff_ids[1][7:]}"] = files_layer({"etc/marker": b"forged\n"})
    assert_load_refused(api, cloud, tar_of([Member(n, files[n]) for n in names]))
    for image in (good, bad):
        with pytest.raises(docker.errors.ImageNotFound):
            api.inspect_image(image.id)


def test_load_member_names_with_dotdot(api: docker.APIClient, cloud: TestCloud, name: str) -> None:
    image = runnable_image(tags=[f"{name}:escape"])
    names, files = read_archive(docker_archive([image], legacy_layout=False))
    members = [Member(n, files[n]) for n in names]
    assert_load_refused(api, cloud, tar_of([*members, Member("../escape.txt", b"out\n")]))
    assert_load_refused(api, cloud, tar_of([Member("blobs/../../escape.txt", b"out\n"), *members]))
    # a manifest pointing outside the archive
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][1] = "../" + manifest[0]["Layers"][1]
    escaped = [
        Member(n, json.dumps(manifest).encode() if n == "manifest.json" else files[n])
        for n in names
    ]
    assert_load_refused(api, cloud, tar_of(escaped))
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)


def test_load_repo_tag_with_uppercase(api: docker.APIClient, cloud: TestCloud, name: str) -> None:
    image = runnable_image(tags=[f"{name}-Upper:1"])
    message = assert_load_refused(api, cloud, docker_archive([image]))
    assert "invalid reference format" in message
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(image.id)


def test_load_config_digest_mismatch(api: docker.APIClient, cloud: TestCloud, name: str) -> None:
    image = runnable_image(tags=[f"{name}:cfg"])
    names, files = read_archive(docker_archive([image], legacy_layout=False))
    config_name = f"blobs/sha256/{image.id[7:]}"
    files[config_name] = files[config_name].replace(b"dockyard engine tests", b"someone else")
    assert_load_refused(api, cloud, tar_of([Member(n, files[n]) for n in names]))


def test_reference_with_uppercase_is_refused(api: docker.APIClient, name: str) -> None:
    state = image_state(api)
    for repo, tag in ((f"{name}-Upper", "1"), (name.upper(), "")):
        response = api._post(
            api._url("/images/{0}/tag", "busybox:latest"), params={"repo": repo, "tag": tag}
        )
        assert response.status_code == 400, response.text
        assert "invalid reference format" in response.json()["message"]
    assert image_state(api) == state


def test_lookup_by_reference_with_uppercase_is_400(api: docker.APIClient, name: str) -> None:
    # moby parses the reference before looking it up (GetImage): a malformed reference is
    # 400 "invalid reference format", not 404 "No such image".
    state = image_state(api)
    for call in (api.inspect_image, api.remove_image, api.history):
        error = api_error(call, f"{name}-Upper:1")
        assert error.status_code == 400, call
        assert "invalid reference format" in error_message(error)
    assert image_state(api) == state


def test_tag_to_invalid_names(api: docker.APIClient, name: str) -> None:
    state = image_state(api)
    for repo, tag in (
        (f"{name} spaced", ""),
        (f"-{name}", ""),
        (f"{name}/", ""),
        (f"{name}//double", ""),
        (f"{name}:", ""),
        (name, "bad/tag"),
        (name, "-dash"),
        (name, "x" * 129),
        (f"{name}@sha256:{'a' * 64}", ""),
    ):
        response = api._post(
            api._url("/images/{0}/tag", "busybox:latest"), params={"repo": repo, "tag": tag}
        )
        assert response.status_code == 400, (repo, tag, response.status_code)
        assert response.json()["message"], (repo, tag)
    error = api_error(api.tag, f"dyt-img-missing-{nonce()}", name, "x")
    assert error.status_code == 404
    assert image_state(api) == state


def test_unknown_image_is_404(api: docker.APIClient) -> None:
    missing = f"dyt-img-missing-{nonce()}"
    error = api_error(api.remove_image, missing)
    assert error.status_code == 404
    assert "No such image" in error_message(error) and missing in error_message(error)
    error = api_error(api.remove_image, f"{missing}:v2", force=True)
    assert error.status_code == 404
    for ref in (missing, f"{missing}:v2", "sha256:" + "0" * 64, "0" * 12):
        error = api_error(api.inspect_image, ref)
        assert error.status_code == 404, ref
        assert "No such image" in error_message(error)
    error = api_error(api.history, missing)
    assert error.status_code == 404


def test_pull_is_a_clean_error(client: docker.DockerClient) -> None:
    started = time.monotonic()
    with pytest.raises(docker.errors.APIError) as info:
        client.images.pull(f"dyt-img-missing-{nonce()}/alpine", tag="3.20")
    assert time.monotonic() - started < 20
    assert 400 <= info.value.status_code < 500
    assert error_message(info.value)
    # `docker run` of a missing image ends the same way, quickly
    started = time.monotonic()
    with pytest.raises(docker.errors.APIError):
        client.containers.run(f"dyt-img-missing-{nonce()}", ["true"], remove=True)
    assert time.monotonic() - started < 20


def test_import_gzip_and_plain_give_the_same_layer(api: docker.APIClient, tidy: Tidy) -> None:
    # Importing the same bytes gzip-compressed or not gives the same layer (diff id).
    layer = files_layer({"srv/data.txt": b"same content\n"})
    plain = tidy.image(import_image(api, layer))
    zipped = tidy.image(import_image(api, gzip.compress(layer)))
    assert api.inspect_image(plain)["RootFS"]["Layers"] == [sha(layer)]
    assert api.inspect_image(zipped)["RootFS"]["Layers"] == [sha(layer)]
