"""Security groups through `dockyard sg`, the native API and docker-py: groups, rules and
their refusals, the default group, tenants that cannot see or use each other's groups, the
label that chooses a create's groups, and the audit records of every change.

Traffic (what the rules let in, on a real kernel) is tested in test_engine_ingress.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

import dockyard
from dockyard.client.dockerconfig import write_token
from dockyard.client.native import NativeClient
from dockyard.core.errors import InvalidArgument, NotFound, PermissionDenied
from dockyard.testing.cloud import TestCloud

LABEL = "dockyard.security-groups"
_SRC = str(Path(dockyard.__file__).resolve().parents[1])


@dataclass(frozen=True)
class Tenant:
    name: str
    token: str
    config: Path
    api: NativeClient


def make_tenant(cloud: TestCloud, where: Path) -> Tenant:
    name = f"t{uuid.uuid4().hex[:8]}"
    made = cloud.admin().create_tenant(name, user="ann", seed_busybox=True)
    write_token(where, made["token"])
    return Tenant(
        name=name,
        token=made["token"],
        config=where,
        api=NativeClient(cloud.docker_host, made["token"]),
    )


@pytest.fixture(scope="module")
def acme(cloud: TestCloud, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return make_tenant(cloud, tmp_path_factory.mktemp("acme"))


@pytest.fixture(scope="module")
def globex(cloud: TestCloud, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return make_tenant(cloud, tmp_path_factory.mktemp("globex"))


def sg(
    cloud: TestCloud, tenant: Tenant, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """``dockyard sg ARGS`` as the tenant's admin, from this source tree."""
    result = subprocess.run(
        [sys.executable, "-c", "from dockyard.cli.main import main; main()", "sg", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": _SRC,
            "DOCKER_HOST": cloud.docker_host,
            "DOCKER_CONFIG": str(tenant.config),
        },
        timeout=60,
        check=False,
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result


def container_or_skip(client: docker.DockerClient, **kwargs: Any) -> Any:
    try:
        return client.containers.create("busybox", ["sleep", "300"], **kwargs)
    except docker.errors.APIError as exc:
        if "NetworkSpec" in str(exc.explanation):
            pytest.skip("needs the agent side of tenant networks (issue 5)")
        raise


@pytest.fixture
def acme_docker(cloud: TestCloud, acme: Tenant) -> Iterator[docker.DockerClient]:
    client = cloud.client(acme.token)
    yield client
    client.close()


# groups and rules -------------------------------------------------------------------------


def test_groups_and_rules_with_dockyard_sg(cloud: TestCloud, acme: Tenant) -> None:
    listed = sg(cloud, acme, "ls").stdout
    assert "default (default)" in listed
    web_id = sg(cloud, acme, "create", "web", "--description", "front end").stdout.strip()
    assert len(web_id) == 64
    sg(cloud, acme, "create", "db", "--label", "tier=data")
    http = sg(
        cloud, acme, "rule", "add", "web", "--proto", "tcp", "--port", "80-90",
        "--source", "0.0.0.0/0",
    ).stdout.strip()  # fmt: skip
    sg(cloud, acme, "rule", "add", "web", "--proto", "icmp", "--source", "10.0.0.0/8")
    sg(cloud, acme, "rule", "add", "db", "--proto", "TCP", "--port", "5432",
       "--source-group", "web")  # fmt: skip
    sg(cloud, acme, "rule", "add", "db", "--proto", "all", "--source-group", "db")
    shown = sg(cloud, acme, "inspect", "web").stdout
    assert "front end" in shown and "80-90" in shown and "0.0.0.0/0" in shown
    assert http in shown and "containers:  none" in shown
    db = json.loads(sg(cloud, acme, "inspect", "db", "--json").stdout)
    assert db["labels"] == {"tier": "data"} and db["containers"] == []
    rules = [
        (r["protocol"], r["port_min"], r["port_max"], r["source_group_name"]) for r in db["rules"]
    ]
    assert rules == [("tcp", 5432, 5432, "web"), ("all", 0, 0, "db")]
    assert "group web" in sg(cloud, acme, "inspect", "db").stdout
    rows = {line.split()[0]: line for line in sg(cloud, acme, "ls").stdout.splitlines()[1:]}
    assert set(rows) == {"db", "default", "web"}
    assert rows["web"].split()[2] == "2"  # rules
    sg(cloud, acme, "rule", "rm", "web", http)
    assert "80-90" not in sg(cloud, acme, "inspect", web_id[:12]).stdout
    # A group named as a rule's source cannot go; then it can.
    refused = sg(cloud, acme, "rm", "web", code=1).stderr
    assert "source of rules of security groups db" in refused
    for rule in db["rules"]:
        sg(cloud, acme, "rule", "rm", "db", rule["id"][:12])
    assert sg(cloud, acme, "rm", "web", "db").stdout.split() == ["web", "db"]
    assert (
        "default is the tenant's default security group"
        in sg(cloud, acme, "rm", "default", code=1).stderr
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--proto", "icmp", "--port", "8", "--source", "0.0.0.0/0"), "icmp takes no ports"),
        (("--proto", "tcp", "--port", "0", "--source", "0.0.0.0/0"), "ports are 1-65535"),
        (("--proto", "udp", "--port", "70000", "--source", "0.0.0.0/0"), "ports are 1-65535"),
        (("--proto", "tcp", "--port", "90-80", "--source", "0.0.0.0/0"), "first is higher"),
        (("--proto", "tcp", "--source", "10.1.2.3/8"), "it should be 10.0.0.0/8"),
        (("--proto", "tcp", "--source", "fd00::/8"), "only IPv4"),
        (("--proto", "tcp", "--source-group", "nosuch"), "source group nosuch: no such"),
    ],
)
def test_malformed_rules_are_refused_with_the_reason(
    cloud: TestCloud, acme: Tenant, args: tuple[str, ...], needle: str
) -> None:
    name = f"v{uuid.uuid4().hex[:6]}"
    acme.api.create_security_group(name)
    assert needle in sg(cloud, acme, "rule", "add", name, *args, code=1).stderr
    assert acme.api.security_group(name)["rules"] == []


