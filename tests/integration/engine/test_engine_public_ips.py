"""Public (floating) IPs through the dockyard CLI and the native API on a real cloud: the
operator's pools, requests under the quota, listing, releasing, another tenant's address
and container answering 404, a range held by a tenant not removed, the calls audited.

What needs a container on a host (binding, traffic in and out, `-p` remapping, unbinding
cutting traffic) is in test_engine_ingress.py."""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.client.native import NativeClient
from dockyard.core.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from dockyard.testing.cloud import TestCloud

DOCKYARD = Path(sys.executable).parent / "dockyard"
# Ranges for these tests, all within 198.18.0.0/15 (benchmarking space, never routed).
_RANGES = (f"198.19.{n}.0/29" for n in itertools.count(secrets.randbelow(200)))


def dockyard(cloud: TestCloud, *args: str, config: Path | None = None, ok: bool = True) -> str:
    """Run the dockyard CLI (admin commands on the cloud's internal socket, the others with
    the token of ``config``); its stdout, or stderr when ``ok`` is False."""
    layout = cloud.layout
    flags = ["--state-dir", str(layout.state_dir), "--run-dir", str(layout.run_dir)]
    flags += ["--instance", layout.instance]
    env = cloud.env()
    if config is not None:
        env["DOCKER_CONFIG"] = str(config)
    command = [str(DOCKYARD), *args, *(flags if args[0] == "admin" else [])]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert (result.returncode == 0) == ok, (result.returncode, result.stdout, result.stderr)
    return result.stdout if ok else result.stderr


class Tenant:
    """A tenant of its own on the free plan (2 public IPs), with a login for the CLI."""

    def __init__(self, cloud: TestCloud, tmp: Path) -> None:
        self.cloud = cloud
        self.name = f"ip{uuid.uuid4().hex[:8]}"
        made = cloud.admin().create_tenant(self.name, user="admin", plan="free")
        self.id = made["tenant"]["id"]
        self.native = NativeClient(cloud.docker_host, made["token"])
        self.config = tmp / self.name
        self.config.mkdir()
        (self.config / "config.json").write_text(
            json.dumps({"HttpHeaders": {"X-Dockyard-Token": made["token"]}})
        )

    def ip(self, *args: str, ok: bool = True) -> str:
        return dockyard(self.cloud, "ip", *args, config=self.config, ok=ok)

    def used(self) -> int:
        quotas = self.native.usage()["quotas"]
        return int(next(q["used"] for q in quotas if q["quota"] == "public_ips"))

    def close(self) -> None:
        for held in self.native.ips():
            self.native.release_ip(held["address"])
        self.cloud.admin().remove_tenant(self.name)


@pytest.fixture
def pool(cloud: TestCloud) -> Iterator[str]:
    """A /29 of public addresses (198.19.N.1-6), removed afterwards."""
    cidr = next(_RANGES)
    cloud.admin().add_ip_pool(cidr)
    yield cidr
    cloud.admin().remove_ip_pool(cidr)


@pytest.fixture
def acme(cloud: TestCloud, tmp_path: Path, pool: str) -> Iterator[Tenant]:
    made = Tenant(cloud, tmp_path)
    yield made
    made.close()


@pytest.fixture
def initech(cloud: TestCloud, tmp_path: Path, pool: str) -> Iterator[Tenant]:
    made = Tenant(cloud, tmp_path)
    yield made
    made.close()


def pools(cloud: TestCloud) -> dict[str, dict[str, Any]]:
    return {p["cidr"]: p for p in cloud.admin().ip_pools()}


def host(cidr: str, n: int) -> str:
    return cidr.rsplit(".", 1)[0] + f".{n}"


def test_the_operator_adds_lists_and_removes_ranges(cloud: TestCloud) -> None:
    cidr = next(_RANGES)
    dockyard(cloud, "admin", "ip", "pool", "add", cidr)
    single = host(cidr, 200) + "/32"
    dockyard(cloud, "admin", "ip", "pool", "add", single)
    listed = dockyard(cloud, "admin", "ip", "pool", "ls")
    rows = {line.split()[0]: line.split()[1:3] for line in listed.splitlines()[1:]}
    assert rows[cidr] == ["6", "0"] and rows[single] == ["1", "0"], listed
    assert "already exists" in dockyard(cloud, "admin", "ip", "pool", "add", cidr, ok=False)
    overlapping = host(cidr, 4) + "/30"
    assert "overlaps" in dockyard(cloud, "admin", "ip", "pool", "add", overlapping, ok=False)
    assert "reserved" in dockyard(cloud, "admin", "ip", "pool", "add", "127.0.0.0/24", ok=False)
    assert "host bits" in dockyard(
        cloud, "admin", "ip", "pool", "add", host(cidr, 1) + "/29", ok=False
    )
    dockyard(cloud, "admin", "ip", "pool", "rm", cidr)
    dockyard(cloud, "admin", "ip", "pool", "rm", single)
    assert cidr not in pools(cloud) and single not in pools(cloud)
    assert "no such public IP pool" in dockyard(cloud, "admin", "ip", "pool", "rm", cidr, ok=False)
    with pytest.raises(InvalidArgument):
        cloud.admin().add_ip_pool("")


