"""The cross-tenant contract: tenant B can neither reach nor detect tenant A's objects.

Tenant A is the cloud's first tenant (the ``client`` fixture). It owns a running container
named ``web`` (with a volume, a label, an exec and its own image), a stopped one, a private
image with two tags, an unused image, two volumes and a token. Tenant B is a fresh tenant
with busybox. B tries every operation on A's objects by full id, by unique id prefix and by
name (or tag), through docker-py's low-level API and through the stock ``docker`` CLI
logged in as B. Each must answer exactly what it answers for an object that does not exist
(404 with the same message, the ref aside), never 403, and leave A's objects as they were
(an autouse fixture compares A's state before and after every test).

The operations are one table, :data:`OPERATIONS` (and :data:`CLI_OPERATIONS` for the
CLI): a later issue that adds an endpoint adds a row. Lists, filters, events, ``/info`` and
``/system/df`` are checked for what they show B; names and volume names are checked to be
free for B; and the content store is checked not to hand B a layer it only knows the digest
of.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from engine_image_builders import (
    BuiltImage,
    busybox_rootfs,
    docker_archive,
    files_layer,
    image_config,
    load,
    nonce,
    runnable_image,
    sha,
    tar_of,
)

from dockyard.testing.cloud import DockerCli, TestCloud

DOCKYARD = Path(sys.executable).parent / "dockyard"
SECRET = f"a-secret-{nonce()}"  # written by A into its volume and its logs


# Tenant A's objects -------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantA:
    """What A owns, and the refs B will try on it."""

    web: str  # running container "web": A's image, volume at /data, label contract=a
    stopped: str  # exited container "web-stopped"
    image: str  # A's private image (tags IMAGE_TAGS), used by web
    unused_image: str  # another private image, used by nothing (for prune)
    layer: str  # the diff id of the private image's own layer
    volume: str  # mounted by web, holds SECRET
    spare_volume: str  # used by nothing (for prune)
    exec_id: str  # created in web, never started
    token_id: str  # the id of A's token
    network: str  # the id of A's network NETWORK, which web is connected to


IMAGE_TAGS = ("contract-a/app:v1", "contract-a/app:latest")
UNUSED_TAG = "contract-a/unused:v1"
NETWORK = "contract-net"


def _native(api: docker.APIClient, method: str, path: str) -> Any:
    """A call of Dockyard's own API (no Docker version prefix) with the client's token."""
    return api.request(method, f"{api.base_url}{path}", timeout=30)


@pytest.fixture(scope="module")
def theirs(client: docker.DockerClient) -> Iterator[TenantA]:
    api = client.api
    private = runnable_image(tags=list(IMAGE_TAGS), labels={"contract": "a"})
    unused = runnable_image(tags=[UNUSED_TAG], labels={"contract": "a"})
    load(api, docker_archive([private, unused]))
    volume = f"appdata-{nonce()}"
    spare = f"spare-{nonce()}"
    api.create_volume(volume, labels={"contract": "a"})
    api.create_volume(spare, labels={"contract": "a"})
    web = api.create_container(
        private.id,
        # No exec: the shell's command line (with SECRET) stays on the host's process list.
        ["sh", "-c", f"echo {SECRET}; echo {SECRET} > /data/secret; sleep 3600; true"],
        name="web",
        labels={"contract": "a"},
        host_config=api.create_host_config(binds=[f"{volume}:/data"]),
    )["Id"]
    stopped = api.create_container("busybox", ["echo", SECRET], name="web-stopped")["Id"]
    network = api.create_network(NETWORK, labels={"contract": "a"})["Id"]
    api.connect_container_to_network(web, network, aliases=["contract-db"])
    try:
        api.start(web)
        api.start(stopped)
        api.wait(stopped, timeout=30)
        _wait_for(lambda: SECRET.encode() in api.logs(web))
        exec_id = api.exec_create(web, ["sleep", "600"])["Id"]
        whoami = _native(api, "GET", "/v1/whoami")
        whoami.raise_for_status()
        yield TenantA(
            web=web,
            stopped=stopped,
            image=private.id,
            unused_image=unused.id,
            layer=private.diff_ids[-1],
            volume=volume,
            spare_volume=spare,
            exec_id=exec_id,
            token_id=whoami.json()["token"],
            network=network,
        )
    finally:
        for ref in (web, stopped):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(ref, force=True)
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(network)
        for name in (volume, spare):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_volume(name)
        for image in (private.id, unused.id):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_image(image, force=True)


def _wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def a_state(api: docker.APIClient, a: TenantA) -> dict[str, Any]:
    """Everything about A's objects that B must not be able to change."""
    web = api.inspect_container(a.web)
    stopped = api.inspect_container(a.stopped)
    execution = api.exec_inspect(a.exec_id)
    return {
        "web": (
            web["Name"],
            web["State"]["Status"],
            web["State"]["Pid"],
            web["State"]["StartedAt"],
            web["RestartCount"],
            web["HostConfig"]["Memory"],
            web["Config"]["Labels"],
        ),
        "stopped": (
            stopped["Name"],
            stopped["State"]["Status"],
            stopped["State"]["FinishedAt"],
        ),
        "images": (
            sorted(api.inspect_image(a.image)["RepoTags"]),
            api.inspect_image(a.unused_image)["RepoTags"],
        ),
        "volumes": (
            api.inspect_volume(a.volume)["Mountpoint"],
            api.inspect_volume(a.spare_volume)["Mountpoint"],
        ),
        "exec": (execution["Running"], execution["ExitCode"], execution["ContainerID"]),
        "token": _native(api, "GET", "/v1/whoami").json()["token"],
        "network": _network_state(api.inspect_network(a.network)),
    }


def _network_state(network: dict[str, Any]) -> tuple[object, ...]:
    return (network["Name"], sorted(network["Containers"]), network["Labels"])


@pytest.fixture(autouse=True)
def a_is_untouched(client: docker.DockerClient, theirs: TenantA) -> Iterator[None]:
    """Whatever B tried, A's objects are as they were."""
    before = a_state(client.api, theirs)
    yield
    assert a_state(client.api, theirs) == before


# Tenant B ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantB:
    name: str
    token: str
    client: docker.DockerClient
    config_dir: Path  # a DOCKER_CONFIG logged in as B

    @property
    def api(self) -> docker.APIClient:
        return self.client.api


@pytest.fixture(scope="module")
def tenant_b(cloud: TestCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantB]:
    name = f"b{secrets.token_hex(4)}"
    token = cloud.admin().create_tenant(name, user="bob", seed_busybox=True)["token"]
    config_dir = tmp_path_factory.mktemp("tenant-b") / "docker"
    login = subprocess.run(
        [str(DOCKYARD), "login", "--token", token, "--config-dir", str(config_dir)],
        capture_output=True,
        text=True,
        env=cloud.env(),
        timeout=60,
        check=False,
    )
    assert login.returncode == 0, login.stderr
    client = cloud.client(token)
    yield TenantB(name=name, token=token, client=client, config_dir=config_dir)
    for container in client.api.containers(all=True):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container["Id"], force=True, v=True)
    client.close()


def b_cli(cli: DockerCli, b: TenantB, *args: str) -> subprocess.CompletedProcess[str]:
    """The stock docker CLI acting as tenant B."""
    return subprocess.run(
        [cli.binary, *args],
        capture_output=True,
        text=True,
        env={**cli.cloud.env(), "DOCKER_CONFIG": str(b.config_dir)},
        timeout=60,
        check=False,
    )


# The operation table -------------------------------------------------------------------------

Call = Callable[[docker.APIClient, str], object]


def _raw(method: str, endpoint: str, **params: Any) -> Call:
    """A call straight to the endpoint (docker-py inspects the container first for some
    operations, which would test inspect instead of the operation)."""

    def call(api: docker.APIClient, ref: str) -> object:
        response = api.request(method, api._url(endpoint, ref), params=params, timeout=30)
        api._raise_for_status(response)
        return response.content

    return call


def _attach(api: docker.APIClient, ref: str) -> object:
    sock = api.attach_socket(ref, params={"stdout": 1, "stderr": 1, "stream": 1})
    sock.close()
    return sock


def _exec_start_attached(api: docker.APIClient, ref: str) -> object:
    return api.exec_start(ref, socket=True)


class _StreamError(Exception):
    """An error message in a JSON progress stream."""


def _push(api: docker.APIClient, ref: str) -> None:
    errors = [m["error"] for m in api.push(ref, stream=True, decode=True) if "error" in m]
    if errors:
        raise _StreamError(errors[0])


def _save_many(api: docker.APIClient, ref: str) -> object:
    response = api._get(api._url("/images/get"), params={"names": [ref]}, stream=True)
    api._raise_for_status(response)
    return next(response.iter_content(1024), b"")


def _put_archive(api: docker.APIClient, ref: str) -> object:
    return api.put_archive(ref, "/tmp", tar_of([]))


def _revoke_token(api: docker.APIClient, ref: str) -> object:
    response = _native(api, "DELETE", f"/v1/tokens/{ref}")
    api._raise_for_status(response)
    return response.status_code


def _create_from_image(api: docker.APIClient, ref: str) -> object:
    return api.create_container(ref, ["true"])


def _join_netns(api: docker.APIClient, ref: str) -> object:
    """B's new container in the network namespace of A's (``--network container:``)."""
    host_config = api.create_host_config(network_mode=f"container:{ref}")
    return api.create_container("busybox", ["true"], host_config=host_config)


def _list_before(api: docker.APIClient, ref: str) -> object:
    """B's list filtered by A's container as ``before``: resolving the ref is a lookup."""
    return api.containers(all=True, filters={"before": ref})


@dataclass(frozen=True)
class Operation:
    """One thing B tries on one kind of A's objects.

    ``succeeds``: the operation answers success for a missing object too (``docker volume
    rm -f``), so success is the same answer; it must still change nothing of A's.
    ``pending``: the endpoint does not exist yet (the issue that brings it); until then the
    router answers 404, or 405 where the path is known for another method, and must do so
    alike for A's object and a missing one. Once it exists, 404 is required as for the rest.
    """

    name: str
    target: str  # container, stopped, image, volume, exec, token
    call: Call
    succeeds: bool = False
    pending: str = ""
    streamed: bool = False
    """The refusal comes in the JSON stream of a 200 answer, as dockerd sends it."""


