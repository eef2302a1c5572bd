"""Minimum networking: --network none, the default bridge, NAT out, -p TCP and UDP in.

The "outside world" is a network namespace this test makes, reached from the host over a
veth pair with addresses in 198.18.0.0/15; nothing leaves the machine.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

UDP_ECHO_C = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(5000); a.sin_addr.s_addr = INADDR_ANY;
    if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
    for (;;) {
        char buf[512], out[600]; struct sockaddr_in peer; socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&peer, &len);
        if (n < 0) return 1;
        buf[n] = 0;
        int m = snprintf(out, sizeof out, "echo:%s", buf);
        sendto(s, out, m, 0, (struct sockaddr *)&peer, len);
        printf("got %s\n", buf); fflush(stdout);
    }
}
"""


@pytest.fixture(scope="module")
def nettools(
    client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """busybox plus a static UDP echo server, imported as an image."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the UDP echo server")
    work = tmp_path_factory.mktemp("nettools")
    (work / "udpecho.c").write_text(UDP_ECHO_C)
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(work / "udpecho"), str(work / "udpecho.c")], check=True
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, source in (
            ("bin/busybox", Path("/bin/busybox")),
            ("bin/udpecho", work / "udpecho"),
        ):
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for applet in ("sh", "nc", "ip", "sleep", "httpd", "wget", "cat", "echo", "ping"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for directory in ("tmp", "www", "proc", "sys", "dev", "etc"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o777
            tar.addfile(entry)
    client.api.import_image_from_data(
        buffer.getvalue(), repository="nettools", tag="1", changes=["ENV PATH=/bin"]
    )
    yield "nettools:1"
    client.images.remove("nettools:1", force=True)


def test_network_none_has_only_loopback(client: docker.DockerClient) -> None:
    out = client.containers.run(
        "busybox", ["ip", "-o", "addr"], network_mode="none", remove=True
    ).decode()
    assert [line.split()[1] for line in out.splitlines()] == ["lo", "lo"]
    inspected = client.containers.run("busybox", ["true"], network_mode="none", detach=True)
    try:
        inspected.reload()
        assert inspected.attrs["NetworkSettings"]["IPAddress"] == ""
    finally:
        inspected.remove(force=True)


def test_bridge_gives_each_container_its_own_ip(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    server = client.containers.run(
        "busybox", ["httpd", "-f", "-p", "8080", "-h", "/etc"], detach=True
    )
    cleanup.append(server.id)
    server.reload()
    address = server.attrs["NetworkSettings"]["IPAddress"]
    gateway = server.attrs["NetworkSettings"]["Gateway"]
    assert address and gateway and address != gateway
    out = client.containers.run(
        "busybox",
        [
            "sh",
            "-c",
            f"ip -o -4 addr show eth0; ip route; wget -qO- http://{address}:8080/hostname",
        ],
        remove=True,
    ).decode()
    assert "eth0" in out and f"default via {gateway}" in out
    assert server.attrs["Config"]["Hostname"] in out


def test_addresses_are_unique(client: docker.DockerClient, cleanup: list[str]) -> None:
    containers = [client.containers.run("busybox", ["sleep", "60"], detach=True) for _ in range(5)]
    cleanup.extend(c.id for c in containers)
    addresses = set()
    for c in containers:
        c.reload()
        addresses.add(c.attrs["NetworkSettings"]["IPAddress"])
    assert len(addresses) == 5


def test_publish_tcp_on_the_host(client: docker.DockerClient, cleanup: list[str]) -> None:
    server = client.containers.run(
        "busybox",
        ["sh", "-c", "echo published > /tmp/index.html; httpd -f -p 80 -h /tmp"],
        detach=True,
        ports={"80/tcp": ("127.0.0.1", None)},
    )
    cleanup.append(server.id)
    server.reload()
    binding = server.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    port = int(binding["HostPort"])
    deadline = time.monotonic() + 5
    while True:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert body == b"published\n"
    # Docker's ps shows the mapping.
    summary = next(c for c in client.api.containers() if c["Id"] == server.id)
    assert {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"} in summary[
        "Ports"
    ]


def test_publish_udp(client: docker.DockerClient, cleanup: list[str], nettools: str) -> None:
    server = client.containers.run(
        nettools, ["udpecho"], detach=True, ports={"5000/udp": ("127.0.0.1", None)}
    )
    cleanup.append(server.id)
    server.reload()
    port = int(server.attrs["NetworkSettings"]["Ports"]["5000/udp"][0]["HostPort"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(20):
            sock.sendto(b"ping", ("127.0.0.1", port))
            try:
                reply, _ = sock.recvfrom(100)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no UDP reply through the published port")
    assert reply == b"echo:ping"
    assert b"got ping" in server.logs()


def test_port_conflict_and_release(client: docker.DockerClient, cleanup: list[str]) -> None:
    first = client.containers.run(
        "busybox", ["sleep", "60"], detach=True, ports={"80/tcp": ("127.0.0.1", None)}
    )
    cleanup.append(first.id)
    first.reload()
    port = int(first.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    second = client.containers.create(
        "busybox", ["sleep", "60"], ports={"80/tcp": ("127.0.0.1", port)}
    )
    cleanup.append(second.id)
    with pytest.raises(docker.errors.APIError) as info:
        second.start()
    assert "port is already allocated" in str(info.value)
    second.reload()
    assert second.status == "created"
    first.remove(force=True)
    cleanup.remove(first.id)
    second.start()  # the port is free again
    second.reload()
    assert second.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)
    second.remove(force=True)
    cleanup.remove(second.id)
    with socket.socket() as sock:  # and released back to the host once removed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_publish_all_exposed_ports(client: docker.DockerClient, cleanup: list[str]) -> None:
    cid = client.api.create_container(
        "busybox",
        ["sleep", "60"],
        ports=[8080, (53, "udp")],
        host_config=client.api.create_host_config(publish_all_ports=True),
    )["Id"]
    cleanup.append(cid)
    client.api.start(cid)
    ports = client.api.inspect_container(cid)["NetworkSettings"]["Ports"]
    assert set(ports) == {"8080/tcp", "53/udp"}
    for bindings in ports.values():
        assert int(bindings[0]["HostPort"]) >= 32768


def test_outbound_nat(client: docker.DockerClient, outside: tuple[str, str, str]) -> None:
    ns, peer_ip, host_ip = outside
    listener = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "python3",
            "-c",
            "import socket; s=socket.socket();"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
            f"s.bind(('{peer_ip}', 7000)); s.listen(1); print('ready', flush=True);"
            "c, a = s.accept(); print(a[0], flush=True);"
            "c.sendall(b'hello from outside\\n'); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"  # listening: no race
        out = client.containers.run(
            "busybox", ["sh", "-c", f"nc {peer_ip} 7000 </dev/null"], remove=True
        )
        assert out == b"hello from outside\n"
        seen = listener.communicate(timeout=10)[0].strip()
        assert seen == host_ip  # the container's traffic left masqueraded as the host
    finally:
        listener.kill()


def test_published_port_reachable_from_outside(
    client: docker.DockerClient, cleanup: list[str], outside: tuple[str, str, str]
) -> None:
    ns, _peer_ip, host_ip = outside
    server = client.containers.run(
        "busybox", ["httpd", "-f", "-p", "80", "-h", "/etc"], detach=True, ports={"80/tcp": None}
    )
    cleanup.append(server.id)
    server.reload()
    port = server.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    # The published port answers from outside, on the host's address.
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "python3",
            "-c",
            "import urllib.request,sys;"
            f"urllib.request.urlopen('http://{host_ip}:{port}/hostname', timeout=5)"
            ".read(); print('ok')",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr
