"""Security groups and public IPs enforced on a real cloud (ADR 0016, 0018, 0019): an
operator pool in 198.18.0.0/15 that a public namespace routes to the host, a tenant's
container reached on its bound address only where its groups' rules (or a ``-p``) let it,
its traffic out leaving from the address, unbinding cutting it, and another tenant getting
in only by the first tenant's rules. Groups and addresses go through ``dockyard sg``,
``dockyard ip`` and the native API; containers through docker-py."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

import dockyard
from dockyard.client.dockerconfig import write_token
from dockyard.client.native import NativeClient
from dockyard.testing.cloud import TestCloud

LABEL = "dockyard.security-groups"
_SRC = str(Path(dockyard.__file__).resolve().parents[1])
SERVE = (
    "echo hi-$(hostname) > /tmp/index.html;"
    " httpd -p 8080 -h /tmp; httpd -p 8081 -h /tmp; httpd -f -p 8082 -h /tmp"
)
# From the public namespace: an HTTP GET, the body's first line or "" (3 s at most).
GET = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    print(data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip())
except OSError:
    print("")
"""
# In the public namespace: accept one connection, print the peer's address.
PEER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, a = s.accept()
print(a[0], flush=True)
"""


@dataclass(frozen=True)
class Public:
    """The public side: a namespace (``ns``, its address ``ip``), the host's address on
    its link and a /29 ``pool`` of the operator's, routed by ``ns`` to the host."""

    ns: str
    ip: str
    host_ip: str
    pool: str

    def get(self, address: str, port: int) -> str:
        command = ["ip", "netns", "exec", self.ns, sys.executable, "-c", GET, address, str(port)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return result.stdout.strip()

    @property
    def prefix(self) -> str:
        return self.ip.rsplit(".", 1)[0] + ".0/30"


@pytest.fixture
def public(cloud: TestCloud, outside: tuple[str, str, str]) -> Iterator[Public]:
    ns, peer_ip, host_ip = outside
    pool = peer_ip.rsplit(".", 1)[0] + ".8/29"  # beside the outside link's /30
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "route", "add", "unreachable", pool)
    try:
        run("ip", "-n", ns, "route", "add", pool, "via", host_ip)
        cloud.admin().add_ip_pool(pool)
        try:
            yield Public(ns, peer_ip, host_ip, pool)
        finally:
            cloud.admin().remove_ip_pool(pool)
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", pool], check=False)


@dataclass
class Tenant:
    name: str
    config: Path
    api: NativeClient
    docker: docker.DockerClient

    def cli(self, cloud: TestCloud, *args: str) -> str:
        """``dockyard ARGS`` as this tenant's admin, from this source tree."""
        result = subprocess.run(
            [sys.executable, "-c", "from dockyard.cli.main import main; main()", *args],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": _SRC,
                "DOCKER_HOST": cloud.docker_host,
                "DOCKER_CONFIG": str(self.config),
            },
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (result.stdout, result.stderr)
        return result.stdout


@pytest.fixture
def tenants(cloud: TestCloud, tmp_path: Path, public: Public) -> Iterator[list[Tenant]]:
    """Two tenants of their own; their containers and addresses go afterwards."""
    made: list[Tenant] = []
    for _ in range(2):
        name = f"t{uuid.uuid4().hex[:8]}"
        created = cloud.admin().create_tenant(name, user="ann", seed_busybox=True)
        where = tmp_path / name
        where.mkdir()
        write_token(where, created["token"])
        made.append(
            Tenant(
                name=name,
                config=where,
                api=NativeClient(cloud.docker_host, created["token"]),
                docker=cloud.client(created["token"]),
            )
        )
    yield made
    for tenant in made:
        for container in tenant.docker.api.containers(all=True):
            with contextlib.suppress(docker.errors.APIError):
                tenant.docker.api.remove_container(container["Id"], force=True)
        for held in tenant.api.ips():
            tenant.api.release_ip(held["address"])
        tenant.docker.close()