C, S = "container", "stopped"
OPERATIONS: tuple[Operation, ...] = (
    # containers, running and stopped
    *(
        Operation(f"{target}-{name}", target, call)
        for target in (C, S)
        for name, call in (
            ("inspect", lambda api, ref: api.inspect_container(ref)),
            ("inspect-size", _raw("GET", "/containers/{0}/json", size=1)),
            ("logs", _raw("GET", "/containers/{0}/logs", stdout=1, stderr=1)),
            ("logs-follow", _raw("GET", "/containers/{0}/logs", stdout=1, follow=1)),
            ("rename", lambda api, ref: api.rename(ref, f"stolen-{nonce()}")),
            ("update", lambda api, ref: api.update_container(ref, mem_limit="64m")),
            ("remove", lambda api, ref: api.remove_container(ref)),
            ("remove-force", lambda api, ref: api.remove_container(ref, force=True, v=True)),
            ("wait", lambda api, ref: api.wait(ref, timeout=30)),
            ("wait-removed", lambda api, ref: api.wait(ref, timeout=30, condition="removed")),
            ("archive-get", lambda api, ref: api.get_archive(ref, "/etc/hostname")),
            ("archive-head", _raw("HEAD", "/containers/{0}/archive", path="/etc/hostname")),
            ("archive-put", _put_archive),
            ("export", _raw("GET", "/containers/{0}/export")),
            ("changes", lambda api, ref: api.diff(ref)),
            ("attach", _attach),
            ("start", lambda api, ref: api.start(ref)),
            ("restart", lambda api, ref: api.restart(ref, timeout=1)),
            ("list-before", _list_before),
            ("commit", lambda api, ref: api.commit(ref, repository="stolen", tag="x")),
            ("commit-no-pause", lambda api, ref: api.commit(ref, pause=False)),
            (
                "commit-changes",
                lambda api, ref: api.commit(
                    ref, changes=["CMD cat /data/secret"], conf={"Cmd": ["true"]}
                ),
            ),
        )
    ),
    *(
        Operation(f"{target}-{name}", target, call)
        for target in (C, S)
        for name, call in (
            ("network-connect", lambda api, ref: api.connect_container_to_network(ref, "bridge")),
            ("network-mode-container", _join_netns),
            (
                "network-disconnect",
                lambda api, ref: api.disconnect_container_from_network(ref, "default"),
            ),
        )
    ),
    *(
        Operation(f"container-{name}", C, call)
        for name, call in (
            ("stop", lambda api, ref: api.stop(ref, timeout=1)),
            ("kill", lambda api, ref: api.kill(ref)),
            ("kill-signal", lambda api, ref: api.kill(ref, signal="SIGHUP")),
            ("pause", lambda api, ref: api.pause(ref)),
            ("unpause", lambda api, ref: api.unpause(ref)),
            ("exec", lambda api, ref: api.exec_create(ref, ["cat", "/data/secret"])),
            ("top", lambda api, ref: api.top(ref)),
            ("stats", lambda api, ref: api.stats(ref, stream=False)),
            ("stats-one-shot", _raw("GET", "/containers/{0}/stats", stream=0, **{"one-shot": 1})),
            ("stats-stream", _raw("GET", "/containers/{0}/stats", stream=1)),
            ("resize", lambda api, ref: api.resize(ref, 10, 40)),
        )
    ),
    # execs
    Operation("exec-inspect", "exec", lambda api, ref: api.exec_inspect(ref)),
    Operation("exec-start-detached", "exec", lambda api, ref: api.exec_start(ref, detach=True)),
    Operation("exec-start-attached", "exec", _exec_start_attached),
    Operation("exec-resize", "exec", lambda api, ref: api.exec_resize(ref, height=10, width=40)),
    # images
    Operation("image-inspect", "image", lambda api, ref: api.inspect_image(ref)),
    Operation("image-history", "image", lambda api, ref: api.history(ref)),
    Operation("image-tag", "image", lambda api, ref: api.tag(ref, "stolen/app", "x")),
    Operation("image-remove", "image", lambda api, ref: api.remove_image(ref)),
    Operation("image-remove-force", "image", lambda api, ref: api.remove_image(ref, force=True)),
    Operation("image-save", "image", lambda api, ref: next(iter(api.get_image(ref)), b"")),
    Operation("image-save-many", "image", _save_many),
    Operation("image-push", "image", _push, streamed=True),
    Operation("image-run", "image", _create_from_image),
    # volumes
    Operation("volume-inspect", "volume", lambda api, ref: api.inspect_volume(ref)),
    Operation("volume-remove", "volume", lambda api, ref: api.remove_volume(ref)),
    Operation(
        "volume-remove-force",
        "volume",
        _raw("DELETE", "/volumes/{0}", force=1),  # docker-py drops force (its _url bug)
        succeeds=True,
    ),
    # networks
    Operation("network-inspect", "network", lambda api, ref: api.inspect_network(ref)),
    Operation("network-remove", "network", lambda api, ref: api.remove_network(ref)),
    Operation(
        "network-connect-mine",
        "network",
        lambda api, ref: api.connect_container_to_network(_probe(api), ref),
    ),
    Operation(
        "network-disconnect-mine",
        "network",
        lambda api, ref: api.disconnect_container_from_network(_probe(api), ref),
    ),
    # identity
    Operation("token-revoke", "token", _revoke_token),
)
"""Every operation B tries on A's objects."""

