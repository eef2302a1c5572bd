"""Images through the stock ``docker`` CLI against a real Dockyard: what a user types
(save, load, import, tag, images, inspect, history, rmi, image prune, pull) and what they
read back. Archives are hand-built with tarfile in :mod:`engine_image_builders`.

Each test works on images it made (unique ids and names) or its own tags of busybox, and
removes them afterwards whatever happened, so tests run in any order on the shared cloud.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import docker
import pytest
from engine_image_builders import (
    Member,
    Tidy,
    busybox_rootfs,
    docker_archive,
    gz,
    image_state,
    nonce,
    oci_archive,
    read_archive,
    rfc3339,
    runnable_image,
    sha,
    tar_of,
)


class DockerCli(Protocol):
    """The ``cli`` fixture: the stock docker CLI pointed at the test cloud."""

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def tidy(client: docker.DockerClient) -> Iterator[Tidy]:
    made = Tidy(client)
    yield made
    made.close()


@pytest.fixture
def name() -> str:
    """A repository name no other test uses."""
    return f"dyt-cli-{nonce()}"


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def inspect(cli: DockerCli, ref: str) -> dict[str, Any]:
    [attrs] = json.loads(cli.run("image", "inspect", ref).stdout)
    result: dict[str, Any] = attrs
    return result


def listed(cli: DockerCli, *filters: str, fmt: str = "{{.Repository}}:{{.Tag}}") -> list[str]:
    args = [arg for f in filters for arg in ("--filter", f)]
    return lines(cli.run("images", "--no-trunc", *args, "--format", fmt).stdout)


def run_output(cli: DockerCli, image: str, *cmd: str) -> str:
    """What ``docker run --rm image cmd`` prints, for a container that must exit 0.

    Run detached and polled with ``docker inspect``: a fast-exiting container can make the
    wait that ``docker run`` relies on miss its exit (reported separately); these tests are
    about the image, not about wait.
    """
    container = cli.run("run", "-d", image, *cmd).stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while True:
            fmt = "{{.State.Status}} {{.State.ExitCode}}"
            status, code = cli.run("inspect", "--format", fmt, container).stdout.split()
            if status in ("exited", "dead"):
                break
            assert time.monotonic() < deadline, f"container {container[:12]} is {status}"
            time.sleep(0.05)
        logs = cli.run("logs", container)
        assert code == "0", (code, logs.stdout, logs.stderr)
        return logs.stdout
    finally:
        cli.run("rm", "-f", container, check=False)


def failed(cli: DockerCli, *args: str, timeout: float = 60) -> str:
    """Run a command that must fail; its stderr."""
    result = cli.run(*args, check=False, timeout=timeout)
    assert result.returncode != 0, (args, result.stdout)
    assert result.stderr.strip(), args
    return result.stderr


# save / load ------------------------------------------------------------------------------


def test_save_rmi_load_round_trip(cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str) -> None:
    one = runnable_image(tags=[f"{name}-one:1"])
    two = runnable_image(tags=[f"{name}-two:2"])
    tidy.built(one, two)
    source = tmp_path / "built.tar"
    source.write_bytes(docker_archive([one, two]))
    cli.run("load", "-i", str(source))
    busybox_id = inspect(cli, "busybox:latest")["Id"]

    saved = tmp_path / "saved.tar"
    cli.run("save", "-o", str(saved), "busybox", f"{name}-one:1", f"{name}-two:2")
    names, files = read_archive(saved.read_bytes())
    assert {"manifest.json", "index.json", "oci-layout"} <= set(names)
    manifest = json.loads(files["manifest.json"])
    assert {tuple(e["RepoTags"]) for e in manifest} == {
        ("busybox:latest",),
        (f"{name}-one:1",),
        (f"{name}-two:2",),
    }
    for entry in manifest:
        assert entry["Config"] in files and all(layer in files for layer in entry["Layers"])
    shared = f"blobs/sha256/{one.diff_ids[0][7:]}"
    assert one.diff_ids[0] == two.diff_ids[0]
    assert names.count(shared) == 1
    for member, content in files.items():
        if member.startswith("blobs/sha256/"):
            assert sha(content) == "sha256:" + member.rsplit("/", 1)[1]

    removed = lines(cli.run("rmi", f"{name}-one:1", f"{name}-two:2").stdout)
    assert f"Untagged: {name}-one:1" in removed and f"Deleted: {one.id}" in removed
    assert f"Untagged: {name}-two:2" in removed and f"Deleted: {two.id}" in removed
    assert listed(cli, f"reference={name}-*") == []

    cli.run("load", "-i", str(saved))
    assert inspect(cli, f"{name}-one:1")["Id"] == one.id
    assert inspect(cli, f"{name}-two:2")["Id"] == two.id
    assert inspect(cli, "busybox:latest")["Id"] == busybox_id
    out = run_output(cli, f"{name}-two:2")
    assert out == two.marker + "\n"
    out = run_output(cli, f"{name}-one:1", "sh", "-c", "cat /etc/marker; echo ok")
    assert out == f"{one.marker}\nok\n"


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_load_hand_built_archives(
    cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str, layout: str
) -> None:
    first = runnable_image(tags=[f"{name}-a:1", f"{name}-a:latest"])
    second = runnable_image(tags=[f"{name}-b:1"], cmd=["sh", "-c", "echo second; cat /etc/marker"])
    untagged = runnable_image()
    images = [first, second, untagged]
    tidy.built(*images)
    if layout == "docker":
        archive = docker_archive(images, compress_layers=True)
    else:
        archive = oci_archive(images, nested=[True, False, False])
    path = tmp_path / "images.tar.gz"
    path.write_bytes(gz(archive))  # docker load takes a compressed archive too

    cli.run("load", "--input", str(path))
    for image in images:
        attrs = inspect(cli, image.id)
        assert sorted(attrs["RepoTags"]) == sorted(image.tags)
        assert attrs["RootFS"]["Layers"] == image.diff_ids
    assert sorted(listed(cli, f"reference={name}-*")) == [
        f"{name}-a:1",
        f"{name}-a:latest",
        f"{name}-b:1",
    ]
    assert run_output(cli, f"{name}-a") == first.marker + "\n"
    assert run_output(cli, f"{name}-b:1") == f"second\n{second.marker}\n"
    assert run_output(cli, untagged.id[7:19]) == untagged.marker + "\n"
    cli.run("load", "-q", "-i", str(path))  # loading again changes nothing
    assert inspect(cli, f"{name}-a:1")["Id"] == first.id


def test_load_prints_what_it_loaded(cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str) -> None:
    tagged = runnable_image(tags=[f"{name}:1", f"{name}-other:2"])
    untagged = runnable_image()
    tidy.built(tagged, untagged)
    path = tmp_path / "images.tar"
    path.write_bytes(docker_archive([tagged, untagged]))
    expected = sorted(
        [
            f"Loaded image: {name}:1",
            f"Loaded image: {name}-other:2",
            f"Loaded image ID: {untagged.id}",
        ]
    )
    assert sorted(lines(cli.run("load", "-i", str(path)).stdout)) == expected
    assert sorted(lines(cli.run("load", "--quiet", "-i", str(path)).stdout)) == expected


# import -----------------------------------------------------------------------------------


def test_import_with_changes_and_message(
    cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str
) -> None:
    rootfs = tmp_path / "rootfs.tar.gz"
    rootfs.write_bytes(gz(busybox_rootfs()))
    tidy.tag(f"{name}:v1")
    result = cli.run(
        "import",
        "--change",
        'CMD ["echo","hi"]',
        "--change",
        "ENV A=b",
        "--change",
        "WORKDIR /w",
        "--change",
        "EXPOSE 80",
        "--message",
        "from the cli tests",
        str(rootfs),
        f"{name}:v1",
    )
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    tidy.image(image_id)

    attrs = inspect(cli, f"{name}:v1")
    assert attrs["Id"] == image_id
    assert attrs["RepoTags"] == [f"{name}:v1"]
    assert attrs["Comment"] == "from the cli tests"
    assert attrs["Config"]["Cmd"] == ["echo", "hi"]
    assert "A=b" in attrs["Config"]["Env"]
    assert attrs["Config"]["WorkingDir"] == "/w"
    assert attrs["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert attrs["RootFS"]["Layers"] == [sha(busybox_rootfs())]

    history = lines(
        cli.run("history", "--no-trunc", "--format", "{{.ID}}|{{.Comment}}", f"{name}:v1").stdout
    )
    assert history == [f"{image_id}|from the cli tests"]
    assert run_output(cli, f"{name}:v1") == "hi\n"
    assert run_output(cli, f"{name}:v1", "sh", "-c", "pwd; echo $A") == "/w\nb\n"


def test_import_without_name_is_dangling(cli: DockerCli, tidy: Tidy, tmp_path: Path) -> None:
    mark = nonce()
    layer = tmp_path / "layer.tar"
    layer.write_bytes(tar_of([Member("hello.txt", b"hello\n")]))
    image_id = cli.run("import", "--change", f"LABEL dyt.nonce={mark}", str(layer)).stdout.strip()
    tidy.image(image_id)
    attrs = inspect(cli, image_id)
    assert attrs["RepoTags"] == []
    assert attrs["Comment"] == "Imported from -"
    row = listed(cli, "dangling=true", f"label=dyt.nonce={mark}", fmt="{{.ID}} {{.Repository}}")
    assert row == [f"{image_id} <none>"]


# tag / images / inspect / history ---------------------------------------------------------


def test_tag_and_list_with_filters(cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str) -> None:
    mark = nonce()
    labels = {"dyt.nonce": mark}
    old = runnable_image(tags=[f"{name}-old:1"], created=rfc3339(2), labels=labels)
    new = runnable_image(created=rfc3339(4), labels={**labels, "tier": "web"})
    tidy.built(old, new)
    archive = tmp_path / "images.tar"
    archive.write_bytes(docker_archive([old, new]))
    cli.run("load", "-i", str(archive))
    mine = f"label=dyt.nonce={mark}"
    assert listed(cli, mine, "dangling=true", fmt="{{.ID}}") == [new.id]

    cli.run("tag", f"{name}-old:1", tidy.tag(f"{name}-old:2"))
    cli.run("tag", new.id[7:19], tidy.tag(f"{name}/new"))

    assert sorted(listed(cli, f"reference={name}-old")) == [f"{name}-old:1", f"{name}-old:2"]
    assert listed(cli, f"reference={name}/*") == [f"{name}/new:latest"]
    assert set(listed(cli, mine, fmt="{{.ID}}")) == {old.id, new.id}
    assert listed(cli, mine, "label=tier=web", fmt="{{.ID}}") == [new.id]
    # one row per tag: {name}-old:1 and {name}-old:2 are the same image
    assert listed(cli, mine, f"before={name}/new", fmt="{{.ID}}") == [old.id, old.id]
    assert listed(cli, mine, f"since={name}-old:1", fmt="{{.ID}}") == [new.id]
    assert listed(cli, mine, "dangling=false", fmt="{{.ID}}") == [new.id, old.id, old.id]
    assert listed(cli, mine, "dangling=true", fmt="{{.ID}}") == []

    table = lines(cli.run("images", f"{name}-old").stdout)
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(row.split()[:3] == [f"{name}-old", "1", old.id[7:19]] for row in table[1:])
    quiet = lines(cli.run("images", "-q", "--filter", mine).stdout)
    assert sorted(quiet) == sorted([old.id[7:19], old.id[7:19], new.id[7:19]])


def test_images_reference_filter_shows_only_matching_tags(
    cli: DockerCli, tidy: Tidy, name: str
) -> None:
    # moby lists only the tags that match the reference filter: one row for busybox here,
    # not one per tag busybox has.
    cli.run("tag", "busybox", tidy.tag(f"{name}-bb:mine"))
    cli.run("tag", "busybox", tidy.tag(f"{name}-bb:other"))
    busybox_id = inspect(cli, "busybox:latest")["Id"]
    fmt = "{{.Repository}}:{{.Tag}} {{.ID}}"
    assert listed(cli, f"reference={name}-bb:mine", fmt=fmt) == [f"{name}-bb:mine {busybox_id}"]
    assert sorted(listed(cli, f"reference={name}-bb", fmt=fmt)) == [
        f"{name}-bb:mine {busybox_id}",
        f"{name}-bb:other {busybox_id}",
    ]


def test_inspect_and_history(cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str) -> None:
    history = [
        {"created": rfc3339(1), "created_by": "/bin/sh -c #(nop) ADD file:rootfs in /"},
        {"created": rfc3339(2), "created_by": "/bin/sh -c #(nop)  ENV X=1", "empty_layer": True},
        {"created": rfc3339(3), "created_by": "/bin/sh -c echo > /etc/marker"},
    ]
    image = runnable_image(tags=[f"{name}:v1"], created=rfc3339(3), history=history)
    tidy.built(image)
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive([image]))
    cli.run("load", "-i", str(archive))

    attrs = inspect(cli, f"{name}:v1")
    for key in ("Id", "RepoTags", "RepoDigests", "Created", "Config", "RootFS", "Size"):
        assert key in attrs, key
    assert attrs["Id"] == image.id
    assert attrs["RootFS"]["Layers"] == image.diff_ids
    assert (attrs["Os"], attrs["Architecture"]) == ("linux", "amd64")
    fmt = "{{.Id}} {{.Os}}/{{.Architecture}} {{json .RepoTags}}"
    assert cli.run("image", "inspect", "--format", fmt, image.id[7:19]).stdout == (
        f'{image.id} linux/amd64 ["{name}:v1"]\n'
    )

    rows = lines(
        cli.run("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}", f"{name}:v1").stdout
    )
    assert rows == [
        f"{image.id}|/bin/sh -c echo > /etc/marker",
        "<missing>|/bin/sh -c #(nop)  ENV X=1",
        "<missing>|/bin/sh -c #(nop) ADD file:rootfs in /",
    ]
    table = lines(cli.run("history", f"{name}:v1").stdout)
    assert table[0].split()[0] == "IMAGE"
    assert table[1].split()[0] == image.id[7:19]
    assert [row.split()[0] for row in table[2:]] == ["<missing>", "<missing>"]


# rmi / prune ------------------------------------------------------------------------------


def test_rmi_rules(cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str) -> None:
    image = runnable_image(tags=[f"{name}:a", f"{name}:b"])
    tidy.built(image)
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive([image]))
    cli.run("load", "-i", str(archive))

    error = failed(cli, "rmi", image.id[7:19])
    assert "must be forced" in error and "referenced in multiple repositories" in error
    assert cli.run("rmi", f"{name}:a").stdout == f"Untagged: {name}:a\n"

    container = cli.run("run", "-d", f"{name}:b", "sleep", "30").stdout.strip()
    tidy.containers.append(container)
    error = failed(cli, "rmi", f"{name}:b")
    assert "must force" in error and container[:12] in error
    error = failed(cli, "rmi", "-f", image.id[7:19])
    assert "cannot be forced" in error and f"running container {container[:12]}" in error
    assert inspect(cli, f"{name}:b")["Id"] == image.id

    cli.run("rm", "-f", container)
    out = lines(cli.run("rmi", f"{name}:b").stdout)
    assert out[0] == f"Untagged: {name}:b"
    assert f"Deleted: {image.id}" in out
    assert listed(cli, f"reference={name}") == []
    assert "No such image" in failed(cli, "image", "inspect", f"{name}:b")


def test_image_prune(cli: DockerCli, tidy: Tidy, tmp_path: Path, name: str) -> None:
    mark = nonce()
    labels = {"dyt.nonce": mark}
    tagged = runnable_image(tags=[f"{name}:keep"], labels=labels)
    dangling = runnable_image(labels=labels)
    used = runnable_image(labels=labels)
    tidy.built(tagged, dangling, used)
    archive = tmp_path / "images.tar"
    archive.write_bytes(docker_archive([tagged, dangling, used]))
    cli.run("load", "-i", str(archive))
    container = cli.run("create", used.id, "true").stdout.strip()
    tidy.containers.append(container)
    mine = f"label=dyt.nonce={mark}"

    out = cli.run("image", "prune", "--force", "--filter", mine).stdout
    assert "Deleted Images:" in out and f"deleted: {dangling.id}" in out
    assert tagged.id not in out and used.id not in out
    assert "Total reclaimed space:" in out
    assert set(listed(cli, mine, fmt="{{.ID}}")) == {tagged.id, used.id}

    out = cli.run("image", "prune", "--all", "--force", "--filter", mine).stdout
    assert f"untagged: {name}:keep" in out and f"deleted: {tagged.id}" in out
    assert used.id not in out
    assert listed(cli, mine, fmt="{{.ID}}") == [used.id]
    assert inspect(cli, "busybox:latest")


# errors -----------------------------------------------------------------------------------


def test_bad_archives_are_refused(
    cli: DockerCli, api: docker.APIClient, tmp_path: Path, name: str
) -> None:
    image = runnable_image(tags=[f"{name}:bad"])
    good = docker_archive([image])
    names, files = read_archive(good)
    forged = dict(files)
    forged[json.loads(files["manifest.json"])[0]["Layers"][1]] = b"not the layer\n" * 100
    state = image_state(api)
    for label, data in (
        ("truncated", good[: len(good) // 2]),
        ("not-an-image", tar_of([Member("hello.txt", b"hi\n")])),
        ("digest-mismatch", tar_of([Member(n, forged[n]) for n in names])),
        ("dotdot", tar_of([*(Member(n, files[n]) for n in names), Member("../x", b"x")])),
        ("empty", b""),
    ):
        path = tmp_path / f"{label}.tar"
        path.write_bytes(data)
        started = time.monotonic()
        error = failed(cli, "load", "-i", str(path))
        assert time.monotonic() - started < 30, label
        assert "Loaded image" not in error, label
    assert image_state(api) == state


def test_bad_references_and_unknown_images(
    cli: DockerCli, api: docker.APIClient, tmp_path: Path, name: str
) -> None:
    state = image_state(api)
    assert "invalid reference format" in failed(cli, "tag", "busybox", f"{name}-UPPER:1")
    assert "invalid reference format" in failed(cli, "tag", "busybox", f"{name}:bad tag")
    assert "invalid reference format" in failed(cli, "tag", "busybox", f"{name}:-dash")
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_of([Member("hello.txt", b"hi\n")]))
    assert "invalid reference format" in failed(cli, "import", str(rootfs), f"{name}-UPPER")
    assert "not a valid change command" in failed(
        cli, "import", "--change", "RUN true", str(rootfs), name
    )

    missing = f"dyt-cli-missing-{nonce()}"
    assert "No such image" in failed(cli, "rmi", missing)
    assert "No such image" in failed(cli, "image", "inspect", missing)
    assert "No such image" in failed(cli, "history", missing)
    assert "No such image" in failed(cli, "tag", missing, f"{name}:x")
    assert failed(cli, "save", "-o", str(tmp_path / "none.tar"), missing)
    assert image_state(api) == state


def test_pull_and_run_of_a_missing_image_fail_cleanly(cli: DockerCli, name: str) -> None:
    started = time.monotonic()
    error = failed(cli, "pull", f"{name}/alpine:3.20", timeout=30)
    assert f"{name}/alpine" in error
    assert time.monotonic() - started < 20

    started = time.monotonic()
    result = cli.run("run", "--rm", f"{name}-nowhere", "true", check=False, timeout=30)
    assert result.returncode == 125
    assert f"Unable to find image '{name}-nowhere:latest' locally" in result.stderr
    assert "Error" in result.stderr
    assert time.monotonic() - started < 20
