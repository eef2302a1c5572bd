"""``docker commit`` through docker-py and the stock docker CLI, on a real cloud.

Every committed image is run: it must hold exactly the container's changes (files added,
modified, deleted, a directory replaced whole), with the config the commit asked for. The
layer must leave out the runtime's mount points; a container that changed nothing adds no
layer. The container is paused for the commit and unpaused after (also when the commit is
refused); a refused commit leaves no image and no blob. Events and the audit log say what
happened.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from engine_image_builders import (
    BuiltImage,
    Tidy,
    blob_names,
    busybox_rootfs,
    docker_archive,
    files_layer,
    image_config,
    image_state,
    load,
    nonce,
    save,
)

from dockyard.testing.cloud import DockerCli, TestCloud

MIB = 1 << 20
# The script of the container whose changes are committed: every kind of change.
CHANGES = """
set -e
echo added > /srv/added
echo changed > /etc/marker
rm /srv/keep
rm -rf /srv/old && mkdir /srv/old && echo fresh > /srv/old/c
mkdir -p /deep/er && echo deep > /deep/er/file
ln /deep/er/file /deep/hard && ln -s er/file /deep/sym
chown 1000:1001 /deep/er/file && chmod 640 /deep/er/file && chmod 700 /deep
touch /ready
sleep 3600
"""
# What the committed image shows of those changes.
CHECK = """
cat /srv/added /etc/marker /srv/old/*
test -e /srv/keep || echo keep-gone
ls /srv/old
stat -c '%u:%g %a' /deep/er/file /deep
readlink /deep/sym
test "$(stat -c %i /deep/er/file)" = "$(stat -c %i /deep/hard)" && echo hard-linked
echo "env:$FROM_COMMIT"
"""
SEEN = "added\nchanged\nfresh\nkeep-gone\nc\n1000:1001 640\n0:0 700\ner/file\nhard-linked\nenv:1\n"


@pytest.fixture
def tidy(client: docker.DockerClient) -> Iterator[Tidy]:
    made = Tidy(client)
    yield made
    made.close()


@pytest.fixture
def base(api: docker.APIClient, tidy: Tidy) -> BuiltImage:
    """busybox plus /etc/marker, a directory /srv/old with two files, and /srv/keep."""
    layers = [
        busybox_rootfs(),
        files_layer(
            {
                "etc/marker": f"marker-{nonce()}\n".encode(),
                "srv/old/a": b"a\n",
                "srv/old/b": b"b\n",
                "srv/keep": b"keep\n",
            }
        ),
    ]
    image = BuiltImage(layers=layers, config=image_config(layers), tags=[f"commit-base:{nonce()}"])
    load(api, docker_archive([image]))
    tidy.built(image)
    tidy.tag(image.tags[0])
    return image


def wait_for(predicate: Any, what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def ready(container: Any) -> None:
    def exists() -> bool:
        try:
            container.get_archive("/ready")
        except docker.errors.NotFound:
            return False
        return True

    wait_for(exists, f"/ready in {container.short_id}")


def run_image(client: docker.DockerClient, image: str, script: str) -> str:
    output = client.containers.run(image, ["sh", "-c", script], remove=True)
    return bytes(output).decode()


def new_layer(api: docker.APIClient, image_id: str) -> list[str]:
    """The names in the image's top layer, from ``docker save``."""
    top = api.inspect_image(image_id)["RootFS"]["Layers"][-1]
    with tarfile.open(fileobj=io.BytesIO(save(api, [image_id]))) as archive:
        reader = archive.extractfile(f"blobs/sha256/{top.removeprefix('sha256:')}")
        assert reader is not None
        with tarfile.open(fileobj=io.BytesIO(reader.read())) as layer:
            return layer.getnames()


def events_of(api: docker.APIClient, since: float, **filters: Any) -> list[dict[str, Any]]:
    return list(api.events(since=since, until=time.time(), filters=filters, decode=True))


def audit(api: docker.APIClient, **params: str) -> list[dict[str, Any]]:
    response = api.request("GET", f"{api.base_url}/v1/audit", params=params, timeout=30)
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()
    return records


# docker-py -------------------------------------------------------------------------------


def test_a_running_containers_changes_are_in_the_committed_image(
    client: docker.DockerClient, api: docker.APIClient, base: BuiltImage, tidy: Tidy
) -> None:
    container = client.containers.run(base.id, ["sh", "-c", CHANGES], detach=True)
    tidy.containers.append(container.id)
    ready(container)
    tag = tidy.tag(f"commit-test/app-{nonce()}:v1")
    repository, _, version = tag.partition(":")
    since = time.time()
    image = container.commit(
        repository=repository,
        tag=version,
        message="every kind of change",
        author="Ann <ann@example.com>",
        changes=["ENV FROM_COMMIT=1", 'CMD ["cat", "/srv/added"]'],
    )
    tidy.image(image.id)

    container.reload()
    assert container.status == "running", "unpaused after the commit"
    assert run_image(client, tag, CHECK) == SEEN
    assert bytes(client.containers.run(tag, remove=True)) == b"added\n"

    inspected = api.inspect_image(image.id)
    assert inspected["RepoTags"] == [tag]
    assert inspected["Parent"] == base.id
    assert inspected["Container"] == container.id
    assert inspected["ContainerConfig"]["Cmd"] == ["sh", "-c", CHANGES]
    assert inspected["Comment"] == "every kind of change"
    assert inspected["Author"] == "Ann <ann@example.com>"
    assert inspected["Config"]["Cmd"] == ["cat", "/srv/added"]
    assert "FROM_COMMIT=1" in inspected["Config"]["Env"]
    assert inspected["Config"]["Image"] == base.id
    assert inspected["RootFS"]["Layers"][:-1] == base.diff_ids
    history = api.history(image.id)
    assert history[0]["Comment"] == "every kind of change"
    assert history[0]["CreatedBy"] == f"sh -c {CHANGES}"
    assert history[0]["Size"] > 0

    names = new_layer(api, image.id)
    assert {"srv/.wh.keep", "srv/old/.wh..wh..opq", "deep/hard", "ready"} <= set(names)
    for mount_point in ("etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev"):
        assert not [n for n in names if n == mount_point or n.startswith(mount_point + "/")]

    seen = events_of(api, since, container=container.id)
    assert [e["Action"] for e in seen] == ["pause", "commit", "unpause"]
    attributes = seen[1]["Actor"]["Attributes"]
    assert (
        attributes
        | {
            "comment": "every kind of change",
            "imageID": image.id,
            "imageRef": tag,
            "image": base.id,
            "name": container.name,
        }
        == attributes
    )
    tagged = events_of(api, since, type="image", event="tag")
    assert [(e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in tagged] == [
        (image.id, tag)
    ]
    (record,) = audit(api, action="image_commit", since=str(since))
    assert (record["target"], record["created"], record["status"]) == (container.id, image.id, 201)


def test_without_pause_the_container_is_never_paused(
    client: docker.DockerClient, api: docker.APIClient, base: BuiltImage, tidy: Tidy
) -> None:
    container = client.containers.run(base.id, ["sh", "-c", CHANGES], detach=True)
    tidy.containers.append(container.id)
    ready(container)
    since = time.time()
    image = tidy.image(api.commit(container.id, pause=False)["Id"])
    assert [e["Action"] for e in events_of(api, since, container=container.id)] == ["commit"]
    assert run_image(client, image, CHECK) == SEEN.replace("env:1", "env:")


def test_a_paused_container_stays_paused(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy
) -> None:
    script = "echo added > /added && touch /ready && sleep 600"
    container = client.containers.run("busybox", ["sh", "-c", script], detach=True)
    tidy.containers.append(container.id)
    ready(container)
    container.pause()
    since = time.time()
    image = tidy.image(container.commit().id)
    container.reload()
    assert container.status == "paused"
    assert [e["Action"] for e in events_of(api, since, container=container.id)] == ["commit"]
    assert run_image(client, image, "cat /added") == "added\n"
    container.unpause()


def test_the_request_body_overrides_the_containers_config(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy
) -> None:
    container = client.containers.create(
        "busybox", ["true"], environment={"KEPT": "yes"}, labels={"from": "container"}
    )
    tidy.containers.append(container.id)
    conf = {"Cmd": ["echo", "from-conf"], "Labels": {"extra": "1"}}
    image = tidy.image(api.commit(container.id, conf=conf)["Id"])
    config = api.inspect_image(image)["Config"]
    assert config["Cmd"] == ["echo", "from-conf"]
    assert config["Labels"]["extra"] == "1" and config["Labels"]["from"] == "container"
    assert "KEPT=yes" in config["Env"]
    assert bytes(client.containers.run(image, remove=True)) == b"from-conf\n"
    with pytest.raises(docker.errors.APIError) as bad:
        api.commit(container.id, conf={"Env": "not-a-list"})
    assert bad.value.status_code == 400


def test_a_container_that_changed_nothing_adds_no_layer(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy
) -> None:
    busybox = api.inspect_image("busybox")
    ran = client.containers.run("busybox", ["true"], detach=True)
    tidy.containers.append(ran.id)
    ran.wait(timeout=30)
    created = client.containers.create("busybox", ["true"])
    tidy.containers.append(created.id)
    for container in (ran, created):
        image = tidy.image(container.commit(message="nothing").id)
        assert api.inspect_image(image)["RootFS"]["Layers"] == busybox["RootFS"]["Layers"]
        top = api.history(image)[0]
        assert (top["Comment"], top["Size"]) == ("nothing", 0)


def test_a_refused_change_commits_nothing_and_unpauses(
    client: docker.DockerClient, api: docker.APIClient, tidy: Tidy
) -> None:
    container = client.containers.run("busybox", ["sleep", "600"], detach=True)
    tidy.containers.append(container.id)
    before = image_state(api)
    with pytest.raises(docker.errors.APIError) as refused:
        api.commit(container.id, repository="refused", changes=["RUN rm -rf /"])
    assert refused.value.status_code == 400
    assert "RUN is not a valid change command" in str(refused.value.explanation)
    assert image_state(api) == before
    container.reload()
    assert container.status == "running"


def test_a_missing_container_is_404(api: docker.APIClient) -> None:
    with pytest.raises(docker.errors.NotFound) as missing:
        api.commit("nosuch-commit-container", repository="x")
    assert "No such container: nosuch-commit-container" in str(missing.value.explanation)


# the docker CLI --------------------------------------------------------------------------


def test_the_docker_cli_commits_a_stopped_container_with_changes(
    cli: DockerCli, api: docker.APIClient, client: docker.DockerClient, tidy: Tidy
) -> None:
    name = f"commit-cli-{nonce()}"
    tidy.containers.append(name)
    script = (
        "echo from-stopped > /greeting; rm /etc/group; mkdir -p /usr/share/x; "
        "echo 1 > /usr/share/x/y"
    )
    cli.run("run", "--name", name, "busybox", "sh", "-c", script)
    tag = tidy.tag(f"commit-cli/{nonce()}:v2")
    made = cli.run(
        "commit",
        "-c",
        'CMD ["cat", "/greeting"]',
        "--change",
        "LABEL stage=two",
        "-c",
        "WORKDIR /usr/share/x",
        "-m",
        "from the cli",
        "-a",
        "Bob",
        name,
        tag,
    ).stdout.strip()
    tidy.image(made)
    assert made.startswith("sha256:") and api.inspect_image(tag)["Id"] == made
    assert cli.run("run", "--rm", tag).stdout == "from-stopped\n"
    shown = cli.run("run", "--rm", tag, "sh", "-c", "pwd; cat y; test -e /etc/group || echo gone")
    assert shown.stdout == "/usr/share/x\n1\ngone\n"
    details = cli.run(
        "image", "inspect", "--format", "{{json .Config.Labels}}|{{.Comment}}|{{.Author}}", tag
    ).stdout.strip()
    labels, comment, author = details.split("|")
    assert json.loads(labels)["stage"] == "two"
    assert (comment, author) == ("from the cli", "Bob")
    history = cli.run("history", "--no-trunc", "--format", "{{.Comment}}", tag).stdout
    assert history.splitlines()[0] == "from the cli"


def test_the_docker_cli_commit_of_a_missing_container(cli: DockerCli) -> None:
    result = cli.run("commit", "nosuch-commit-cli", "x:y", check=False)
    assert result.returncode != 0
    assert "No such container: nosuch-commit-cli" in result.stderr


def test_the_docker_cli_keeps_a_running_container_running(
    cli: DockerCli, client: docker.DockerClient, tidy: Tidy
) -> None:
    name = f"commit-run-{nonce()}"
    tidy.containers.append(name)
    cli.run("run", "-d", "--name", name, "busybox", "sh", "-c", "echo hi > /hi; sleep 600")
    wait_for(lambda: "hi" in cli.run("exec", name, "ls", "/").stdout, "/hi")
    made = tidy.image(cli.run("commit", "--pause=false", name).stdout.strip())
    assert cli.run("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running"
    assert run_image(client, made, "cat /hi") == "hi\n"


# quota ------------------------------------------------------------------------------------


@pytest.mark.parametrize("megabytes", [2, 70], ids=["refused-whole", "refused-while-streaming"])
def test_a_commit_past_the_image_storage_quota_leaves_nothing(
    cloud: TestCloud, megabytes: int
) -> None:
    name = f"q{uuid.uuid4().hex[:8]}"
    admin = cloud.admin()
    token = admin.create_tenant(name, user="admin", seed_busybox=True)["token"]
    admin.set_quota(name, limits={"image_storage": "2m"})  # busybox holds about 1 MiB
    tenant = cloud.client(token)
    try:
        container = tenant.containers.run(
            "busybox",
            [
                "sh",
                "-c",
                f"head -c {megabytes * MIB} /dev/urandom > /big && touch /ready; sleep 600",
            ],
            detach=True,
        )
        ready(container)
        blobs = cloud.layout.blobs_dir
        before = (image_state(tenant.api), blob_names(blobs))
        with pytest.raises(docker.errors.APIError) as refused:
            container.commit(repository="too-big", tag="v1")
        assert refused.value.status_code == 403
        message = str(refused.value.explanation)
        assert message.startswith("quota exceeded: image_storage:"), message
        asked = re.search(r"([0-9.]+) MiB more asked", message)
        assert asked is not None, message
        if megabytes > 64:  # refused while it arrives, not once it is all on disk
            assert float(asked.group(1)) < megabytes, message
        assert (image_state(tenant.api), blob_names(blobs)) == before
        container.reload()
        assert container.status == "running"
    finally:
        for made in tenant.containers.list(all=True):
            made.remove(force=True)
        tenant.close()