REF_KINDS = {
    "container": ("id", "prefix", "name"),
    "stopped": ("id", "prefix", "name"),
    "image": ("id", "hex", "prefix", "tag", "repository"),
    "volume": ("name",),
    "exec": ("id", "prefix"),
    "token": ("id",),
    "network": ("id", "prefix", "name"),
}


def a_ref(a: TenantA, target: str, kind: str) -> str:
    """A's object of ``target`` named the ``kind`` way."""
    if target in ("container", "stopped"):
        cid = a.web if target == "container" else a.stopped
        name = "web" if target == "container" else "web-stopped"
        return {"id": cid, "prefix": cid[:12], "name": name}[kind]
    if target == "image":
        return {
            "id": a.image,
            "hex": a.image.removeprefix("sha256:"),
            "prefix": a.image[7:19],
            "tag": IMAGE_TAGS[0],
            "repository": IMAGE_TAGS[0].split(":")[0],
        }[kind]
    if target == "volume":
        return a.volume
    if target == "exec":
        return {"id": a.exec_id, "prefix": a.exec_id[:12]}[kind]
    if target == "network":
        return {"id": a.network, "prefix": a.network[:12], "name": NETWORK}[kind]
    return a.token_id


def missing_ref(target: str, kind: str) -> str:
    """A ref of the same shape that names nothing at all."""
    fresh = secrets.token_hex(32)
    if kind == "id":
        if target == "image":
            return f"sha256:{fresh}"
        return fresh[:16] if target == "token" else fresh
    return {
        "hex": fresh,
        "prefix": fresh[:12],
        "name": f"nosuch-{fresh[:8]}",
        "tag": f"nosuch-{fresh[:8]}/app:v1",
        "repository": f"nosuch-{fresh[:8]}/app",
    }[kind]


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str


def outcome(call: Callable[[], object]) -> Outcome:
    """What the server answered: the status and error message, or 2xx and no message."""
    try:
        result = call()
        if isinstance(result, tuple) and result and isinstance(result[0], Iterator):
            next(result[0], None)  # get_archive: (stream, stat)
        elif isinstance(result, Iterator):
            next(result, None)
    except docker.errors.APIError as exc:
        return Outcome(exc.status_code or 0, str(exc.explanation or ""))
    except _StreamError as exc:
        return Outcome(200, str(exc))
    return Outcome(200, "")


def same_answer(theirs: Outcome, ref: str, missing: Outcome, missing_ref: str) -> bool:
    return theirs.status == missing.status and theirs.message.replace(
        ref, "<ref>"
    ) == missing.message.replace(missing_ref, "<ref>")


CASES = [
    pytest.param(op, kind, id=f"{op.name}[{kind}]")
    for op in OPERATIONS
    for kind in REF_KINDS[op.target]
]


@pytest.mark.parametrize(("op", "kind"), CASES)
def test_b_cannot_reach_a(tenant_b: TenantB, theirs: TenantA, op: Operation, kind: str) -> None:
    ref = a_ref(theirs, op.target, kind)
    nothing = missing_ref(op.target, kind)
    answer = outcome(lambda: op.call(tenant_b.api, ref))
    expected = outcome(lambda: op.call(tenant_b.api, nothing))
    assert same_answer(answer, ref, expected, nothing), (answer, expected)
    if op.succeeds:
        assert answer.status == 200, answer
    elif op.pending:
        assert answer.status in (404, 405), f"{op.name} {kind}: {answer}"
    elif op.streamed:
        assert answer.status in (200, 400) and answer.message, f"{op.name} {kind}: {answer}"
    else:
        assert answer.status == 404, f"{op.name} {kind}: {answer}"


def test_the_table_covers_every_target_and_ref_kind() -> None:
    targets = {op.target for op in OPERATIONS}
    assert targets == set(REF_KINDS)
    names = [op.name for op in OPERATIONS]
    assert len(names) == len(set(names))


# The docker CLI as B ------------------------------------------------------------------------


@dataclass(frozen=True)
class CliOperation:
    """One docker command B runs on one kind of A's objects (``{ref}`` in ``args``).
    ``forced``: the CLI ignores a missing object here (``rm -f``, ``rmi -f``), so it
    succeeds for a missing object too; it must still change nothing of A's."""

    name: str
    target: str
    args: tuple[str, ...]
    forced: bool = False


