"""Identity through the real clients: tokens on every call, logins written for the docker
CLI, tenants that cannot see each other, revocation, expiry, scopes and rate limiting."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockyard.core.identity import TOKEN_HEADER
from dockyard.testing.cloud import DockerCli, TestCloud

DOCKYARD = Path(sys.executable).parent / "dockyard"


def dockyard(cloud: TestCloud, *args: str, env: dict[str, str] | None = None) -> str:
    layout = cloud.layout
    flags = ["--state-dir", str(layout.state_dir), "--run-dir", str(layout.run_dir)]
    flags += ["--instance", layout.instance]
    admin = args[0] == "admin"
    command = [str(DOCKYARD), *args, *(flags if admin else [])]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env or cloud.env(), timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def other(cloud: TestCloud) -> Iterator[tuple[str, str]]:
    """A second tenant (with busybox): its name and its admin's token."""
    name = f"t{uuid.uuid4().hex[:8]}"
    token = dockyard(cloud, "admin", "tenant", "create", name, "--user", "bea", "--seed-busybox")
    yield name, token.strip()


def test_calls_need_a_token(cloud: TestCloud) -> None:
    anonymous = docker.APIClient(base_url=cloud.docker_host, version="1.41")
    assert anonymous.ping()
    assert anonymous.version()["ApiVersion"]
    with pytest.raises(docker.errors.APIError) as refused:
        anonymous.containers()
    assert refused.value.status_code == 401
    assert "X-Dockyard-Token" in str(refused.value.explanation)
    anonymous.headers[TOKEN_HEADER] = "dyk_" + "0" * 16 + "_" + "x" * 43
    with pytest.raises(docker.errors.APIError) as bad:
        anonymous.containers()
    assert bad.value.status_code == 401


def test_login_writes_a_docker_config_the_cli_uses(
    cloud: TestCloud, cli: DockerCli, other: tuple[str, str], tmp_path: Path
) -> None:
    name, token = other
    config = tmp_path / "cfg"
    dockyard(cloud, "login", "--token", token, "--config-dir", str(config))
    assert json.loads((config / "config.json").read_text())["HttpHeaders"][TOKEN_HEADER] == token
    env = {**cloud.env(), "DOCKER_CONFIG": str(config)}
    who = dockyard(cloud, "whoami", env=env)
    assert f"tenant: {name}" in who and "user:   bea (admin)" in who
    run = subprocess.run(
        [cli.binary, "run", "--rm", "busybox", "cat", "/proc/self/uid_map"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    theirs = int(run.stdout.split()[1])
    ours = cli.run("run", "--rm", "busybox", "cat", "/proc/self/uid_map").stdout.split()
    assert int(ours[1]) != theirs, "tenants share no uids"
    assert abs(int(ours[1]) - theirs) >= 65536
    dockyard(cloud, "logout", "--config-dir", str(config))
    assert TOKEN_HEADER not in json.loads((config / "config.json").read_text()).get(
        "HttpHeaders", {}
    )


def test_tenants_do_not_see_each_other(
    cloud: TestCloud, client: docker.DockerClient, other: tuple[str, str], cleanup: list[str]
) -> None:
    _, token = other
    mine = client.containers.run(
        "busybox", ["sleep", "600"], detach=True, name=f"web-{uuid.uuid4().hex[:6]}"
    )
    cleanup.append(mine.id)
    theirs = cloud.client(token)
    try:
        assert mine.id not in [c.id for c in theirs.containers.list(all=True)]
        for ref in (mine.id, mine.id[:12], mine.name):
            with pytest.raises(docker.errors.NotFound):
                theirs.containers.get(ref)
            with pytest.raises(docker.errors.NotFound):
                theirs.api.kill(ref)
        # The same name is free in the other tenant.
        same = theirs.containers.run("busybox", ["true"], name=mine.name, detach=True)
        same.wait()
        same.remove()
    finally:
        theirs.close()


def test_revoked_and_expired_tokens_stop_working(cloud: TestCloud, other: tuple[str, str]) -> None:
    name, _ = other
    made = cloud.admin().issue_token(name, "bea", ttl=2)
    short = cloud.client(made["token"])
    assert short.ping() and short.containers.list() is not None
    time.sleep(4.5)
    with pytest.raises(docker.errors.APIError) as expired:
        short.containers.list()
    assert expired.value.status_code == 401 and "expired" in str(expired.value.explanation)

    issued = cloud.admin().issue_token(name, "bea")
    revocable = cloud.client(issued["token"])
    assert revocable.containers.list() is not None
    dockyard(cloud, "admin", "token", "revoke", name, issued["id"])
    with pytest.raises(docker.errors.APIError) as revoked:
        revocable.containers.list()
    assert revoked.value.status_code == 401 and "revoked" in str(revoked.value.explanation)


def test_read_only_tokens(cloud: TestCloud, other: tuple[str, str]) -> None:
    name, _ = other
    reader = cloud.client(cloud.admin().issue_token(name, "bea", scopes=["read"])["token"])
    assert reader.containers.list(all=True) is not None
    with pytest.raises(docker.errors.APIError) as refused:
        reader.containers.create("busybox", ["true"])
    assert refused.value.status_code == 403 and "'write' scope" in str(refused.value.explanation)


def test_a_tenant_with_containers_cannot_be_removed(cloud: TestCloud) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    token = dockyard(cloud, "admin", "tenant", "create", name, "--seed-busybox").strip()
    client = cloud.client(token)
    container = client.containers.create("busybox", ["true"])
    with pytest.raises(Exception, match="still has 1 container"):
        cloud.admin().remove_tenant(name)
    container.remove()
    client.images.remove("busybox:latest", force=True)
    dockyard(cloud, "admin", "tenant", "rm", name)
    assert name not in dockyard(cloud, "admin", "tenant", "list")
    with pytest.raises(docker.errors.APIError) as gone:
        client.containers.list()
    assert gone.value.status_code == 401


def test_repeated_failures_are_rate_limited(tmp_path_factory: pytest.TempPathFactory) -> None:
    """On a cloud of its own: the block would hold up every other test's calls."""
    cloud = TestCloud.launch(tmp_path_factory.mktemp("ratelimited"))
    try:
        good = cloud.client()
        bad = cloud.client("dyk_" + "1" * 16 + "_" + "z" * 43)
        statuses = []
        for _ in range(12):
            with pytest.raises(docker.errors.APIError) as refused:
                bad.containers.list()
            statuses.append(refused.value.status_code)
        assert statuses[:9] == [401] * 9 and statuses[-1] == 429
        with pytest.raises(docker.errors.APIError) as blocked:
            good.containers.list()
        assert blocked.value.status_code == 429
        assert "too many failed authentications" in str(blocked.value.explanation)
    finally:
        cloud.purge()
