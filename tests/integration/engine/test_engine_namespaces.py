"""Registry namespaces through the real endpoint, the operator's socket and the dockyard
CLI: a tenant admin claims and lists them, a name is taken once in the whole cloud (409
for anyone else), invalid (400) and reserved (403) names and members (403) are refused,
tenants never see each other's, every claim is audited in its own tenant's log, and a
deleted tenant's names stay retired."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.client.dockerconfig import write_token
from dockyard.client.native import NativeClient
from dockyard.core.errors import Conflict, InvalidArgument, PermissionDenied
from dockyard.testing.cloud import TestCloud

DOCKYARD = Path(sys.executable).parent / "dockyard"


@dataclass
class Tenant:
    name: str
    id: str
    admin: NativeClient  # user ann
    member: NativeClient  # user bob
    config_dir: Path  # a docker config logged in as ann
    member_config_dir: Path  # ... as bob


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def make_tenant(cloud: TestCloud, root: Path) -> Tenant:
    operator = cloud.admin()
    name = unique("t")
    made = operator.create_tenant(name, user="ann")
    operator.add_user(name, "bob", role="member")
    member = operator.issue_token(name, "bob")["token"]
    write_token(root / "ann", made["token"])
    write_token(root / "bob", member)
    return Tenant(
        name=name,
        id=made["tenant"]["id"],
        admin=NativeClient(cloud.docker_host, made["token"]),
        member=NativeClient(cloud.docker_host, member),
        config_dir=root / "ann",
        member_config_dir=root / "bob",
    )


@pytest.fixture(scope="module")
def acme(cloud: TestCloud, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return make_tenant(cloud, tmp_path_factory.mktemp("ns-acme"))


@pytest.fixture(scope="module")
def globex(cloud: TestCloud, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return make_tenant(cloud, tmp_path_factory.mktemp("ns-globex"))


def dockyard(cloud: TestCloud, *args: str, config_dir: Path | None = None) -> tuple[int, str, str]:
    """Run the dockyard CLI: tenants' commands as ``config_dir``'s login, admin commands
    on the cloud's operator socket. (exit status, stdout, stderr)"""
    command = [str(DOCKYARD), *args]
    if args[0] == "admin":
        layout = cloud.layout
        command += ["--state-dir", str(layout.state_dir), "--run-dir", str(layout.run_dir)]
        command += ["--instance", layout.instance]
    env = cloud.env()
    if config_dir is not None:
        env["DOCKER_CONFIG"] = str(config_dir)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


def test_claims_are_unique_across_the_cloud(cloud: TestCloud, acme: Tenant, globex: Tenant) -> None:
    assert acme.admin.namespaces() == []
    name = unique("acme_")
    claimed = acme.admin.claim_namespace(name)
    assert claimed["name"] == name and claimed["created"] > 0
    another = acme.admin.claim_namespace(unique("acmeweb"))  # a second one
    both = sorted([name, another["name"]])
    assert [n["name"] for n in acme.admin.namespaces()] == both
    assert [n["name"] for n in acme.member.namespaces()] == both, "members see them too"

    with pytest.raises(Conflict, match="already yours"):
        acme.admin.claim_namespace(name)
    with pytest.raises(Conflict, match=f"namespace {name} is already taken") as taken:
        globex.admin.claim_namespace(name)
    assert acme.name not in taken.value.message, "never says whose"
    assert globex.admin.namespaces() == [], "B never sees A's namespaces"
    assert globex.member.namespaces() == []

    with pytest.raises(InvalidArgument, match="4 to 30"):
        globex.admin.claim_namespace("Bad-Name")
    with pytest.raises(InvalidArgument, match="4 to 30"):
        globex.admin.claim_namespace("abc")
    with pytest.raises(PermissionDenied, match="reserved"):
        globex.admin.claim_namespace("library")
    with pytest.raises(PermissionDenied, match="tenant admin"):
        globex.member.claim_namespace(unique("member"))
    assert globex.admin.namespaces() == []

    owners = {n["name"]: n["tenant"] for n in cloud.admin().namespaces()}
    assert owners[name] == {"id": acme.id, "name": acme.name}
    assert [n["name"] for n in cloud.admin().namespaces(globex.name)] == []

    # Every claim, refused ones too, is in the claimant's own log with the name it asked for.
    mine = acme.admin.audit(action="claim_namespace")
    assert [(r["target"], r["created"], r["status"]) for r in reversed(mine)] == [
        (name, name, 201),
        (another["name"], another["name"], 201),
        (name, "", 409),
    ]
    theirs = [(r["user"], r["target"], r["status"]) for r in globex.admin.audit()]
    assert {("ann", name, 409), ("ann", "Bad-Name", 400), ("ann", "library", 403)} <= set(theirs)
    assert any(user == "bob" and status == 403 for user, _, status in theirs)