CLI_OPERATIONS: tuple[CliOperation, ...] = (
    CliOperation("inspect", C, ("inspect", "{ref}")),
    CliOperation("container-inspect", C, ("container", "inspect", "{ref}")),
    CliOperation("logs", C, ("logs", "{ref}")),
    CliOperation("stop", C, ("stop", "-t", "1", "{ref}")),
    CliOperation("kill", C, ("kill", "{ref}")),
    CliOperation("restart", C, ("restart", "-t", "1", "{ref}")),
    CliOperation("pause", C, ("pause", "{ref}")),
    CliOperation("rm", C, ("rm", "{ref}")),
    CliOperation("rm-force", C, ("rm", "-f", "{ref}"), forced=True),
    CliOperation("rename", C, ("rename", "{ref}", "stolen")),
    CliOperation("update", C, ("update", "--memory", "64m", "{ref}")),
    CliOperation("exec", C, ("exec", "{ref}", "cat", "/data/secret")),
    CliOperation("attach", C, ("attach", "--no-stdin", "{ref}")),
    CliOperation("top", C, ("top", "{ref}")),
    CliOperation("stats", C, ("stats", "--no-stream", "{ref}")),
    CliOperation("port", C, ("port", "{ref}")),
    CliOperation("wait", C, ("wait", "{ref}")),
    CliOperation("diff", C, ("diff", "{ref}")),
    CliOperation("cp-out", C, ("cp", "{ref}:/data/secret", "-")),
    CliOperation("export", C, ("export", "{ref}")),
    CliOperation("commit", C, ("commit", "{ref}", "stolen:x")),
    CliOperation("commit-change", C, ("commit", "-c", "CMD true", "--pause=false", "{ref}")),
    CliOperation("commit-stopped", S, ("commit", "{ref}", "stolen:y")),
    CliOperation("start", S, ("start", "{ref}")),
    CliOperation("logs-stopped", S, ("logs", "{ref}")),
    CliOperation("rm-stopped", S, ("rm", "{ref}")),
    CliOperation("image-inspect", "image", ("image", "inspect", "{ref}")),
    CliOperation("history", "image", ("history", "{ref}")),
    CliOperation("tag", "image", ("tag", "{ref}", "stolen/app:x")),
    CliOperation("rmi", "image", ("rmi", "{ref}")),
    CliOperation("rmi-force", "image", ("rmi", "-f", "{ref}"), forced=True),
    CliOperation("save", "image", ("save", "{ref}")),
    CliOperation("run", "image", ("run", "--rm", "{ref}")),
    CliOperation("volume-inspect", "volume", ("volume", "inspect", "{ref}")),
    CliOperation("volume-rm", "volume", ("volume", "rm", "{ref}")),
    CliOperation("volume-rm-force", "volume", ("volume", "rm", "-f", "{ref}"), forced=True),
    CliOperation("network-inspect", "network", ("network", "inspect", "{ref}")),
    CliOperation("network-rm", "network", ("network", "rm", "{ref}")),
    CliOperation("network-connect", C, ("network", "connect", "bridge", "{ref}")),
    CliOperation("run-in-netns", C, ("create", "--network", "container:{ref}", "busybox", "true")),
    CliOperation("network-disconnect", C, ("network", "disconnect", "default", "{ref}")),
)
"""Every docker command B tries on A's objects."""

CLI_CASES = [
    pytest.param(op, kind, id=f"{op.name}[{kind}]")
    for op in CLI_OPERATIONS
    for kind in REF_KINDS[op.target]
    if kind in ("name", "prefix", "tag", "id")
]


def _masked(text: str, ref: str) -> str:
    text = text.replace(ref, "<ref>")
    repository = ref.rsplit(":", 1)[0] if "/" in ref else ""
    return text.replace(repository, "<ref>") if repository else text


@pytest.mark.parametrize(("op", "kind"), CLI_CASES)
def test_b_cannot_reach_a_with_the_docker_cli(
    cli: DockerCli, tenant_b: TenantB, theirs: TenantA, op: CliOperation, kind: str
) -> None:
    ref = a_ref(theirs, op.target, kind)
    nothing = missing_ref(op.target, kind)
    answer = b_cli(cli, tenant_b, *(a.format(ref=ref) for a in op.args))
    expected = b_cli(cli, tenant_b, *(a.format(ref=nothing) for a in op.args))
    if not op.forced:
        assert answer.returncode != 0, answer.stdout
    assert "not allowed" not in answer.stderr  # a policy refusal would tell it exists
    # Pull refusals name the repository without its tag.
    assert (answer.returncode, _masked(answer.stderr, ref)) == (
        expected.returncode,
        _masked(expected.stderr, nothing),
    )
    assert SECRET not in answer.stdout + answer.stderr


def test_b_lists_nothing_of_a_with_the_docker_cli(
    cli: DockerCli, tenant_b: TenantB, theirs: TenantA
) -> None:
    listings = [
        ("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"),
        ("ps", "-a", "--no-trunc", "--filter", "name=web", "--format", "{{.ID}}"),
        ("ps", "-a", "--no-trunc", "--filter", "label=contract=a", "--format", "{{.ID}}"),
        ("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}"),
        ("volume", "ls", "--format", "{{.Name}} {{.Labels}}"),
        ("network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Labels}}"),
        ("system", "df", "-v"),
    ]
    for args in listings:
        result = b_cli(cli, tenant_b, *args)
        assert result.returncode == 0, result.stderr
        secrets_of_a = (theirs.web, theirs.stopped, theirs.image, theirs.network, NETWORK)
        for secret in (*secrets_of_a, "contract-a", "contract=a"):
            assert secret not in result.stdout, (args, secret)


# Lists and filters -------------------------------------------------------------------------


def a_container_ids(a: TenantA) -> set[str]:
    return {a.web, a.stopped}