def test_the_api_checks_rules_too(acme: Tenant) -> None:
    name = f"api{uuid.uuid4().hex[:6]}"
    acme.api.create_security_group(name)
    with pytest.raises(InvalidArgument, match="exactly one source"):
        acme.api.add_security_group_rule(name, protocol="tcp", port_min=22)
    with pytest.raises(InvalidArgument, match="exactly one source"):
        acme.api.add_security_group_rule(
            name, protocol="tcp", port_min=22, source="10.0.0.0/8", source_group=name
        )
    with pytest.raises(InvalidArgument, match="invalid protocol"):
        acme.api.add_security_group_rule(name, protocol="gre", source="10.0.0.0/8")
    made = acme.api.add_security_group_rule(name, protocol="udp", source="192.0.2.7")
    assert (made["port_min"], made["port_max"], made["source"]) == (1, 65535, "192.0.2.7/32")
    assert made["unapplied"] == []
    with pytest.raises(Exception, match="already has this rule"):
        acme.api.add_security_group_rule(name, protocol="udp", source="192.0.2.7/32")
    with pytest.raises(PermissionDenied):
        acme.api.remove_security_group("default")


# tenants ------------------------------------------------------------------------------------


def test_another_tenants_groups_read_as_missing(
    cloud: TestCloud, acme: Tenant, globex: Tenant
) -> None:
    mine = acme.api.create_security_group("private")
    assert globex.api.security_group("default")["id"] != acme.api.security_group("default")["id"]
    assert "private" not in [g["name"] for g in globex.api.security_groups()]
    for ref, missing in (
        ("private", "nosuch"),
        (mine["id"], "0" * 64),
        (mine["id"][:12], "0" * 12),
    ):
        with pytest.raises(NotFound) as theirs:
            globex.api.security_group(ref)
        with pytest.raises(NotFound) as unknown:
            globex.api.security_group(missing)
        assert theirs.value.message.replace(ref, "X") == unknown.value.message.replace(missing, "X")
        with pytest.raises(NotFound):
            globex.api.remove_security_group(ref)
        with pytest.raises(NotFound):
            globex.api.add_security_group_rule(ref, protocol="all", source="0.0.0.0/0")
    # Not a source for another tenant's rules either: the answer of an unknown name.
    own = globex.api.create_security_group("own")
    with pytest.raises(InvalidArgument) as as_source:
        globex.api.add_security_group_rule("own", protocol="all", source_group=mine["id"])
    assert as_source.value.message == f"source group {mine['id']}: no such security group"
    assert globex.api.security_group(own["id"])["rules"] == []
    # The same name is free in each tenant.
    assert globex.api.create_security_group("private")["id"] != mine["id"]
    assert acme.api.security_group("private")["id"] == mine["id"]
    sg(cloud, globex, "inspect", "private")


