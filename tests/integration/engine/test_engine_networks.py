"""Tenant networks through the Docker API and the docker CLI (issue 5, ADR 0016): the
predefined networks, create/inspect/rm/prune, several networks per container, static
addresses, connect and disconnect, isolation between networks, the NAT-only ``bridge``,
internal networks, ``--network container:``, and two tenants on the same subnet.

Traffic is checked from inside containers (busybox ``wget``/``nc``/``ip``); the outside
world is a network namespace the ``outside`` fixture makes (198.18.0.0/15 only).
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from dockyard.testing.cloud import DockerCli, TestCloud

SERVE = "echo hello-from-$(hostname) > /tmp/index.html; httpd -f -p 8080 -h /tmp"


def nonce() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def networks(client: docker.DockerClient) -> Iterator[list[str]]:
    """Networks the test made; removed afterwards with the containers still on them (this
    fixture's teardown runs before ``cleanup``'s, and a network in use cannot go: a
    leaked subnet would refuse a later test's)."""
    made: list[str] = []
    yield made
    for ref in made:
        for container in client.api.containers(all=True, filters={"network": ref}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container["Id"], force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(ref)


def network(client: docker.DockerClient, made: list[str], subnet: str = "", **kwargs: Any) -> str:
    name = f"net-{nonce()}"
    ipam = None
    if subnet:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    client.api.create_network(name, ipam=ipam, **kwargs)
    made.append(name)
    return name


def serve(client: docker.DockerClient, cleanup: list[str], net: str, **kwargs: Any) -> Any:
    server = client.containers.run(
        "busybox", ["sh", "-c", SERVE], detach=True, network=net, **kwargs
    )
    cleanup.append(server.id)
    server.reload()
    return server


def address(container: Any, net: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][net]["IPAddress"])


def fetch(client: docker.DockerClient, target: str, **kwargs: Any) -> str:
    """What a new container gets from http://target:8080/ ("" when it cannot connect)."""
    script = (
        f"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -qO- http://{target}:8080/ && exit 0;"
        " sleep 0.3; done; echo unreachable"
    )
    out = client.containers.run("busybox", ["sh", "-c", script], remove=True, **kwargs)
    text = out.decode().strip()
    return "" if text.endswith("unreachable") else text


def cannot_connect(client: docker.DockerClient, target: str, **kwargs: Any) -> bool:
    """True when a new container's TCP connect to target:8080 fails (within 3 s)."""
    out = client.containers.run(
        "busybox",
        ["sh", "-c", f"nc -w 3 {target} 8080 </dev/null && echo open || echo closed"],
        remove=True,
        **kwargs,
    )
    return out.decode().strip().endswith("closed")


# the predefined networks and the network API ---------------------------------------------


def test_every_tenant_has_default_bridge_and_none(cli: DockerCli) -> None:
    names = cli.run("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.split("\n")
    assert {"default bridge", "bridge bridge", "none null"} <= set(names)
    default = cli.run("network", "inspect", "default", "--format", "{{json .IPAM.Config}}")
    assert "172.18.0.0/16" in default.stdout
    refused = cli.run("network", "rm", "default", check=False)
    assert refused.returncode != 0
    assert "pre-defined network" in refused.stderr


def test_create_inspect_and_remove_with_the_cli(cli: DockerCli) -> None:
    name = f"net-{nonce()}"
    created = cli.run(
        "network",
        "create",
        "--subnet",
        "10.70.0.0/24",
        "--gateway",
        "10.70.0.254",
        "--ip-range",
        "10.70.0.128/25",
        "--label",
        "team=a",
        name,
    ).stdout.strip()
    try:
        inspected = cli.run("network", "inspect", name, "--format", "{{json .}}").stdout
        assert created in inspected
        for needle in ('"Subnet":"10.70.0.0/24"', '"Gateway":"10.70.0.254"', '"team":"a"'):
            assert needle in inspected
        taken = cli.run("network", "create", name, check=False)
        assert taken.returncode != 0 and "already exists" in taken.stderr
        overlap = cli.run("network", "create", "--subnet", "10.70.0.0/16", f"x{name}", check=False)
        assert overlap.returncode != 0 and "overlaps" in overlap.stderr
        listed = cli.run("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}")
        assert listed.stdout.split() == [name]
    finally:
        cli.run("network", "rm", name)
    assert name not in cli.run("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_network_in_use_is_409_and_prune_keeps_it(
    client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    used = network(client, networks)
    idle = network(client, networks)
    holder = client.containers.create("busybox", ["true"], network=used)
    cleanup.append(holder.id)
    with pytest.raises(docker.errors.APIError) as info:
        client.api.remove_network(used)
    assert info.value.status_code == 409
    assert "active endpoints" in str(info.value)
    pruned = client.api.prune_networks()["NetworksDeleted"]
    assert idle in pruned and used not in pruned
    assert {"default", "bridge"} <= {n["Name"] for n in client.api.networks()}
    holder.remove()
    cleanup.remove(holder.id)
    client.api.remove_network(used)


# traffic -----------------------------------------------------------------------------------


def test_containers_on_one_network_reach_each_other(
    client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    net = network(client, networks, subnet="10.71.0.0/24")
    server = serve(client, cleanup, net)
    ip = address(server, net)
    assert ip.startswith("10.71.0.")
    assert fetch(client, ip, network=net) == f"hello-from-{server.attrs['Config']['Hostname']}"


def test_the_default_network_is_shared_by_the_tenants_containers(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    server = serve(client, cleanup, "default")
    ip = server.attrs["NetworkSettings"]["IPAddress"]
    assert ip.startswith("172.18.")
    assert fetch(client, ip).startswith("hello-from-")


def test_networks_of_one_tenant_are_isolated_but_a_container_may_join_both(
    client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    front = network(client, networks)
    back = network(client, networks)
    server = serve(client, cleanup, back)
    ip = address(server, back)
    assert cannot_connect(client, ip, network=front)
    # A container on both: created on one, connected to the other before it starts.
    both = client.containers.create(
        "busybox", ["sh", "-c", f"timeout 5 wget -qO- http://{ip}:8080/"], network=front
    )
    cleanup.append(both.id)
    client.api.connect_container_to_network(both.id, back)
    both.start()
    assert both.wait(timeout=30)["StatusCode"] == 0
    assert both.logs().decode().startswith("hello-from-")
    both.reload()
    assert set(both.attrs["NetworkSettings"]["Networks"]) == {front, back}


def test_the_bridge_network_is_nat_only(
    client: docker.DockerClient, cleanup: list[str], outside: tuple[str, str, str]
) -> None:
    server = serve(client, cleanup, "bridge")
    ip = address(server, "bridge")
    subnet = client.api.inspect_network("bridge")["IPAM"]["Config"][0]["Subnet"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
    assert cannot_connect(client, ip, network="bridge")
    # ... yet it reaches the outside.
    ns, peer_ip, _host_ip = outside
    listener = subprocess.Popen(
        [
            "ip", "netns", "exec", ns, "python3", "-c",
            "import socket; s=socket.socket();"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
            f"s.bind(('{peer_ip}', 7001)); s.listen(1); print('ready', flush=True);"
            "c, a = s.accept(); print(c.recv(100).decode().strip(), flush=True)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        client.containers.run(
            "busybox",
            ["sh", "-c", f"echo out | nc -w 3 {peer_ip} 7001"],
            network="bridge",
            remove=True,
        )
        assert listener.communicate(timeout=10)[0].strip() == "out"
    finally:
        listener.kill()


def test_an_internal_network_has_no_way_out(
    client: docker.DockerClient,
    cleanup: list[str],
    networks: list[str],
    outside: tuple[str, str, str],
) -> None:
    net = network(client, networks, internal=True)
    server = serve(client, cleanup, net)
    assert fetch(client, address(server, net), network=net).startswith("hello-from-")
    _ns, peer_ip, _host_ip = outside
    out = client.containers.run(
        "busybox",
        ["sh", "-c", f"nc -w 2 {peer_ip} 7002 </dev/null && echo open || echo closed"],
        network=net,
        remove=True,
    )
    assert out.decode().strip().endswith("closed")


def test_static_addresses_and_aliases(
    client: docker.DockerClient, cleanup: list[str], networks: list[str], cli: DockerCli
) -> None:
    net = network(client, networks, subnet="10.72.0.0/24")
    fixed = cli.run(
        "run", "-d", "--network", net, "--ip", "10.72.0.50", "--network-alias", "api",
        "busybox", "sleep", "60",
    ).stdout.strip()  # fmt: skip
    cleanup.append(fixed)
    settings = client.api.inspect_container(fixed)["NetworkSettings"]["Networks"][net]
    assert settings["IPAddress"] == "10.72.0.50"
    assert settings["IPAMConfig"] == {"IPv4Address": "10.72.0.50"}
    assert "api" in settings["Aliases"]
    taken = cli.run(
        "run", "-d", "--network", net, "--ip", "10.72.0.50", "busybox", "true", check=False
    )
    assert taken.returncode != 0 and "Address already in use" in taken.stderr
    outside = cli.run(
        "run", "-d", "--network", net, "--ip", "10.99.0.5", "busybox", "true", check=False
    )
    assert outside.returncode != 0 and "not a host address" in outside.stderr


def test_connect_and_disconnect_a_running_container(
    client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    net = network(client, networks, subnet="10.73.0.0/24")
    box = client.containers.run("busybox", ["sleep", "120"], detach=True)
    cleanup.append(box.id)
    client.api.connect_container_to_network(box.id, net, ipv4_address="10.73.0.9")
    out = box.exec_run(["ip", "-o", "-4", "addr"]).output.decode()
    assert "10.73.0.9/24" in out, out
    assert set(client.api.inspect_container(box.id)["NetworkSettings"]["Networks"]) == {
        "default",
        net,
    }
    with pytest.raises(docker.errors.APIError) as again:
        client.api.connect_container_to_network(box.id, net)
    assert again.value.status_code == 403
    client.api.disconnect_container_from_network(box.id, net)
    out = box.exec_run(["ip", "-o", "-4", "addr"]).output.decode()
    assert "10.73.0.9" not in out, out
    # The address went back to the pool: another container may take it.
    other = client.containers.create("busybox", ["true"], network=net)
    cleanup.append(other.id)
    client.api.disconnect_container_from_network(other.id, net)
    client.api.connect_container_to_network(other.id, net, ipv4_address="10.73.0.9")


def _get(url: str) -> bytes:
    deadline = time.monotonic() + 5
    while True:
        try:
            return bytes(urllib.request.urlopen(url, timeout=2).read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _default_routes(box: Any) -> list[str]:
    out = box.exec_run(["ip", "-4", "route"]).output.decode()
    return [line for line in out.splitlines() if line.startswith("default")]


def test_disconnecting_the_first_network_moves_the_gateway(
    client: docker.DockerClient,
    cleanup: list[str],
    networks: list[str],
    outside: tuple[str, str, str],
) -> None:
    """As in Docker: the network left becomes the gateway network; published ports and
    ``docker inspect`` follow; with only an internal network left there is no default
    route."""
    net = network(client, networks, subnet="10.74.0.0/24")
    inner = network(client, networks, subnet="10.75.0.0/24", internal=True)
    box = client.containers.run(
        "busybox",
        ["sh", "-c", "echo moved > /tmp/index.html; httpd -f -p 80 -h /tmp"],
        detach=True,
        ports={"80/tcp": ("127.0.0.1", None)},
    )
    cleanup.append(box.id)
    client.api.connect_container_to_network(box.id, net)
    client.api.connect_container_to_network(box.id, inner)
    box.reload()
    port = int(box.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    assert _get(f"http://127.0.0.1:{port}/") == b"moved\n"

    client.api.disconnect_container_from_network(box.id, "default")
    assert _default_routes(box) == ["default via 10.74.0.1 dev eth1 "]
    # Its DNS server is the new gateway network's (resolv.conf rewritten in place).
    resolv = box.exec_run(["cat", "/etc/resolv.conf"]).output.decode()
    assert "nameserver 10.74.0.1\n" in resolv, resolv
    peer = client.containers.run("busybox", ["sleep", "120"], detach=True, network=net)
    cleanup.append(peer.id)
    peer.reload()
    found = box.exec_run(["nslookup", peer.name]).output.decode()
    assert address(peer, net) in found, found
    settings = client.api.inspect_container(box.id)["NetworkSettings"]
    assert set(settings["Networks"]) == {net, inner}
    assert settings["Gateway"] == "10.74.0.1"
    assert settings["IPAddress"] == settings["Networks"][net]["IPAddress"]
    assert _get(f"http://127.0.0.1:{port}/") == b"moved\n"
    _ns, peer_ip, _host_ip = outside
    listener = subprocess.Popen(
        [
            "ip", "netns", "exec", _ns, "python3", "-c",
            "import socket; s=socket.socket();"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
            f"s.bind(('{peer_ip}', 7003)); s.listen(1); print('ready', flush=True);"
            "c, a = s.accept(); print(c.recv(100).decode().strip(), flush=True)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        box.exec_run(["sh", "-c", f"echo out | nc -w 3 {peer_ip} 7003"])
        assert listener.communicate(timeout=10)[0].strip() == "out"
    finally:
        listener.kill()
    # The controller names the next interface eth2 (two endpoints left), which the agent
    # still has (eth1 and eth2 are left): it takes the lowest free name, eth0.
    third = network(client, networks, subnet="10.76.0.0/24")
    client.api.connect_container_to_network(box.id, third)
    out = box.exec_run(["ip", "-o", "-4", "addr", "show", "eth0"]).output.decode()
    assert "10.76.0." in out, out
    client.api.disconnect_container_from_network(box.id, third)

    client.api.disconnect_container_from_network(box.id, net)
    assert _default_routes(box) == []
    assert set(client.api.inspect_container(box.id)["NetworkSettings"]["Networks"]) == {inner}


def test_network_mode_container_shares_the_peers_netns(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    server = client.containers.run(
        "busybox",
        ["sh", "-c", "echo sidecar > /tmp/index.html; httpd -f -p 127.0.0.1:8080 -h /tmp"],
        detach=True,
    )
    cleanup.append(server.id)
    out = client.containers.run(
        "busybox",
        ["sh", "-c", "sleep 0.3; wget -qO- http://127.0.0.1:8080/"],
        network_mode=f"container:{server.name}",
        remove=True,
    )
    assert out == b"sidecar\n"
    with pytest.raises(docker.errors.APIError) as info:
        client.containers.run(
            "busybox", ["true"], network_mode=f"container:{server.name}", ports={"80/tcp": 8081}
        )
    assert info.value.status_code == 400


def test_two_tenants_may_use_one_subnet_and_never_meet(
    cloud: TestCloud, client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    subnet = "10.74.0.0/24"
    net = network(client, networks, subnet=subnet)
    server = serve(client, cleanup, net, hostname="tenant-a")
    ip = address(server, net)
    token = cloud.admin().create_tenant(f"t{nonce()}", user="bob", seed_busybox=True)["token"]
    b = cloud.client(token)
    try:
        b.api.create_network(net, ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=subnet)]
        ))  # fmt: skip
        # B's own server at the same address answers B; A's is out of B's reach.
        assert cannot_connect(b, ip, network=net)
        b_server = b.containers.run(
            "busybox", ["sh", "-c", SERVE], detach=True, network=net, hostname="tenant-b"
        )
        assert address(b_server, net) == ip
        assert fetch(b, ip, network=net) == "hello-from-tenant-b"
        assert fetch(client, ip, network=net) == "hello-from-tenant-a"
    finally:
        for container in b.api.containers(all=True):
            b.api.remove_container(container["Id"], force=True)
        with contextlib.suppress(docker.errors.NotFound):
            b.api.remove_network(net)
        b.close()


# DNS ---------------------------------------------------------------------------------------


def resolve(client: docker.DockerClient, name: str, **kwargs: Any) -> str:
    """The address a new container's resolver gives for ``name`` ("" when none)."""
    script = f"nslookup {name} 2>/dev/null | awk '/^Name:/ {{n=1}} n && /^Address/ {{print $2}}'"
    out = client.containers.run("busybox", ["sh", "-c", script], remove=True, **kwargs)
    return out.decode().strip()


def with_aliases(
    client: docker.DockerClient,
    cleanup: list[str],
    net: str,
    aliases: list[str],
    *,
    name: str,
    text: str = "",
) -> str:
    """A started web server on ``net`` with ``aliases`` given at create (as compose does)."""
    body = f"echo {text} > /tmp/index.html; httpd -f -p 8080 -h /tmp" if text else SERVE
    api = client.api
    container = api.create_container(
        "busybox",
        ["sh", "-c", body],
        name=name,
        host_config=api.create_host_config(network_mode=net),
        networking_config=api.create_networking_config(
            {net: api.create_endpoint_config(aliases=aliases)}
        ),
    )["Id"]
    cleanup.append(container)
    api.start(container)
    return str(container)


def test_names_aliases_and_short_ids_resolve_on_the_network_only(
    cloud: TestCloud, client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    net = network(client, networks)
    other = network(client, networks)
    name = f"db-{nonce()}"
    server = client.containers.get(with_aliases(client, cleanup, net, ["database"], name=name))
    ip = address(server, net)
    for asked in (name, "database", server.id[:12], name.upper()):
        assert resolve(client, asked, network=net) == ip, asked
    assert fetch(client, name, network=net).startswith("hello-from-")
    # Not from another network of the tenant, nor from another tenant's same-named network.
    assert resolve(client, name, network=other) == ""
    token = cloud.admin().create_tenant(f"t{nonce()}", user="eve", seed_busybox=True)["token"]
    b = cloud.client(token)
    try:
        b.api.create_network(net)
        assert resolve(b, name, network=net) == ""
    finally:
        for container in b.api.containers(all=True):
            b.api.remove_container(container["Id"], force=True)
        with contextlib.suppress(docker.errors.NotFound):
            b.api.remove_network(net)
        b.close()


def test_compose_style_services_reach_each_other_by_name(
    client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    net = network(client, networks)
    project = nonce()
    with_aliases(client, cleanup, net, ["db"], name=f"{project}-db-1", text="db-ok")
    assert fetch(client, "db", network=net) == "db-ok"


def test_a_renamed_container_answers_to_its_new_name(
    client: docker.DockerClient, cleanup: list[str], networks: list[str]
) -> None:
    net = network(client, networks)
    old, new = f"old-{nonce()}", f"new-{nonce()}"
    server = serve(client, cleanup, net, name=old)
    ip = address(server, net)
    assert resolve(client, old, network=net) == ip
    server.rename(new)
    assert resolve(client, new, network=net) == ip
    assert resolve(client, old, network=net) == ""