CONTAINER_FILTERS: list[dict[str, Any]] = [
    {},
    {"id": "{web}"},
    {"id": "{web12}"},
    {"name": "web"},
    {"name": "^/web$"},
    {"name": "web-stopped"},
    {"label": "contract=a"},
    {"label": "contract"},
    {"ancestor": "{image}"},
    {"ancestor": IMAGE_TAGS[0]},
    {"ancestor": "busybox"},
    {"volume": "{volume}"},
    {"volume": "/data"},
    {"network": "bridge"},
    {"status": "running"},
    {"status": "exited"},
    {"exited": "0"},
]


@pytest.mark.parametrize("filters", CONTAINER_FILTERS, ids=json.dumps)
def test_container_filters_cannot_widen_scope(
    tenant_b: TenantB, theirs: TenantA, filters: dict[str, str]
) -> None:
    values = {
        "web": theirs.web,
        "web12": theirs.web[:12],
        "image": theirs.image,
        "volume": theirs.volume,
    }
    concrete = {k: v.format(**values) for k, v in filters.items()}
    listed = tenant_b.api.containers(all=True, filters=concrete)
    assert not {c["Id"] for c in listed} & a_container_ids(theirs)
    assert all(c["Labels"].get("contract") != "a" for c in listed)


def test_image_lists_and_filters_show_only_bs_images(tenant_b: TenantB, theirs: TenantA) -> None:
    api = tenant_b.api
    for kwargs in (
        {"all": True},
        {"name": "contract-a/app"},
        {"filters": {"reference": "contract-a/*"}},
        {"filters": {"reference": "*"}},
        {"filters": {"label": "contract=a"}},
        {"filters": {"dangling": False}},
        {"filters": {"dangling": True}},
    ):
        ids = {i["Id"] for i in api.images(**kwargs)}
        assert not ids & {theirs.image, theirs.unused_image}, kwargs
    with pytest.raises(docker.errors.NotFound):
        api.images(filters={"before": IMAGE_TAGS[0]})
    with pytest.raises(docker.errors.NotFound):
        api.images(filters={"since": theirs.image})