def test_request_list_and_release_within_the_quota(
    cloud: TestCloud, acme: Tenant, pool: str
) -> None:
    first = acme.ip("request").strip()
    second = acme.ip("request").strip()
    assert (first, second) == (host(pool, 1), host(pool, 2))
    listed = acme.ip("list")
    assert listed.splitlines()[0].split() == ["ADDRESS", "CONTAINER", "CREATED"]
    assert [line.split()[0] for line in listed.splitlines()[1:]] == [first, second]
    assert [i["address"] for i in json.loads(acme.ip("list", "--json"))] == [first, second]
    assert acme.used() == 2
    assert pools(cloud)[pool]["held"] == 2

    refusal = acme.ip("request", ok=False)
    assert "quota exceeded: public_ips: 2 used of 2, 1 more asked (plan free)" in refusal
    assert len(acme.native.ips()) == 2

    acme.ip("release", first)
    assert [i["address"] for i in acme.native.ips()] == [second]
    assert acme.used() == 1
    assert "no such public IP" in acme.ip("release", first, ok=False)
    assert acme.ip("request").strip() == first  # back in the pool, lowest first


def test_a_range_held_by_a_tenant_is_not_removed(cloud: TestCloud, acme: Tenant, pool: str) -> None:
    held = acme.native.request_ip()
    with pytest.raises(Conflict, match="held by tenants"):
        cloud.admin().remove_ip_pool(pool)
    assert "held by tenants" in dockyard(cloud, "admin", "ip", "pool", "rm", pool, ok=False)
    with pytest.raises(Conflict, match="1 public IP"):
        cloud.admin().remove_tenant(acme.name)
    acme.native.release_ip(held["address"])
    assert pools(cloud)[pool]["held"] == 0


def test_another_tenants_address_is_not_found(acme: Tenant, initech: Tenant) -> None:
    mine = acme.native.request_ip()["address"]
    theirs = initech.native.request_ip()["address"]
    free = mine.rsplit(".", 1)[0] + ".6"
    for address in (theirs, free):
        with pytest.raises(NotFound, match=f"no such public IP: {address}"):
            acme.native.ip(address)
        with pytest.raises(NotFound):
            acme.native.release_ip(address)
        with pytest.raises(NotFound):
            acme.native.unbind_ip(address)
        with pytest.raises(NotFound):
            acme.native.bind_ip(address, "web")
        assert "no such public IP" in acme.ip("release", address, ok=False)
    assert [i["address"] for i in initech.native.ips()] == [theirs]
    assert [i["address"] for i in acme.native.ips()] == [mine]
    with pytest.raises(NotFound, match="No such container: nothing-here"):
        acme.native.bind_ip(mine, "nothing-here")
    assert "No such container" in acme.ip("bind", mine, "nothing-here", ok=False)
    assert acme.native.ip(mine)["container"] == ""


def test_malformed_requests_are_400(acme: Tenant) -> None:
    with pytest.raises(InvalidArgument, match="invalid public IP"):
        acme.native.ip("not-an-address")
    mine = acme.native.request_ip()["address"]
    with pytest.raises(InvalidArgument, match="container"):
        acme.native.bind_ip(mine, "")


def test_the_calls_are_audited(cloud: TestCloud, acme: Tenant, pool: str) -> None:
    address = acme.native.request_ip()["address"]
    acme.native.request_ip()
    with pytest.raises(PermissionDenied, match="quota exceeded"):
        acme.native.request_ip()
    with pytest.raises(NotFound):
        acme.native.bind_ip(address, "nothing-here")
    acme.native.release_ip(address)
    records = acme.native.audit(action="", limit=20)
    got = [(r["action"], r["target"], r["created"], r["status"]) for r in records]
    assert ("release_ip", address, "", 204) in got
    assert ("bind_ip", address, "", 404) in got
    assert ("request_ip", "", address, 201) in got
    assert any(a == "request_ip" and s == 403 for a, _, _, s in got)
    operator = cloud.admin().audit(action="add_ip_pool")
    assert any(r["created"] == pool for r in operator)
