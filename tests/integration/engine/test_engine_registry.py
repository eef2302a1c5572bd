"""The cloud's registry through the Docker API (ADR 0021): the curated images by their
Docker Hub names, push and pull of a tenant's own repositories with docker-py and the
docker CLI (login included), what another tenant cannot do, search, the dockyard
commands (images, cpi, images rm) and garbage collection while a push goes on."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from dockyard.client.dockerconfig import write_token
from dockyard.client.native import NativeClient
from dockyard.images.content import ContentStore
from dockyard.images.curated import build_curated
from dockyard.testing.bare_registry import BareRegistry
from dockyard.testing.cloud import TestCloud
from dockyard.testing.distribution_conformance import compare, run_conformance

DOCKYARD = Path(sys.executable).parent / "dockyard"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Tenant:
    name: str
    token: str
    namespace: str
    client: docker.DockerClient
    native: NativeClient
    config_dir: Path


def _tenant(cloud: TestCloud, root: Path, *, namespace: bool = True) -> Iterator[Tenant]:
    operator = cloud.admin()
    name = f"r{uuid.uuid4().hex[:8]}"
    made = operator.create_tenant(name, user="ann")
    token = made["token"]
    native = NativeClient(cloud.docker_host, token)
    ns = ""
    if namespace:
        ns = f"ns{uuid.uuid4().hex[:8]}"
        native.claim_namespace(ns)
    write_token(root, token)
    client = cloud.client(token, timeout=120)
    try:
        yield Tenant(name, token, ns, client, native, root)
    finally:
        for image in client.images.list():
            client.images.remove(image.id, force=True)
        client.close()


@pytest.fixture(scope="module")
def seeded(cloud: TestCloud) -> list[str]:
    return cloud.admin().seed_images()


@pytest.fixture(scope="module")
def alice(cloud: TestCloud, seeded: list[str], tmp_path_factory: Any) -> Iterator[Tenant]:
    yield from _tenant(cloud, tmp_path_factory.mktemp("alice"))


@pytest.fixture(scope="module")
def bob(cloud: TestCloud, seeded: list[str], tmp_path_factory: Any) -> Iterator[Tenant]:
    yield from _tenant(cloud, tmp_path_factory.mktemp("bob"))


def _stream(lines: Iterator[Any]) -> list[dict[str, Any]]:
    return list(lines)


def _errors(messages: list[dict[str, Any]]) -> list[str]:
    return [m["error"] for m in messages if "error" in m]


def _build(client: docker.DockerClient, tag: str, payload: bytes) -> str:
    """An image with one layer of its own on top of busybox (via commit)."""
    client.images.pull("busybox", tag="latest")
    container = client.containers.create("busybox", ["true"])
    try:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("payload.bin")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        container.put_archive("/", data.getvalue())
        repo, _, version = tag.rpartition(":")
        image = container.commit(repository=repo, tag=version)
    finally:
        container.remove(force=True)
    return str(image.id)


def test_seed_publishes_the_curated_set(seeded: list[str]) -> None:
    for ref in ("busybox:latest", "alpine:3.10", "alpine:latest", "hello-world:latest"):
        assert ref in seeded


def test_seed_keeps_no_blob_only_the_registry_needs(
    cloud: TestCloud, seeded: list[str], tmp_path: Path
) -> None:
    """The curated images are built in the controller's content store to be pushed; what
    no tenant's image uses is deleted again (hello-world's own layer and config)."""
    curated = build_curated(ContentStore(tmp_path / "content"))
    hello = next(c for c in curated if c.repository == "hello-world").record
    controller_blobs = ContentStore(cloud.layout.blobs_dir)
    assert not controller_blobs.has(hello.config_digest)
    assert not any(controller_blobs.has(d) for d in hello.diff_ids)


def test_curated_images_pull_by_their_docker_hub_names(alice: Tenant) -> None:
    image = alice.client.images.pull("alpine", tag="3.10")
    assert "alpine:3.10" in image.tags
    assert any(d.startswith("alpine@sha256:") for d in image.attrs["RepoDigests"])
    out = alice.client.containers.run("alpine:3.10", ["cat", "/etc/alpine-release"], remove=True)
    assert out.decode().startswith("3.10")
    hello = alice.client.containers.run("hello-world", remove=True)
    assert b"Hello from Docker!" in hello


def test_pull_streams_docker_progress_and_is_idempotent(alice: Tenant) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        alice.client.images.remove("busybox:latest", force=True)
    since = int(time.time()) - 1
    first = _stream(alice.client.api.pull("busybox", tag="latest", stream=True, decode=True))
    statuses = [m.get("status", "") for m in first]
    assert statuses[0] == "Pulling from library/busybox"
    assert any(s.startswith("Digest: sha256:") for s in statuses)
    assert statuses[-1].startswith("Status: ")
    again = _stream(alice.client.api.pull("busybox", tag="latest", stream=True, decode=True))
    assert again[-1]["status"] == "Status: Image is up to date for busybox:latest"
    events = alice.client.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"type": "image"}
    )
    pulls = [e for e in events if e["Action"] == "pull" and "busybox" in e["Actor"]["ID"]]
    assert [(e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in pulls] == [
        ("busybox:latest", "busybox:latest")
    ] * 2


def test_pull_of_a_missing_repository_or_tag_is_refused_before_the_stream(alice: Tenant) -> None:
    with pytest.raises(docker.errors.APIError) as denied:
        alice.client.images.pull("nosuchimage", tag="latest")
    assert "pull access denied for nosuchimage" in str(denied.value)
    with pytest.raises(docker.errors.NotFound, match="manifest for busybox:nosuchtag not found"):
        alice.client.images.pull("busybox", tag="nosuchtag")
    with pytest.raises(docker.errors.APIError, match="not reachable from this cloud"):
        alice.client.images.pull("quay.io/someone/app", tag="1")


def test_push_and_pull_own_repository(cloud: TestCloud, alice: Tenant) -> None:
    repo = f"{cloud.registry}/{alice.namespace}/app"
    image_id = _build(alice.client, f"{repo}:1", os.urandom(256 * 1024))
    pushed = _stream(alice.client.api.push(repo, tag="1", stream=True, decode=True))
    assert not _errors(pushed), pushed
    statuses = [m.get("status", "") for m in pushed]
    assert statuses[0] == f"The push refers to repository [{repo}]"
    assert "Pushed" in statuses
    assert any(s.startswith("Mounted from library/busybox") for s in statuses), statuses
    final = [m for m in pushed if "aux" in m or str(m.get("status", "")).startswith("1: digest:")]
    assert final, pushed
    again = _stream(alice.client.api.push(repo, tag="1", stream=True, decode=True))
    assert "Layer already exists" in [m.get("status") for m in again]

    alice.client.images.remove(f"{repo}:1")  # its only tag: the image goes
    with pytest.raises(docker.errors.ImageNotFound):
        alice.client.images.get(image_id)
    pulled = alice.client.images.pull(repo, tag="1")
    assert pulled.id == image_id
    digest = next(d for d in pulled.attrs["RepoDigests"] if d.startswith(repo)).split("@")[1]
    by_digest = alice.client.images.pull(f"{repo}@{digest}")
    assert by_digest.id == image_id


def test_another_tenant_cannot_pull_push_or_find_it(
    cloud: TestCloud, alice: Tenant, bob: Tenant
) -> None:
    repo = f"{cloud.registry}/{alice.namespace}/secret"
    _build(alice.client, f"{repo}:1", os.urandom(64 * 1024))
    assert not _errors(_stream(alice.client.api.push(repo, tag="1", stream=True, decode=True)))

    with pytest.raises(docker.errors.APIError) as denied:
        bob.client.images.pull(repo, tag="1")
    assert "pull access denied" in str(denied.value)
    with pytest.raises(docker.errors.APIError) as missing:
        bob.client.images.pull(f"{cloud.registry}/{alice.namespace}/nothing", tag="1")
    assert str(missing.value).replace("nothing", "secret") == str(denied.value)

    _build(bob.client, f"{repo}:2", os.urandom(1024))
    pushed = _stream(bob.client.api.push(repo, tag="2", stream=True, decode=True))
    assert any("denied" in e for e in _errors(pushed)), pushed
    assert alice.namespace not in str(bob.client.api.search(alice.namespace))
    assert bob.native.repositories() == []
    assert bob.client.images.pull("busybox", tag="latest").tags  # curated: everyone


def test_search_lists_own_and_curated(cloud: TestCloud, alice: Tenant) -> None:
    repo = f"{cloud.registry}/{alice.namespace}/findme"
    _build(alice.client, f"{repo}:1", b"x")
    assert not _errors(_stream(alice.client.api.push(repo, tag="1", stream=True, decode=True)))
    names = {r["name"]: r for r in alice.client.api.search("findme")}
    assert f"{alice.namespace}/findme" in names
    curated = {r["name"]: r for r in alice.client.api.search("busybox")}
    assert curated["busybox"]["is_official"] is True


def test_docker_cli_login_push_pull(cloud: TestCloud, alice: Tenant, tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    config = tmp_path / "docker-config"
    write_token(config, alice.token)
    env = {**os.environ, "DOCKER_HOST": cloud.docker_host, "DOCKER_CONFIG": str(config)}

    def docker_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    bad = docker_cli("login", cloud.registry, "-u", "ann", "--password-stdin", stdin="dyk_wrong")
    assert bad.returncode != 0
    assert "incorrect username or password" in bad.stderr
    good = docker_cli("login", cloud.registry, "-u", "ann", "--password-stdin", stdin=alice.token)
    assert good.returncode == 0, good.stderr
    assert "Login Succeeded" in good.stdout
    repo = f"{cloud.registry}/{alice.namespace}/cli"
    assert docker_cli("tag", "busybox", f"{repo}:v1").returncode == 0
    pushed = docker_cli("push", f"{repo}:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert "v1: digest: sha256:" in pushed.stdout
    assert docker_cli("rmi", f"{repo}:v1").returncode == 0
    pulled = docker_cli("pull", f"{repo}:v1")
    assert pulled.returncode == 0, pulled.stderr
    assert f"Downloaded newer image for {repo}:v1" in pulled.stdout or "up to date" in pulled.stdout


def _dockyard(cloud: TestCloud, tenant: Tenant, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": cloud.docker_host, "DOCKER_CONFIG": str(tenant.config_dir)}
    return subprocess.run(
        [str(DOCKYARD), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_dockyard_images_cpi_and_rm(cloud: TestCloud, alice: Tenant) -> None:
    ns = alice.namespace
    copied = _dockyard(cloud, alice, "cpi", "busybox", f"{ns}/base:1")
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.startswith(f"{ns}/base:1: digest: sha256:")
    assert _dockyard(cloud, alice, "cpi", "busybox", f"{ns}/base:2").returncode == 0
    listed = _dockyard(cloud, alice, "images")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [f"{cloud.registry}/{ns}/base", "1"] in [r[:2] for r in rows]
    pulled = alice.client.images.pull(f"{cloud.registry}/{ns}/base", tag="2")
    assert pulled.id == alice.client.images.get("busybox").id

    removed = _dockyard(cloud, alice, "images", "rm", f"{ns}/base:1")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"Deleted: {ns}/base:1"  # tag 2 still holds the manifest
    tags = {
        t["tag"]
        for r in alice.native.repositories()
        if r["name"] == f"{ns}/base"
        for t in r["tags"]
    }
    assert tags == {"2"}
    gone = _dockyard(cloud, alice, "images", "rm", f"{ns}/base:2")
    assert gone.returncode == 0, gone.stderr
    assert f"{ns}/base@sha256:" in gone.stdout
    refused = _dockyard(cloud, alice, "cpi", "busybox", "library/mine:1")
    assert refused.returncode != 0
    assert "denied" in refused.stderr


def test_gc_reclaims_deleted_images_and_never_breaks_a_push(
    cloud: TestCloud, alice: Tenant
) -> None:
    repo = f"{cloud.registry}/{alice.namespace}/garbage"
    _build(alice.client, f"{repo}:1", os.urandom(2 << 20))
    assert not _errors(_stream(alice.client.api.push(repo, tag="1", stream=True, decode=True)))
    assert alice.native.delete_image(f"{alice.namespace}/garbage:1")
    report = cloud.admin().registry_gc(grace=0)
    assert report["blobs_deleted"] >= 2  # the layer and the config
    assert report["bytes_freed"] >= 2 << 20

    # A push and collections at the same time: the push completes and pulls back whole.
    busy = f"{cloud.registry}/{alice.namespace}/busy"
    image_id = _build(alice.client, f"{busy}:1", os.urandom(8 << 20))
    results: list[list[dict[str, Any]]] = []
    pusher = threading.Thread(
        target=lambda: results.append(
            _stream(alice.client.api.push(busy, tag="1", stream=True, decode=True))
        )
    )
    pusher.start()
    for _ in range(3):
        cloud.admin().registry_gc(grace=0)
    pusher.join(120)
    assert results and not _errors(results[0]), results
    alice.client.images.remove(image_id, force=True)
    assert alice.client.images.pull(busy, tag="1").id == image_id


def test_conformance_in_a_tenant_namespace_matches_the_bare_registry(
    cloud: TestCloud, alice: Tenant, tmp_path: Path
) -> None:
    """The OCI distribution checks pass through the front, with token authentication, in a
    tenant's namespace at least as well as against the bare server."""
    with BareRegistry(tmp_path / "bare") as bare:
        reference = run_conformance(bare.url, "conformance/repo")
    ours = run_conformance(
        f"http://{cloud.registry}",
        f"{alice.namespace}/conformance",
        credentials=("ann", alice.token),
    )
    assert sum(r.passed for r in reference) > 50  # the yardstick did run
    assert compare(reference, ours) == []