def test_volume_lists_and_filters_show_only_bs_volumes(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    mountpoints = {
        client.api.inspect_volume(name)["Mountpoint"]
        for name in (theirs.volume, theirs.spare_volume)
    }
    for filters in (
        None,
        {"name": theirs.volume},
        {"name": "appdata"},
        {"label": "contract=a"},
        {"dangling": "true"},
        {"dangling": "false"},
    ):
        listed = tenant_b.api.volumes(filters=filters)["Volumes"] or []
        assert not {v["Mountpoint"] for v in listed} & mountpoints, filters
        assert all((v["Labels"] or {}).get("contract") != "a" for v in listed), filters


def test_networks_show_only_bs_members(tenant_b: TenantB, theirs: TenantA) -> None:
    api = tenant_b.api
    mine = api.create_container("busybox", ["sleep", "60"])["Id"]
    try:
        api.start(mine)
        listed = api.networks()
        assert theirs.network not in {n["Id"] for n in listed}
        assert NETWORK not in {n["Name"] for n in listed}
        for network in listed:
            if network["Name"] == "none":
                continue
            members = api.inspect_network(network["Id"])["Containers"]
            assert not set(members) & a_container_ids(theirs)
        default = api.inspect_network("default")
        assert mine in default["Containers"]
        for filters in (
            {"name": "default"},
            {"name": NETWORK},
            {"id": theirs.network[:12]},
            {"driver": "bridge"},
            {"label": "contract=a"},
            {"type": "custom"},
        ):
            for network in api.networks(filters=filters):
                assert network["Id"] != theirs.network, filters
                assert not set(network["Containers"] or {}) & a_container_ids(theirs)
    finally:
        api.remove_container(mine, force=True)


def test_b_may_use_as_names_and_subnets_as_a(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    subnet = client.api.inspect_network(theirs.network)["IPAM"]["Config"][0]["Subnet"]
    api = tenant_b.api
    own = api.create_network(
        NETWORK, ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    )["Id"]
    try:
        assert own != theirs.network
        assert api.inspect_network(NETWORK)["Id"] == own
    finally:
        api.remove_network(own)


_probes: dict[int, str] = {}


def _probe(api: docker.APIClient) -> str:
    """A container of the caller's own (made once per client), to connect to networks."""
    if id(api) not in _probes:
        _probes[id(api)] = api.create_container("busybox", ["true"], name=f"probe-{nonce()}")["Id"]
    return _probes[id(api)]


def test_info_and_df_count_only_bs_objects(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    api = tenant_b.api
    mine = api.create_container("busybox", ["true"])["Id"]
    try:
        info = api.info()
        own = api.containers(all=True)
        assert info["Containers"] == len(own)
        assert info["ContainersRunning"] == sum(c["State"] == "running" for c in own)
        assert info["Images"] == len(api.images(all=True))
        assert not {c["Id"] for c in own} & a_container_ids(theirs)
        theirs_info = client.api.info()
        assert theirs_info["Containers"] == len(client.api.containers(all=True))
        assert theirs_info["Images"] == len(client.api.images(all=True))
        assert info["ID"] != theirs_info["ID"], "each tenant sees its own engine id"

        df = api.df()
        assert {c["Id"] for c in df["Containers"]} == {c["Id"] for c in own}
        assert mine in {c["Id"] for c in df["Containers"]}
        assert not {i["Id"] for i in df["Images"]} & {theirs.image, theirs.unused_image}
        assert {i["Id"] for i in df["Images"]} == {i["Id"] for i in api.images(all=True)}
        names = {v["Name"] for v in df["Volumes"]}
        assert {v["Name"] for v in api.volumes()["Volumes"] or []} == names
        # Shared image ids (busybox) count B's containers only, in both listings.
        users: dict[str, int] = {}
        for c in own:
            users[c["ImageID"]] = users.get(c["ImageID"], 0) + 1
        for image in [*api.images(all=True), *df["Images"]]:
            assert image["Containers"] == users.get(image["Id"], 0), image["RepoTags"]
        own_layers = {
            layer
            for image in api.images(all=True)
            for layer in api.inspect_image(image["Id"])["RootFS"]["Layers"]
        }
        assert theirs.layer not in own_layers
    finally:
        api.remove_container(mine, force=True)


# Events --------------------------------------------------------------------------------------


EVENT_FILTERS: list[dict[str, Any]] = [
    {},
    {"container": "{web}"},
    {"container": "web"},
    {"container": "{web12}"},
    {"image": "{image}"},
    {"image": "contract-a/app"},
    {"image": IMAGE_TAGS[0]},
    {"volume": "{volume}"},
    {"type": "container"},
    {"type": "image"},
    {"type": "volume"},
    {"type": "network"},
    {"label": "contract=a"},
    {"event": "exec_create"},
]


@pytest.mark.parametrize("filters", EVENT_FILTERS, ids=json.dumps)
def test_events_never_show_a(tenant_b: TenantB, theirs: TenantA, filters: dict[str, str]) -> None:
    values = {
        "web": theirs.web,
        "web12": theirs.web[:12],
        "image": theirs.image,
        "volume": theirs.volume,
    }
    concrete = {k: v.format(**values) for k, v in filters.items()}
    events = list(
        tenant_b.api.events(since=1, until=time.time(), filters=concrete or None, decode=True)
    )
    text = json.dumps(events)
    for secret in (
        theirs.web,
        theirs.stopped,
        theirs.exec_id,
        theirs.image,
        theirs.unused_image,
        "contract-a",
        SECRET,
    ):
        assert secret not in text, (concrete, secret)


def test_a_sees_its_own_events(client: docker.DockerClient, theirs: TenantA) -> None:
    """The filters above would pass on an empty log: A's own view shows the events."""
    events = list(
        client.api.events(
            since=1, until=time.time(), filters={"container": theirs.web}, decode=True
        )
    )
    assert {"create", "start"} <= {e["Action"] for e in events}


# Names, volume names and content are per tenant ----------------------------------------------


def test_b_owns_its_own_web(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    api = tenant_b.api
    own = api.create_container("busybox", ["sleep", "60"], name="web")["Id"]
    try:
        assert own != theirs.web
        assert api.inspect_container("web")["Id"] == own
        assert client.api.inspect_container("web")["Id"] == theirs.web
        api.rename(own, "web-stopped")  # also A's name, free in B
        assert api.inspect_container("web-stopped")["Id"] == own
        assert client.api.inspect_container("web-stopped")["Id"] == theirs.stopped
        api.rename(own, "web")
        with pytest.raises(docker.errors.APIError) as taken:
            api.create_container("busybox", ["true"], name="web")
        assert taken.value.status_code == 409
        assert own[:12] in api.inspect_container(own[:12])["Id"]
    finally:
        api.remove_container(own, force=True)


def test_b_volume_of_the_same_name_is_its_own(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    api = tenant_b.api
    created = api.create_volume(theirs.volume)
    try:
        assert created["Name"] == theirs.volume
        assert created["Mountpoint"] != client.api.inspect_volume(theirs.volume)["Mountpoint"]
        # Mounted by name (-v and --mount): B's empty volume, not A's data.
        for host_config in (
            api.create_host_config(binds=[f"{theirs.volume}:/data"]),
            api.create_host_config(
                mounts=[docker.types.Mount("/data", theirs.volume, type="volume")]
            ),
        ):
            box = api.create_container(
                "busybox", ["sh", "-c", "ls -A /data"], host_config=host_config
            )["Id"]
            api.start(box)
            assert api.wait(box, timeout=30)["StatusCode"] == 0
            assert api.logs(box) == b""
            api.remove_container(box)
        # Removing B's volume leaves A's, and its data, in place.
        api.remove_volume(theirs.volume)
        assert client.api.inspect_volume(theirs.volume)["Name"] == theirs.volume
        stream, _ = client.api.get_archive(theirs.web, "/data/secret")
        assert SECRET.encode() in b"".join(stream)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(theirs.volume)


def test_volumes_from_a_gives_b_nothing(tenant_b: TenantB, theirs: TenantA) -> None:
    api = tenant_b.api
    for ref in (theirs.web, "web"):
        created = api.create_container(
            "busybox",
            ["sh", "-c", "cat /data/secret || true"],
            host_config=api.create_host_config(volumes_from=[ref]),
        )
        try:
            assert any("volumes-from" in w for w in created["Warnings"] or [])
            assert api.inspect_container(created["Id"])["Mounts"] == []
            api.start(created["Id"])
            api.wait(created["Id"], timeout=30)
            assert SECRET.encode() not in api.logs(created["Id"])
        finally:
            api.remove_container(created["Id"], force=True)


def test_prunes_by_b_leave_a_alone(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    api = tenant_b.api
    own = api.create_container("busybox", ["true"], labels={"contract": "a"})["Id"]
    volume = api.create_volume(f"b-spare-{nonce()}", labels={"contract": "a"})["Name"]
    pruned = api.prune_containers(filters={"label": "contract=a"})
    assert pruned["ContainersDeleted"] == [own]
    pruned = api.prune_volumes(filters={"label": "contract=a", "all": "true"})
    assert pruned["VolumesDeleted"] == [volume]
    pruned = api.prune_images(filters={"dangling": False, "label": "contract=a"})
    assert not pruned["ImagesDeleted"]
    # A's stopped container, unused volume and unused image are all still there (the
    # autouse check compares them in detail).
    assert client.api.inspect_container(theirs.stopped)["State"]["Status"] == "exited"
    assert client.api.inspect_volume(theirs.spare_volume)
    assert client.api.inspect_image(theirs.unused_image)["RepoTags"] == [UNUSED_TAG]


def test_b_cannot_claim_as_layer_by_its_digest(
    tenant_b: TenantB, theirs: TenantA, client: docker.DockerClient
) -> None:
    """Knowing the digest of A's layer (from A's inspect, a registry, a leak) is not
    having it: an archive that names the digest must bring the content too."""
    assert theirs.layer in client.api.inspect_image(theirs.image)["RootFS"]["Layers"]

    def claim(diff_id: str) -> Outcome:
        bottom, fake = busybox_rootfs(), files_layer({"etc/marker": b"not the content\n"})
        config = json.loads(image_config([bottom, fake], cmd=("cat", "/etc/marker")))
        config["rootfs"]["diff_ids"] = [sha(bottom), diff_id]
        image = BuiltImage(
            layers=[bottom, fake], config=json.dumps(config).encode(), tags=["stolen/app:v1"]
        )
        return outcome(lambda: load(tenant_b.api, docker_archive([image])))

    nothing = "sha256:" + secrets.token_hex(32)
    answer, expected = claim(theirs.layer), claim(nothing)
    assert answer.status == 400, answer
    assert same_answer(answer, theirs.layer, expected, nothing), (answer, expected)
    with pytest.raises(docker.errors.NotFound):
        tenant_b.api.inspect_image("stolen/app:v1")
    # B's view has no image with A's layer either.
    for image in tenant_b.api.images(all=True):
        assert theirs.layer not in tenant_b.api.inspect_image(image["Id"])["RootFS"]["Layers"]


def test_b_loads_layers_it_has_even_when_a_has_them_too(tenant_b: TenantB, theirs: TenantA) -> None:
    """Loading the same bytes A loaded is fine (B has the content), and B's copy is B's:
    removing it changes nothing for A (checked by the autouse fixture)."""
    twin = runnable_image(tags=["b-own/app:v1"])
    load(tenant_b.api, docker_archive([twin]))
    try:
        box = tenant_b.api.create_container(twin.id)["Id"]
        tenant_b.api.start(box)
        tenant_b.api.wait(box, timeout=30)
        assert tenant_b.api.logs(box).decode().strip() == twin.marker
        tenant_b.api.remove_container(box)
    finally:
        tenant_b.api.remove_image(twin.id, force=True)


def test_b_top_shows_only_bs_processes(tenant_b: TenantB, theirs: TenantA) -> None:
    """ps runs on the shared host: whatever B's ps arguments, only B's rows come back.
    (A's shell has SECRET in its command line.)"""
    api = tenant_b.api
    own = api.create_container("busybox", ["sleep", "60"])["Id"]
    try:
        api.start(own)
        for ps_args in (
            "",
            "aux",
            "-e -o pid,args",
            "-e -o lstart,user,user,user,pid,user,user,user,user,user",
            "-e -o args,pid",
        ):
            result = api.top(own, ps_args=ps_args)
            assert len(result["Processes"]) == 1, (ps_args, result)
            assert SECRET not in json.dumps(result)
        for ps_args in ("-e -o pid=X,ppid=PID,args", "-eo etimes=PID,args"):
            with pytest.raises(docker.errors.APIError) as refused:
                api.top(own, ps_args=ps_args)
            assert refused.value.status_code == 403
            assert "column titles cannot be set" in str(refused.value.explanation)
    finally:
        api.remove_container(own, force=True)


def test_b_token_list_holds_none_of_as(tenant_b: TenantB, theirs: TenantA) -> None:
    listed = _native(tenant_b.api, "GET", "/v1/tokens")
    assert listed.status_code == 200
    assert theirs.token_id not in {t["id"] for t in listed.json()}
    assert _native(tenant_b.api, "GET", "/v1/whoami").json()["tenant"]["name"] == tenant_b.name


def test_b_create_ignores_nothing_silently(tenant_b: TenantB, theirs: TenantA) -> None:
    """A create naming A's objects where Dockyard has no such feature (links) warns;
    where it has (image, volume by name) it resolves in B's scope."""
    api = tenant_b.api
    created = api.create_container(
        "busybox",
        ["true"],
        host_config=api.create_host_config(links={"web": "alias"}),
    )
    try:
        assert any("links" in w for w in created["Warnings"] or [])
    finally:
        api.remove_container(created["Id"], force=True)