def web_server(tenant: Tenant, *, groups: str, published: int) -> str:
    """A container serving on 8080, 8081 (exposed) and 8082 (``-p published:8082``)."""
    api = tenant.docker.api
    created = api.create_container(
        "busybox",
        ["sh", "-c", SERVE],
        ports=[8080, 8081, 8082],
        labels={LABEL: groups},
        host_config=api.create_host_config(port_bindings={8082: published}),
    )
    api.start(created["Id"])
    return str(created["Id"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def reaches(tenant: Tenant, address: str, port: int) -> bool:
    """Whether a new container of ``tenant`` connects to address:port (3 s at most)."""
    out = tenant.docker.containers.run(
        "busybox",
        ["sh", "-c", f"nc -w 3 {address} {port} </dev/null && echo open || echo closed"],
        remove=True,
    )
    return bool(out.decode().strip().endswith("open"))


def test_a_bound_address_reaches_allowed_ports_only_and_unbinding_cuts_it(
    cloud: TestCloud, public: Public, tenants: list[Tenant]
) -> None:
    acme = tenants[0]
    acme.cli(cloud, "sg", "create", "web")
    acme.cli(
        cloud, "sg", "rule", "add", "web", "--proto", "tcp", "--port", "8080",
        "--source", public.prefix,
    )  # fmt: skip
    published = free_port()
    web = web_server(acme, groups="web", published=published)
    name = acme.docker.api.inspect_container(web)["Name"].lstrip("/")
    address = acme.cli(cloud, "ip", "request").strip()
    assert address.startswith(public.pool.rsplit(".", 1)[0])
    assert public.get(address, 8080) == ""  # not bound yet: goes nowhere
    acme.cli(cloud, "ip", "bind", address, name)
    expected = f"hi-{web[:12]}"
    assert public.get(address, 8080) == expected  # the rule allows it
    assert public.get(address, 8081) == ""  # exposed, but no rule
    assert public.get(address, published) == expected  # -p: an allow of its own
    assert public.get(public.host_ip, published) == expected
    # Its traffic out leaves from the address.
    listener = subprocess.Popen(
        ["ip", "netns", "exec", public.ns, sys.executable, "-c", PEER, public.ip, "7001"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        acme.docker.api.exec_start(
            acme.docker.api.exec_create(web, ["sh", "-c", f"nc -w 3 {public.ip} 7001 </dev/null"])
        )
        assert listener.communicate(timeout=10)[0].strip() == address
    finally:
        listener.kill()
    # A rule added while it runs applies at once; unbinding cuts the address.
    acme.cli(
        cloud, "sg", "rule", "add", "web", "--proto", "tcp", "--port", "8081",
        "--source", "0.0.0.0/0",
    )  # fmt: skip
    assert public.get(address, 8081) == expected
    acme.api.unbind_ip(address)
    assert public.get(address, 8080) == ""
    assert public.get(public.host_ip, published) == expected  # the host's -p stays
    assert acme.api.ip(address)["container"] == ""


def test_another_tenant_gets_in_only_by_the_rules_of_the_first(
    cloud: TestCloud, public: Public, tenants: list[Tenant]
) -> None:
    acme, globex = tenants
    group = f"g{secrets.token_hex(3)}"
    acme.api.create_security_group(group)
    acme.api.add_security_group_rule(
        group, protocol="tcp", port_min=8080, source_group=group
    )  # members only
    web = web_server(acme, groups=group, published=free_port())
    address = acme.api.request_ip()["address"]
    acme.api.bind_ip(address, web)
    private = acme.docker.api.inspect_container(web)["NetworkSettings"]["Networks"]["default"][
        "IPAddress"
    ]
    # Tenant globex: its own group of the same name makes no one a member of acme's.
    globex.api.create_security_group(group)
    globex.api.add_security_group_rule(group, protocol="all", source_group=group)
    assert not reaches(globex, address, 8080)
    assert not reaches(globex, private, 8080)
    # A rule of acme's lets anyone in on 8080: globex too, and only there.
    acme.api.add_security_group_rule(group, protocol="tcp", port_min=8080, source="0.0.0.0/0")
    assert reaches(globex, address, 8080)
    assert not reaches(globex, address, 8081)
    assert not reaches(globex, private, 8080)


def test_a_replacement_takes_the_address_over(
    cloud: TestCloud, public: Public, tenants: list[Tenant]
) -> None:
    acme = tenants[0]
    group = f"g{secrets.token_hex(3)}"
    acme.api.create_security_group(group)
    acme.api.add_security_group_rule(group, protocol="tcp", port_min=8080, source="0.0.0.0/0")
    old = web_server(acme, groups=group, published=free_port())
    address = acme.api.request_ip()["address"]
    acme.api.bind_ip(address, old)
    assert public.get(address, 8080) == f"hi-{old[:12]}"
    new = web_server(acme, groups=group, published=free_port())
    acme.api.bind_ip(address, new)  # moved: off the old one first
    assert public.get(address, 8080) == f"hi-{new[:12]}"
    acme.docker.api.remove_container(new, force=True)
    assert public.get(address, 8080) == ""
    assert acme.api.ip(address)["container"] == ""  # still the tenant's
    acme.api.bind_ip(address, old)
    assert public.get(address, 8080) == f"hi-{old[:12]}"