# containers ---------------------------------------------------------------------------------


def test_a_create_naming_an_unknown_group_makes_nothing(
    acme: Tenant, globex: Tenant, acme_docker: docker.DockerClient
) -> None:
    globex.api.create_security_group("theirs")
    acme.api.create_security_group("known")
    before = len(acme_docker.containers.list(all=True))
    for value, missing in (("known,nosuch", "nosuch"), ("theirs", "theirs")):
        with pytest.raises(docker.errors.APIError) as refused:
            acme_docker.containers.create("busybox", ["true"], labels={LABEL: value})
        assert refused.value.status_code == 404
        assert f"security group {missing} not found" in str(refused.value.explanation)
    assert len(acme_docker.containers.list(all=True)) == before


def test_groups_chosen_at_create_and_changed_later(
    cloud: TestCloud, acme: Tenant, globex: Tenant, acme_docker: docker.DockerClient
) -> None:
    acme.api.create_security_group("front")
    chosen = container_or_skip(acme_docker, labels={LABEL: "front"})
    plain = container_or_skip(acme_docker)

    def groups_of(ref: str) -> list[str]:
        return [g["name"] for g in acme.api.container_security_groups(ref)["security_groups"]]

    assert groups_of(chosen.id) == ["front"]
    assert groups_of(plain.name) == ["default"]
    members = acme.api.security_group("front")["containers"]
    assert [m["id"] for m in members] == [chosen.id]
    refused = sg(cloud, acme, "rm", "front", code=1).stderr
    assert f"in use by containers {chosen.name}" in refused
    assert sg(cloud, acme, "attach", plain.name, "front").stdout.strip() == (
        f"{plain.name}: default, front"
    )
    assert "front" in sg(cloud, acme, "ls", "--container", plain.name).stdout
    assert (
        "already in security group front"
        in sg(cloud, acme, "attach", plain.name, "front", code=1).stderr
    )
    # Another tenant can neither name these containers nor put them in its groups.
    globex.api.create_security_group("lure")
    with pytest.raises(NotFound):
        globex.api.attach_security_group(chosen.id, "lure")
    with pytest.raises(NotFound):
        globex.api.container_security_groups(chosen.name)
    with pytest.raises(NotFound):
        acme.api.attach_security_group(chosen.id, "lure")
    for container in (chosen, plain):
        sg(cloud, acme, "detach", container.name, "front")
    assert sg(cloud, acme, "rm", "front").stdout.strip() == "front"
    chosen.remove(force=True)
    plain.remove(force=True)


# audit --------------------------------------------------------------------------------------


def test_every_change_is_audited(cloud: TestCloud, acme: Tenant) -> None:
    name = f"aud{uuid.uuid4().hex[:6]}"
    made = acme.api.create_security_group(name)
    rule = acme.api.add_security_group_rule(name, protocol="tcp", port_min=443, source="0.0.0.0/0")
    with pytest.raises(InvalidArgument):
        acme.api.add_security_group_rule(name, protocol="tcp", port_min=443)
    acme.api.remove_security_group_rule(name, rule["id"])
    with pytest.raises(PermissionDenied):
        acme.api.remove_security_group("default")
    acme.api.remove_security_group(name)
    acme.api.security_groups()  # reads are not recorded
    # A create's target is empty (its name comes in the body): it is found by what it made.
    records = [
        r
        for r in acme.api.audit(action="", limit=1000)
        if f"/{name}" in r["path"] or r["created"] == made["id"]
    ]
    seen = [(r["action"], r["status"], r["created"]) for r in reversed(records)]
    assert seen == [
        ("create_security_group", 201, made["id"]),
        ("add_security_group_rule", 201, rule["id"]),
        ("add_security_group_rule", 400, ""),
        ("remove_security_group_rule", 200, ""),
        ("remove_security_group", 204, ""),
    ]
    assert all(r["user"] == "ann" for r in records)
    refused = acme.api.audit(action="remove_security_group", target="default")
    assert refused[0]["status"] == 403 and "cannot be removed" in refused[0]["error"]