def test_the_front_keeps_other_tenants_out(cloud: TestCloud, alice: Tenant, bob: Tenant) -> None:
    """Straight to the registry with bob's credentials: alice's repository answers exactly
    as a missing one does, bob's token grants nothing on it, and no catalog for tenants."""
    repo = f"{cloud.registry}/{alice.namespace}/direct"
    _build(alice.client, f"{repo}:1", b"direct")
    assert not _errors(_stream(alice.client.api.push(repo, tag="1", stream=True, decode=True)))
    front = f"http://{cloud.registry}"

    def attempt(path: str, scope: str, who: Tenant) -> tuple[int, list[Any], str]:
        grant = requests.get(
            f"{front}/token",
            params={"service": "dockyard-registry", "scope": scope},
            auth=("ann", who.token),
            timeout=30,
        )
        assert grant.status_code == 200, grant.text
        token = grant.json()["token"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        answer = requests.get(
            f"{front}{path}",
            headers={"Authorization": f"Bearer {token}", "Accept": _OCI_MANIFEST},
            timeout=30,
        )
        return answer.status_code, claims["access"], answer.text

    mine = attempt(
        f"/v2/{alice.namespace}/direct/manifests/1",
        f"repository:{alice.namespace}/direct:pull",
        alice,
    )
    assert mine[0] == 200
    theirs = attempt(
        f"/v2/{alice.namespace}/direct/manifests/1",
        f"repository:{alice.namespace}/direct:pull,push",
        bob,
    )
    missing = attempt(
        f"/v2/{alice.namespace}/nothing/manifests/1",
        f"repository:{alice.namespace}/nothing:pull,push",
        bob,
    )
    assert theirs[0] == missing[0] == 401
    granted = [a["actions"] for a in theirs[1]]
    assert granted == [a["actions"] for a in missing[1]]
    assert not any(granted)
    assert theirs[2].replace("direct", "nothing") == missing[2]
    catalog = attempt("/v2/_catalog", "registry:catalog:*", alice)
    assert catalog[0] == 401


def test_another_tenant_cannot_copy_or_delete_it(
    cloud: TestCloud, alice: Tenant, bob: Tenant
) -> None:
    """dockyard cpi and images rm on alice's repository answer bob as for a missing one."""
    ns = alice.namespace
    assert _dockyard(cloud, alice, "cpi", "busybox", f"{ns}/kept:1").returncode == 0
    theirs, missing = f"{ns}/kept:1", f"{ns}/nothing:1"
    copied = _dockyard(cloud, bob, "cpi", theirs, f"{bob.namespace}/stolen:1")
    copied_missing = _dockyard(cloud, bob, "cpi", missing, f"{bob.namespace}/stolen:1")
    assert copied.returncode != 0
    assert copied.stderr.replace(theirs, "<ref>") == copied_missing.stderr.replace(missing, "<ref>")
    removed = _dockyard(cloud, bob, "images", "rm", theirs)
    removed_missing = _dockyard(cloud, bob, "images", "rm", missing)
    assert removed.returncode != 0
    assert removed.stderr.replace(theirs, "<ref>") == removed_missing.stderr.replace(
        missing, "<ref>"
    )
    tags = {
        t["tag"]
        for r in alice.native.repositories()
        if r["name"] == f"{ns}/kept"
        for t in r["tags"]
    }
    assert tags == {"1"}


def test_a_failed_pull_keeps_no_layer(cloud: TestCloud, alice: Tenant) -> None:
    """A pull that fails after some layers are stored (here: a corrupt blob in the
    registry) leaves none of them in the controller's content store."""
    repo = f"{cloud.registry}/{alice.namespace}/broken"
    _build(alice.client, f"{repo}:base", b"small layer, stored first")
    container = alice.client.containers.create(f"{repo}:base", ["true"])
    try:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            payload = os.urandom(16 << 20)
            info = tarfile.TarInfo("big.bin")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        container.put_archive("/", data.getvalue())
        image = container.commit(repository=repo, tag="1")
    finally:
        container.remove(force=True)
    assert not _errors(_stream(alice.client.api.push(repo, tag="1", stream=True, decode=True)))
    small, big = image.attrs["RootFS"]["Layers"][-2:]
    blob = (
        cloud.layout.registry_storage
        / "docker/registry/v2/blobs/sha256"
        / big[7:9]
        / big[7:]
        / "data"
    )
    with blob.open("r+b") as handle:  # same size, other bytes: the digest check fails
        handle.seek(1 << 20)
        handle.write(os.urandom(4096))
    alice.client.images.remove(f"{repo}:1", force=True)
    alice.client.images.remove(f"{repo}:base", force=True)
    controller_blobs = ContentStore(cloud.layout.blobs_dir)
    assert not controller_blobs.has(small) and not controller_blobs.has(big)

    pulled = _stream(alice.client.api.pull(repo, tag="1", stream=True, decode=True))
    assert _errors(pulled), pulled
    assert "Pull complete" in [m.get("status") for m in pulled]  # the small one was stored
    assert not controller_blobs.has(small)
    assert not controller_blobs.has(big)