def test_the_operator_assigns_and_a_deleted_tenants_names_stay_retired(
    cloud: TestCloud, globex: Tenant, tmp_path: Path
) -> None:
    operator = cloud.admin()
    given = unique("given_")
    assigned = operator.assign_namespace(globex.name, given)
    assert assigned["created_by"] == "@operator"
    assert assigned["tenant"] == {"id": globex.id, "name": globex.name}
    assert [n["name"] for n in globex.admin.namespaces()] == [given]
    [record] = globex.admin.audit(action="assign_namespace")
    assert (record["user"], record["target"], record["created"]) == ("@operator", given, given)

    gone = make_tenant(cloud, tmp_path)
    kept = gone.admin.claim_namespace(unique("gone_"))["name"]
    operator.remove_tenant(gone.name)
    [retired] = [n for n in operator.namespaces() if n["name"] == kept]
    assert retired["tenant"] == {"id": gone.id, "name": ""} and retired["retired"] > 0
    with pytest.raises(Conflict, match="already taken"):
        globex.admin.claim_namespace(kept)
    with pytest.raises(Conflict, match="already taken"):
        operator.assign_namespace(globex.name, kept)
    status, out, _ = dockyard(cloud, "admin", "namespace", "list")
    assert status == 0
    [line] = [line for line in out.splitlines() if line.startswith(kept)]
    assert f"(deleted {gone.id[:12]})" in line


def test_cli(cloud: TestCloud, tmp_path: Path) -> None:
    tenant = make_tenant(cloud, tmp_path)
    status, out, err = dockyard(cloud, "namespace", config_dir=tenant.config_dir)
    assert (status, out) == (0, "") and "dockyard namespace set NAME" in err
    status, out, _ = dockyard(cloud, "whoami", config_dir=tenant.config_dir)
    assert status == 0 and "namespaces: none" in out

    first, second = unique("clia_"), unique("clib_")
    for name in (first, second):
        status, out, err = dockyard(cloud, "namespace", "set", name, config_dir=tenant.config_dir)
        assert (status, out) == (0, f"{name}\n"), err
    status, out, err = dockyard(cloud, "namespace", config_dir=tenant.member_config_dir)
    assert (status, out) == (0, f"{first}\n{second}\n"), err
    status, out, _ = dockyard(cloud, "namespace", "list", config_dir=tenant.config_dir)
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "CREATED"]
    assert [row.split()[0] for row in rows] == [first, second]
    status, out, _ = dockyard(cloud, "whoami", config_dir=tenant.config_dir)
    assert f"namespaces: {first}, {second}" in out
    status, out, _ = dockyard(cloud, "info", config_dir=tenant.config_dir)
    assert f"registry namespaces: {first}, {second}" in out

    status, _, err = dockyard(
        cloud, "namespace", "set", unique("bob_"), config_dir=tenant.member_config_dir
    )
    assert status == 1 and "tenant admin" in err
    status, _, err = dockyard(cloud, "namespace", "set", first, config_dir=tenant.config_dir)
    assert status == 1 and "already yours" in err
    status, _, err = dockyard(cloud, "namespace", "set", "No", config_dir=tenant.config_dir)
    assert status == 1 and "4 to 30" in err

    third = unique("clic_")
    status, out, err = dockyard(cloud, "admin", "namespace", "assign", tenant.name, third)
    assert (status, out) == (0, f"{third}\n"), err
    status, out, _ = dockyard(cloud, "admin", "namespace", "list", "--tenant", tenant.name)
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "TENANT", "CREATED", "BY", "RETIRED"]
    assert [row.split()[:2] for row in rows] == [[n, tenant.name] for n in (first, second, third)]
