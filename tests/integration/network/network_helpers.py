"""Helpers for network tests on the real kernel (root): fake containers, servers, names.

A fake container is a process alone in a new network namespace. Every object a test
makes has a random name of its own (instance ``dyt<hex>``, so routers
``dyk-dyt<hex>-*`` and their uplinks, tenant and network ids, outside link ``dyo<hex>``,
transit subnets picked at random in 100.64.0.0/10, outside links in 198.18.0.0/15) and
is removed by a finalizer, also when the test fails. Tenant subnets live only inside
router namespaces, so tests may use any; nothing here touches eth0, the default route
or an nft table the test did not create.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.protocol import EndpointSpec, NetworkSpec, PortMapping
from dockyard.network import HostNetwork
from dockyard.network.names import uplink_name
from dockyard.network.netns import socket_in_netns
from dockyard.network.rules import Element, parse_elements

# A tiny server: answers every TCP connection / UDP datagram with its name and the peer's
# address, so tests see who answered and what source address NAT produced.
SERVER = """
import socket, sys
proto, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host = sys.argv[4] if len(sys.argv) > 4 else "0.0.0.0"
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
if proto == "tcp":
    s.listen(16)
print("ready", flush=True)
while True:
    if proto == "tcp":
        c, addr = s.accept()
        c.sendall(f"{name} {addr[0]}\\n".encode())
        c.close()
    else:
        data, addr = s.recvfrom(2048)
        s.sendto(f"{name} {addr[0]}\\n".encode(), addr)
"""

# Echoes every line of every connection, prefixed with its name and the peer's address,
# for as long as the connection lasts (tests of established connections).
ECHO = """
import socket, sys, threading
port, name = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(16)
print("ready", flush=True)
def serve(c, addr):
    for line in c.makefile("rb"):
        c.sendall(f"{name} {addr[0]} ".encode() + line)
while True:
    c, addr = s.accept()
    threading.Thread(target=serve, args=(c, addr), daemon=True).start()
"""

CLIENT = """
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        s = socket.create_connection((host, port), timeout=float(sys.argv[4]))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(float(sys.argv[4]))
        s.sendto(b"hi", (host, port))
    print(s.recv(100).decode().strip())
except OSError as exc:
    print("ERR", exc)
"""


def run_cmd(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def links() -> set[str]:
    """Names of the host's interfaces."""
    return {link["ifname"] for link in json.loads(run_cmd("ip", "-j", "link").stdout)}


def netns_names() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def nft_tables() -> set[str]:
    return set(run_cmd("nft", "list", "tables").stdout.split())


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free on 0.0.0.0 a moment ago."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def query(proto: str, host: str, port: int, *, timeout: float = 2.0) -> str:
    """From the host: the server's answer (``<name> <peer address>``) or ``ERR ...``."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            if proto == "udp":
                sock.send(b"hi")
            return sock.recv(100).decode().strip()
    except OSError as exc:
        return f"ERR {exc}"


@dataclass
class Netns:
    """A process alone in a new network namespace: a fake container or outside host."""

    pid: int
    holder: subprocess.Popen[bytes]
    name: str = "ns"
    children: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cmd("nsenter", "-t", str(self.pid), "-n", *cmd, check=check)

    def ip_json(self, *args: str) -> Any:
        return json.loads(self.run("ip", "-j", *args).stdout)

    def links(self) -> set[str]:
        return {link["ifname"] for link in self.ip_json("link")}

    def serve(self, proto: str, port: int, *, host: str = "0.0.0.0") -> None:
        """Start :data:`SERVER` in this netns and wait until it listens."""
        cmd = [sys.executable, "-I", "-S", "-c", SERVER, proto, str(port), self.name, host]
        proc = subprocess.Popen(
            ["nsenter", "-t", str(self.pid), "-n", *cmd], stdout=subprocess.PIPE, text=True
        )
        self.children.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    def echo(self, port: int) -> None:
        """Start :data:`ECHO` on ``port`` in this netns and wait until it listens."""
        cmd = [sys.executable, "-I", "-S", "-c", ECHO, str(port), self.name]
        proc = subprocess.Popen(
            ["nsenter", "-t", str(self.pid), "-n", *cmd], stdout=subprocess.PIPE, text=True
        )
        self.children.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    def connect(self, host: str, port: int, *, timeout: float = 2.0) -> socket.socket:
        """A TCP connection made from inside this netns (the socket lives there), for
        the test itself to talk over."""
        sock = socket_in_netns(self.pid, family=socket.AF_INET, kind=socket.SOCK_STREAM, proto=0)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def query(self, proto: str, host: str, port: int, *, timeout: float = 2.0) -> str:
        """From inside this netns: like :func:`query`."""
        cmd = [sys.executable, "-I", "-S", "-c", CLIENT, proto, host, str(port), str(timeout)]
        return self.run(*cmd).stdout.strip()

    def ping(self, address: str) -> bool:
        result = self.run("busybox", "ping", "-c", "1", "-W", "1", address, check=False)
        return result.returncode == 0

    def kill(self) -> None:
        for proc in self.children:
            proc.kill()
            proc.wait()
        self.children.clear()
        self.holder.kill()  # --kill-child: the kernel SIGKILLs the namespace's process
        self.holder.wait()
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{self.pid}/ns/net") and time.monotonic() < deadline:
            time.sleep(0.005)


def spawn_netns(name: str = "ns") -> Netns:
    holder = subprocess.Popen(["unshare", "--net", "--fork", "--kill-child", "sleep", "600"])
    children = f"/proc/{holder.pid}/task/{holder.pid}/children"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(children) as f:
            pids = f.read().split()
        if pids and os.readlink(f"/proc/{pids[0]}/ns/net") != os.readlink("/proc/self/ns/net"):
            return Netns(int(pids[0]), holder, name)
        time.sleep(0.01)
    holder.kill()
    holder.wait()
    raise AssertionError("unshare did not start")


def new_id() -> str:
    return secrets.token_hex(32)


@dataclass
class Net:
    """A tenant network: its ids and the addresses handed out on it."""

    tenant: str
    subnet: ipaddress.IPv4Network
    internal: bool = False
    isolated: bool = False
    network_id: str = field(default_factory=new_id)
    next_host: int = 2

    @property
    def bridge(self) -> str:
        return "br-" + self.network_id[:12]

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def endpoint(self, interface: str = "eth0", *, ip: str = "") -> EndpointSpec:
        if not ip:
            ip = str(self.subnet.network_address + self.next_host)
            self.next_host += 1
        return EndpointSpec(
            endpoint_id=new_id(),
            network_id=self.network_id,
            bridge=self.bridge,
            subnet=str(self.subnet),
            gateway=self.gateway,
            ip=ip,
            interface=interface,
            internal=self.internal,
            isolated=self.isolated,
        )

    def spec(self, *ports: PortMapping) -> NetworkSpec:
        """A spec with one endpoint on this network."""
        return NetworkSpec(
            mode="tenant", router=self.tenant, endpoints=(self.endpoint(),), ports=ports
        )


def tenant_spec(
    tenant: str, *endpoints: EndpointSpec, ports: tuple[PortMapping, ...] = ()
) -> NetworkSpec:
    return NetworkSpec(mode="tenant", router=tenant, endpoints=endpoints, ports=ports)


def ip_of(spec: NetworkSpec, index: int = 0) -> str:
    return spec.endpoints[index].ip


@dataclass
class Outside:
    """An outside host: a netns reached from the host over its own veth pair."""

    ns: Netns
    link: str
    host_ip: str  # the host's address on the link
    ip: str  # the outside host's address

    @property
    def prefix(self) -> str:
        """The link's /30, where the outside host's address is."""
        return str(ipaddress.ip_network(f"{self.ip}/30", strict=False))


def exchange(sock: socket.socket, line: str) -> str:
    """Send ``line`` over an echo connection and read the answer ("" if the connection
    is cut: reset, closed or silent)."""
    try:
        sock.sendall(line.encode() + b"\n")
        return sock.recv(200).decode().strip()
    except OSError:
        return ""


def router_elements(host: HostNetwork, tenant: str) -> list[Element]:
    """The elements of tenant's router table."""
    listing = router_exec(host, tenant, "nft", "-j", "list", "table", "inet", "dockyard")
    return parse_elements(json.loads(listing))


def root_elements(host: HostNetwork) -> list[Element]:
    """The elements of the root table ([] when there is none)."""
    listing = run_cmd("nft", "-j", "list", "table", "inet", host.table, check=False)
    return parse_elements(json.loads(listing.stdout)) if listing.returncode == 0 else []


def host_routes(pool: ipaddress.IPv4Network) -> list[str]:
    """Routes of the host's main table to addresses of ``pool`` (other than the pool)."""
    routes = json.loads(run_cmd("ip", "-j", "-4", "route", "show", "table", "main").stdout)
    return [
        r["dst"]
        for r in routes
        if r["dst"] != "default"
        and ipaddress.ip_network(r["dst"], strict=False).subnet_of(pool)
        and r["dst"] != str(pool)
    ]


def router_exec(host: HostNetwork, tenant: str, *cmd: str) -> str:
    """Run ``cmd`` inside tenant's router namespace; its output."""
    return run_cmd("ip", "netns", "exec", host.router_name(tenant), *cmd).stdout


def router_links(host: HostNetwork, tenant: str) -> dict[str, Any]:
    found = json.loads(router_exec(host, tenant, "ip", "-j", "-d", "link"))
    return {link["ifname"]: link for link in found}


def uplink_address(host: HostNetwork, tenant: str) -> str:
    """The root side address of tenant's uplink (what masquerade into it produces)."""
    (link,) = json.loads(
        run_cmd("ip", "-j", "addr", "show", "dev", uplink_name(host.router_name(tenant))).stdout
    )
    return str(next(a["local"] for a in link["addr_info"] if a["family"] == "inet"))


def router_address(host: HostNetwork, tenant: str) -> str:
    return str(ipaddress.IPv4Address(uplink_address(host, tenant)) + 1)


def _used_routes() -> list[ipaddress.IPv4Network]:
    routes = json.loads(run_cmd("ip", "-j", "-4", "route", "show", "table", "all").stdout)
    nets = []
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default" and dst[0].isdigit():
            nets.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def random_subnet(space: str, prefix: int) -> ipaddress.IPv4Network:
    """A random subnet of ``space`` that overlaps no route on this host."""
    parent = ipaddress.ip_network(space)
    used = _used_routes()
    for _ in range(100):
        count = 2 ** (prefix - parent.prefixlen)
        offset = random.randrange(count) * 2 ** (32 - prefix)
        candidate = ipaddress.ip_network(f"{parent.network_address + offset}/{prefix}")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise AssertionError(f"no free /{prefix} in {space}")
