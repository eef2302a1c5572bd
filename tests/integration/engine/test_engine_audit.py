"""The audit log through the real clients on a cloud of its own (these tests restart its
controller): docker-py's and the docker CLI's calls show up in their tenant's log with user,
target and result, refusals with their status; reads and waits do not; another tenant's
admin sees none of it, a member may not read it; failed authentications reach only the
operator; records survive a clean stop and a kill of the controller."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.client.dockerconfig import write_token
from dockyard.client.native import NativeClient
from dockyard.core.errors import NotFound, PermissionDenied
from dockyard.core.identity import TOKEN_HEADER
from dockyard.testing.cloud import TestCloud

DOCKYARD = Path(sys.executable).parent / "dockyard"


@dataclass
class Tenant:
    name: str
    id: str
    admin_token: str  # user ann (admin)
    member_token: str  # user bob (member)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    cloud = TestCloud.launch(tmp_path_factory.mktemp("audit"))
    yield cloud
    cloud.purge(keep_logs=tmp_path_factory.getbasetemp() / "logs")


def make_tenant(cloud: TestCloud, *, busybox: bool = True) -> Tenant:
    admin = cloud.admin()
    name = f"t{uuid.uuid4().hex[:8]}"
    made = admin.create_tenant(name, user="ann", seed_busybox=busybox)
    admin.set_quota(name, limits={"volumes": 100})  # these tests make more than a plan's
    admin.add_user(name, "bob", role="member")
    member = admin.issue_token(name, "bob")
    return Tenant(
        name=name, id=made["tenant"]["id"], admin_token=made["token"], member_token=member["token"]
    )


@pytest.fixture(scope="module")
def acme(audited: TestCloud) -> Tenant:
    return make_tenant(audited)


@pytest.fixture(scope="module")
def globex(audited: TestCloud) -> Tenant:
    return make_tenant(audited)


def log_of(cloud: TestCloud, token: str, **query: Any) -> list[dict[str, Any]]:
    return NativeClient(cloud.docker_host, token).audit(**{"limit": 10_000, **query})


def token_id(token: str) -> str:
    return token.split("_")[1]


def by_request(records: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    return next(r for r in records if r["request_id"] == request_id)


def dockyard(
    *args: str, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(DOCKYARD), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def docker_cli(env: dict[str, str], *args: str) -> str:
    binary = shutil.which("docker")
    if binary is None:
        pytest.skip("the docker CLI is not installed")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def config_env(cloud: TestCloud, token: str, where: Path) -> dict[str, str]:
    write_token(where, token)
    return {**os.environ, "DOCKER_HOST": cloud.docker_host, "DOCKER_CONFIG": str(where)}


# docker-py -------------------------------------------------------------------------------


def test_docker_py_calls_are_in_their_tenants_log(audited: TestCloud, acme: Tenant) -> None:
    t0 = time.time()
    ann = audited.client(acme.admin_token)
    bob = audited.client(acme.member_token)
    try:
        container = ann.containers.create("busybox", ["sleep", "30"], name="web")
        container.start()
        assert container.exec_run(["true"]).exit_code == 0
        container.stop(timeout=1)
        container.remove()
        ann.volumes.create("data")
        image = ann.images.get("busybox")
        image.tag("acme/app", "v1")  # docker-py names the image by its id
        ann.containers.list(all=True)  # reads are not recorded
        ann.api.inspect_volume("data")
        with pytest.raises(docker.errors.APIError) as privileged:
            bob.containers.create("busybox", ["true"], privileged=True)
        assert privileged.value.status_code == 403
        bob.containers.create("busybox", ["true"], name="web2")
        with pytest.raises(docker.errors.APIError) as taken:
            bob.containers.create("busybox", ["true"], name="web2")
        assert taken.value.status_code == 409
        bob.containers.get("web2").remove()
    finally:
        ann.close()
        bob.close()

    records = log_of(audited, acme.admin_token, since=str(t0))
    assert {r["tenant"] for r in records} == {acme.id}
    assert {r["method"] for r in records} <= {"POST", "DELETE", "PUT"}, "reads are not recorded"
    assert not [r for r in records if r["action"] == "container_wait"]
    mine = [r for r in reversed(records) if r["user"] == "ann"]
    got = [(r["action"], r["target"], r["status"]) for r in mine]
    assert got[:2] == [("container_create", "web", 201), ("container_start", container.id, 204)]
    exec_create, exec_start = mine[2], mine[3]
    assert (exec_create["action"], exec_create["target"]) == ("container_exec", container.id)
    assert exec_create["status"] == 201 and len(exec_create["created"]) == 64
    assert (exec_start["action"], exec_start["target"]) == ("exec_start", exec_create["created"])
    assert exec_start["status"] in (101, 200)
    assert got[4:] == [
        ("container_stop", container.id, 204),
        ("container_delete", container.id, 204),
        ("volume_create", "", 201),
        ("image_tag", image.id, 201),
    ]
    assert mine[0]["created"] == container.id
    assert mine[6]["created"] == "data"
    assert mine[7]["created"] == "acme/app:v1"
    for record in mine:
        assert record["token"] == token_id(acme.admin_token)
        assert record["source"].startswith("uid:")
        assert record["error"] == ""
        assert record["path"].split("/")[1].startswith("v")  # docker-py's versioned paths

    bobs = [r for r in reversed(records) if r["user"] == "bob"]
    assert [(r["action"], r["target"], r["status"]) for r in bobs] == [
        ("container_create", "", 403),
        ("container_create", "web2", 201),
        ("container_create", "web2", 409),
        ("container_delete", bobs[1]["created"], 204),
    ]
    assert "privileged" in bobs[0]["error"]
    assert "already in use" in bobs[2]["error"]
    assert {r["token"] for r in bobs} == {token_id(acme.member_token)}

    # filters
    assert [r["user"] for r in log_of(audited, acme.admin_token, since=str(t0), user="bob")] == [
        "bob"
    ] * 4
    refused = log_of(audited, acme.admin_token, since=str(t0), result="error")
    assert sorted(r["status"] for r in refused) == [403, 409]
    named = log_of(audited, acme.admin_token, since=str(t0), target=container.id[:12])
    assert {r["action"] for r in named} >= {"container_create", "container_stop"}


# the docker CLI and the dockyard CLI ------------------------------------------------------


def test_docker_cli_calls_and_the_dockyard_audit_table(
    audited: TestCloud, acme: Tenant, tmp_path: Path
) -> None:
    t0 = time.time()
    env = config_env(audited, acme.admin_token, tmp_path / "ann")
    docker_cli(env, "run", "--rm", "--name", "once", "busybox", "true")
    docker_cli(env, "volume", "create", "cli-vol")
    docker_cli(env, "tag", "busybox", "cli/tagged:1")
    records = log_of(audited, acme.admin_token, since=str(t0))
    actions = [r["action"] for r in reversed(records)]
    assert actions[:2] == ["container_create", "container_attach"]
    assert "container_start" in actions and "container_wait" not in actions
    assert actions[-2:] == ["volume_create", "image_tag"]
    created = records[-1]
    assert (created["target"], created["user"], created["status"]) == ("once", "ann", 201)
    attach = records[-2]
    assert attach["status"] in (101, 200) and attach["target"] == created["created"]

    table = dockyard("audit", "--since", str(t0), env=env).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["TIME", "USER", "ACTION", "TARGET", "RESULT"]
    assert (
        "image_tag" in lines[1] and "busybox -> docker.io/cli/tagged:1" in lines[1]
    )  # as the CLI sends it
    assert any("container_create" in line and f"once -> {created['created'][:12]}" in line
               for line in lines)  # fmt: skip
    assert all(" ann " in line for line in lines[1:])
    as_json = json.loads(
        dockyard("audit", "--since", str(t0), "--action", "volume_", "--json", env=env).stdout
    )
    assert [(r["action"], r["created"]) for r in as_json] == [("volume_create", "cli-vol")]
    limited = json.loads(dockyard("audit", "--limit", "1", "--json", env=env).stdout)
    assert len(limited) == 1


# who may read what -----------------------------------------------------------------------


def test_tenants_see_only_their_own_log_and_members_none(
    audited: TestCloud, acme: Tenant, globex: Tenant, tmp_path: Path
) -> None:
    theirs = audited.client(globex.admin_token)
    try:
        theirs.volumes.create("globex-vol")
    finally:
        theirs.close()
    mine = audited.client(acme.admin_token)
    try:
        mine.volumes.create("acme-only")
    finally:
        mine.close()
    globex_log = log_of(audited, globex.admin_token)
    assert {r["tenant"] for r in globex_log} == {globex.id}
    assert [r["created"] for r in globex_log if r["action"] == "volume_create"] == ["globex-vol"]
    assert not [r for r in globex_log if r["user"] in ("ann",) and r["tenant"] != globex.id]
    for query in ({"user": "ann"}, {"target": "acme-only"}, {"action": "volume_"}):
        found = log_of(audited, globex.admin_token, **query)
        assert all(r["tenant"] == globex.id for r in found), query
        assert not [r for r in found if r["created"] == "acme-only"], query

    with pytest.raises(PermissionDenied):
        NativeClient(audited.docker_host, acme.member_token).audit()
    member_env = config_env(audited, acme.member_token, tmp_path / "bob")
    refused = dockyard("audit", env=member_env, check=False)
    assert refused.returncode != 0 and "admin" in refused.stderr

    # the operator reads any tenant's log; its own calls show as @operator
    admin = audited.admin()
    admin.issue_token(acme.name, "bob", description="from the operator")
    operator_view = admin.audit(acme.name, limit=10_000)
    assert {r["tenant"] for r in operator_view} == {acme.id}
    assert any(r["created"] == "acme-only" for r in operator_view)
    issued = next(r for r in operator_view if r["user"] == "@operator" and r["action"] == "issue")
    assert issued["target"] == acme.name and issued["status"] == 201
    assert issued == log_of(audited, acme.admin_token, user="@operator", limit=1)[0]


def test_failed_authentications_reach_only_the_operator(audited: TestCloud, acme: Tenant) -> None:
    t0 = time.time()
    forged = f"dyk_{token_id(acme.admin_token)}_" + "x" * 43
    anonymous = docker.APIClient(base_url=audited.docker_host, version="1.41")
    anonymous.headers[TOKEN_HEADER] = forged
    with pytest.raises(docker.errors.APIError) as refused:
        anonymous.create_volume("sneaky")
    assert refused.value.status_code == 401
    anonymous.close()
    assert not [r for r in log_of(audited, acme.admin_token, since=str(t0)) if r["status"] == 401]
    operator_log = audited.admin().audit(since=str(t0))
    [failure] = [r for r in operator_log if r["action"] == "volume_create"]
    assert (failure["status"], failure["token"], failure["user"]) == (
        401,
        token_id(acme.admin_token),
        "",
    )
    assert "x" * 43 not in json.dumps(operator_log)


def test_a_call_over_tls_names_its_certificate(
    audited: TestCloud, acme: Tenant, tmp_path: Path
) -> None:
    config = tmp_path / "ann-tls"
    env = {**audited.env(), "DOCKER_CONFIG": str(config)}
    dockyard("login", "--token", acme.admin_token, env=env)
    listed = dockyard("cert", "list", env=env).stdout.splitlines()[1:]
    [serial] = [line.split()[0] for line in listed if line.strip()]
    certs_only = tmp_path / "certs"
    certs_only.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        shutil.copy2(config / name, certs_only / name)
    docker_cli(audited.tls_env(certs_only), "volume", "create", "over-tls")
    [record] = log_of(audited, acme.admin_token, target="over-tls")
    assert (record["user"], record["cert"]) == ("ann", serial)
    assert record["token"] == token_id(acme.admin_token)  # the certificate's token
    assert record["source"] == "ip:127.0.0.1"
    made = log_of(audited, acme.admin_token, action="create_cert")
    assert [r["created"] for r in made] == [serial]


def test_a_deleted_tenants_log_stays_for_the_operator(audited: TestCloud) -> None:
    gone = make_tenant(audited, busybox=False)  # a tenant is removed empty
    client = audited.client(gone.admin_token)
    try:
        client.volumes.create("short-lived").remove()
    finally:
        client.close()
    admin = audited.admin()
    admin.remove_tenant(gone.name)
    with pytest.raises(NotFound):
        admin.audit(gone.name)
    kept = admin.audit(gone.id)
    assert [r["action"] for r in kept if r["user"] == "ann"] == ["volume_delete", "volume_create"]
    assert {r["tenant"] for r in kept} == {gone.id}
    deleted = [r for r in admin.audit(target=gone.name) if r["action"] == "delete_tenant"]
    assert [(r["user"], r["status"]) for r in deleted] == [("@operator", 204)]


# restarts ----------------------------------------------------------------------------------


def test_records_survive_a_stop_and_a_kill_of_the_controller(
    audited: TestCloud, acme: Tenant
) -> None:
    client = audited.client(acme.admin_token)
    try:
        client.volumes.create("before-stop")
    finally:
        client.close()
    # A clean stop (SIGTERM, as dockyard down) writes what is queued: no read in between.
    os.kill(audited.pid("controller"), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while audited.pid("controller") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not audited.pid("controller")
    audited.start()
    before = log_of(audited, acme.admin_token, action="volume_create", target="before-stop")
    assert len(before) == 1 and before[0]["user"] == "ann"

    client = audited.client(acme.admin_token)
    try:
        client.volumes.create("before-kill")
    finally:
        client.close()
    every = log_of(audited, acme.admin_token)  # a read writes the queue first
    audited.kill("controller")
    audited.start()
    after = log_of(audited, acme.admin_token)
    assert [r["request_id"] for r in after[: len(every)]] == [r["request_id"] for r in every]
    assert after[: len(every)] == every
    assert any(r["created"] == "before-kill" for r in after)
