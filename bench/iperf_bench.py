"""TCP throughput between two containers on one tenant network, against its references.

    .venv/bin/python bench/iperf_bench.py [--runs 5] [--seconds 5] [--streams 1 4]

Measured with iperf3 (Debian's, installed with apt-get if missing) in one run, each
setup once per round, rounds interleaved (and the order rotated each round) so that the
shared machine's noise spreads over all setups alike:

- ``loopback``: server and client on 127.0.0.1 in the host's namespace.
- ``veth``: two plain network namespaces joined by one veth pair, made for the run and
  removed after it (named ``dyipf<hex>``, addresses inside them only). The reference:
  the least a container's packet can cross.
- ``bridge``: the same two namespaces joined through a Linux bridge in a third (a veth
  each), with no nftables and br_netfilter off there: the devices a tenant network
  uses, nothing else.
- ``dockyard``: two containers of a fresh Dockyard test instance (the one bench/run.py
  starts) on the tenant's default network, through the real stack: veth -> bridge in
  the tenant's router namespace -> veth, with the router's nft forward chain.
- ``published``: the host to the server container's published port (``-p``) on
  127.0.0.1: the root table's DNAT into the router's uplink, the router's DNAT to the
  container.
- ``dockyard-brnf`` (only with ``--setups``): ``dockyard`` with br_netfilter back on in
  the router for each of its runs, as routers had it before: a before/after in one run.

The containers run an image made here from the host's iperf3 and the shared libraries
``ldd`` lists (``docker import`` of a tar we write: nothing comes from a registry).
Each run first waits (``--patience`` seconds at most) until others use at most
``--quiet`` of the CPUs, and records what they used.
The reference processes (loopback, veth, bridge, the published port's client) run in a
cpu cgroup of their own at the top of the hierarchy, as each Dockyard instance's cgroup
is, so that load from others weighs on both sides alike (see :class:`CpuGroup`).

Reported per setup and stream count: the median receiver throughput of ``--runs`` runs
of ``--seconds`` seconds (after ``--omit`` seconds of slow start), the machine's busy
CPU time per GB sent (``docker exec`` included for ``dockyard``), sender retransmits,
and each setup's share of ``veth`` and of ``loopback``; ``dockyard``'s share of
``veth`` is the one with a target (at least 0.9). Everything the run
made (namespaces, veths, servers, the test instance) is removed also on failure or
SIGTERM. Nothing is timed inside tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dockyard.wire  # noqa: F401  (before anything imports aiohttp)
from dockyard.network.names import router_prefix
from dockyard.testing.cloud import TestCloud

DOCKER = shutil.which("docker") or "docker"
IMAGE = "dybench/iperf3:latest"
PORT = 5201
# RFC 2544's benchmarking range; only ever inside the namespaces of the veth and bridge
# setups.
VETH_SERVER, VETH_CLIENT = "198.18.0.1", "198.18.0.2"

SETUPS = ("loopback", "veth", "bridge", "dockyard", "published")
ABLATIONS = ("dockyard-brnf",)
"""Setups run only when asked for: ``dockyard-brnf`` is ``dockyard`` with br_netfilter
turned back on in the router for each of its runs (the layout before routers turned it
off: bridged frames through conntrack and the forward chain), for a before/after in one
run."""
Client = Callable[[list[str]], dict[str, Any]]
"""Runs ``iperf3 <args>`` as a client of one setup's server; returns its JSON report."""


def sh(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


# iperf3 ----------------------------------------------------------------------------------


def ensure_iperf3() -> str:
    """The path of iperf3, installing Debian's package if it is missing (as
    scripts/setup-host.sh installs packages), without letting it start its daemon."""
    found = shutil.which("iperf3")
    if found:
        return found
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", "iperf3", env=env)
    finally:
        if created:
            policy.unlink()
    found = shutil.which("iperf3")
    if not found:
        raise RuntimeError("apt-get installed iperf3 but it is not on PATH")
    return found


def iperf_json(output: str, what: str) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(output)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{what}: iperf3 printed no JSON: {output[-500:]!r}") from exc
    if "error" in report:
        raise RuntimeError(f"{what}: iperf3: {report['error']}")
    return report


class CpuGroup:
    """A cpu cgroup for the reference processes (loopback, veth, the published port's
    client), at the top of the hierarchy with the default weight, as each Dockyard
    instance's is: when others load the machine, the two containers (one tenant's
    cgroup inside the instance's) and the two reference processes then compete for CPU
    as one group each, and the comparison stays about the network path."""

    def __init__(self) -> None:
        name = "dybench-iperf-" + secrets.token_hex(3)
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.shares").exists():
            self.path: Path | None = v1 / name
        elif (v2 / "cgroup.controllers").exists():
            self.path = v2 / name
        else:
            self.path = None
        if self.path is not None:
            self.path.mkdir()

    def enter(self) -> None:
        """Move the calling process into the group (a ``preexec_fn``)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        if self.path is None:
            return
        for _ in range(50):  # killed members leave the group a moment after wait()
            try:
                self.path.rmdir()
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
            else:
                return


@contextlib.contextmanager
def cpu_group() -> Iterator[CpuGroup]:
    group = CpuGroup()
    try:
        yield group
    finally:
        group.remove()


def run_client(
    command: list[str],
    what: str,
    *,
    env: dict[str, str] | None = None,
    group: CpuGroup | None = None,
    retries: int = 5,
) -> dict[str, Any]:
    """Run an iperf3 client command (in ``group``); retry while the server is still busy
    with the last test (it answers "the server is busy" until it has torn that down)."""
    for attempt in range(retries):
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
            preexec_fn=group.enter if group else None,
        )
        try:
            return iperf_json(result.stdout, what)
        except RuntimeError as exc:
            if "busy" not in str(exc) or attempt == retries - 1:
                raise RuntimeError(f"{exc} (stderr: {result.stderr.strip()[-300:]})") from None
            time.sleep(0.5)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def server(command: list[str], what: str, group: CpuGroup) -> Iterator[None]:
    """An ``iperf3 -s`` process (in ``group``) for the duration of the block; killed
    after it."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=group.enter,  # noqa: PLW1509  (no threads here)
    )
    try:
        time.sleep(0.3)
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: iperf3 server exited: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        yield
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# setups ----------------------------------------------------------------------------------


@contextlib.contextmanager
def loopback(iperf3: str, group: CpuGroup) -> Iterator[Client]:
    port = free_port()
    with server([iperf3, "-s", "-B", "127.0.0.1", "-p", str(port)], "loopback", group):
        yield lambda args: run_client(
            [iperf3, "-c", "127.0.0.1", "-p", str(port), *args], "loopback", group=group
        )


@contextlib.contextmanager
def namespaces(iperf3: str, group: CpuGroup, *, bridged: bool) -> Iterator[Client]:
    """Two namespaces (server, client) joined by one veth pair, or (``bridged``) by a
    veth each to a Linux bridge in a third namespace, the devices a tenant network uses,
    with br_netfilter off there. Nothing else: no nftables, so the kernel registers no
    conntrack hooks. Named ``dyipf<hex>...``; deleting the namespaces deletes the rest."""
    tag = "dyipf" + secrets.token_hex(3)
    ns_server, ns_client, ns_bridge = tag + "s", tag + "c", tag + "b"
    made: list[str] = []
    try:
        for ns in (ns_server, ns_client, ns_bridge) if bridged else (ns_server, ns_client):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        if bridged:
            bridge = tag + "br"
            sh("ip", "-n", ns_bridge, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", ns_bridge, "link", "set", bridge, "up")
            with contextlib.suppress(RuntimeError):  # no br_netfilter on this kernel
                sh("ip", "netns", "exec", ns_bridge, "sysctl", "-qw",
                   "net.bridge.bridge-nf-call-iptables=0")  # fmt: skip
            for ns, dev in ((ns_server, tag + "s"), (ns_client, tag + "c")):
                sh(
                    "ip", "-n", ns_bridge, "link", "add", dev + "p", "master", bridge,
                    "type", "veth", "peer", "name", dev, "netns", ns,
                )  # fmt: skip
                sh("ip", "-n", ns_bridge, "link", "set", dev + "p", "up")
        else:
            sh(
                "ip", "link", "add", tag + "s", "netns", ns_server,
                "type", "veth", "peer", "name", tag + "c", "netns", ns_client,
            )  # fmt: skip
        for ns, dev, addr in (
            (ns_server, tag + "s", VETH_SERVER),
            (ns_client, tag + "c", VETH_CLIENT),
        ):
            sh("ip", "-n", ns, "addr", "add", addr + "/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        what = "bridge" if bridged else "veth"
        serve = ["ip", "netns", "exec", ns_server, iperf3, "-s", "-B", VETH_SERVER]
        with server(serve, what, group):
            yield lambda args: run_client(
                ["ip", "netns", "exec", ns_client, iperf3, "-c", VETH_SERVER, *args],
                what,
                group=group,
            )
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def build_image(iperf3: str, work: Path) -> Path:
    """A tar holding iperf3 and the shared libraries ``ldd`` lists, at their paths, and
    a /tmp (iperf3 makes a temporary file per stream)."""
    libs = []
    for line in sh("ldd", iperf3).splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(parts[2])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])  # the dynamic loader
    archive = work / "iperf3-image.tar"
    with tarfile.open(archive, "w", dereference=True) as tar:
        made: set[str] = set()
        for path in ["/usr/bin/iperf3", *libs]:
            parents = Path(path).parents
            for parent in reversed(parents[:-1]):  # every directory, outermost first
                name = str(parent).lstrip("/")
                if name not in made:
                    info = tarfile.TarInfo(name)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    made.add(name)
            source = iperf3 if path == "/usr/bin/iperf3" else path
            tar.add(source, arcname=path.lstrip("/"))
        info = tarfile.TarInfo("tmp")
        info.type, info.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(info)
    return archive


@dataclass
class Dockyard:
    """The two containers on a test instance: ``server`` (iperf3 -s, port published)
    and ``client`` (iperf3 -s too, so it stays up; clients run in it by ``docker exec``)."""

    cloud: TestCloud
    env: dict[str, str] = field(init=False)
    server_ip: str = ""
    host_port: int = 0

    def __post_init__(self) -> None:
        self.env = self.cloud.env()

    def docker(self, *args: str, timeout: float = 120) -> str:
        return sh(DOCKER, *args, env=self.env, timeout=timeout)

    def start(self, archive: Path) -> None:
        self.docker("import", str(archive), IMAGE)
        cmd = ["/usr/bin/iperf3", "-s"]
        self.docker("run", "-d", "--name", "ipsrv", "-p", str(PORT), IMAGE, *cmd)
        self.docker("run", "-d", "--name", "ipcli", IMAGE, *cmd)
        info = json.loads(self.docker("inspect", "ipsrv"))[0]
        networks = info["NetworkSettings"]["Networks"]
        self.server_ip = next(iter(networks.values()))["IPAddress"]
        self.host_port = int(info["NetworkSettings"]["Ports"][f"{PORT}/tcp"][0]["HostPort"])
        time.sleep(0.5)

    def container_client(self) -> Client:
        def client(args: list[str]) -> dict[str, Any]:
            command = [DOCKER, "exec", "ipcli", "/usr/bin/iperf3", "-c", self.server_ip, *args]
            return run_client(command, "dockyard", env=self.env)

        return client

    def router(self) -> str:
        """The name of the tenant's router namespace (the containers' one)."""
        prefix = router_prefix(self.cloud.instance)
        (name,) = [p.name for p in Path("/run/netns").iterdir() if p.name.startswith(prefix)]
        return name

    def router_br_netfilter(self) -> str:
        """The router's ``bridge-nf-call-iptables`` as the agent left it ("" if the
        kernel has no br_netfilter): which layout this run measures."""
        path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
        result = subprocess.run(
            ["ip", "netns", "exec", self.router(), "cat", path],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip()

    def bridged_netfilter_client(self) -> Client:
        """The container client with br_netfilter on in the router during each run, and
        back to what the agent set after it."""
        router, before = self.router(), self.router_br_netfilter()
        inner = self.container_client()

        def switch(value: str) -> None:
            for name in ("iptables", "ip6tables", "arptables"):
                sh("ip", "netns", "exec", router, "sysctl", "-qw",
                   f"net.bridge.bridge-nf-call-{name}={value}")  # fmt: skip

        def client(args: list[str]) -> dict[str, Any]:
            switch("1")
            try:
                return inner(args)
            finally:
                switch(before)

        return client

    def published_client(self, iperf3: str, group: CpuGroup) -> Client:
        def client(args: list[str]) -> dict[str, Any]:
            command = [iperf3, "-c", "127.0.0.1", "-p", str(self.host_port), *args]
            return run_client(command, "published", group=group)

        return client


@contextlib.contextmanager
def dockyard_setup(work: Path, iperf3: str) -> Iterator[Dockyard]:
    cloud = TestCloud.launch(work / "dockyard")
    print(f"dockyard test instance {cloud.instance}", flush=True)
    try:
        setup = Dockyard(cloud)
        setup.start(build_image(iperf3, work))
        yield setup
    finally:
        cloud.purge()
        print(f"dockyard test instance {cloud.instance} purged", flush=True)


# measuring -------------------------------------------------------------------------------


@dataclass
class Sample:
    gbps: float
    retransmits: int
    sender_cpu: float
    receiver_cpu: float
    others_busy: float
    """Share of the machine's CPU time busy in the second before the run, while ours
    was idle: what others were using."""
    cpu_ms_per_gb: float
    """Busy CPU time of the whole machine (user, system, softirq) while the client ran,
    per GB sent (slow-start seconds included on both sides)."""


def sample(report: dict[str, Any], *, others_busy: float, busy_seconds: float) -> Sample:
    end = report["end"]
    cpu = end.get("cpu_utilization_percent", {})
    sent = sum(interval["sum"]["bytes"] for interval in report["intervals"])
    return Sample(
        gbps=end["sum_received"]["bits_per_second"] / 1e9,
        retransmits=int(end["sum_sent"].get("retransmits", 0)),
        sender_cpu=float(cpu.get("host_total", 0.0)),
        receiver_cpu=float(cpu.get("remote_total", 0.0)),
        others_busy=others_busy,
        cpu_ms_per_gb=busy_seconds * 1000 / (sent / 1e9) if sent else 0.0,
    )


def cpu_counters() -> tuple[int, int]:
    """All CPUs' time from /proc/stat in clock ticks: (total, idle or waiting for I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


def busy_share(seconds: float = 1.0) -> float:
    """The share of all CPUs' time spent busy (not idle or waiting for I/O) over the
    next ``seconds``."""
    total0, idle0 = cpu_counters()
    time.sleep(seconds)
    total1, idle1 = cpu_counters()
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total else 0.0


def wait_quiet(threshold: float, patience: float) -> float:
    """Wait (at most ``patience`` seconds) until others use at most ``threshold`` of the
    machine; the share measured last."""
    deadline = time.monotonic() + patience
    busy = busy_share()
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_share()
    return busy


def measure(
    clients: dict[str, Client],
    *,
    runs: int,
    seconds: int,
    omit: int,
    streams: list[int],
    quiet: float,
    patience: float,
) -> dict[tuple[str, int], list[Sample]]:
    """``runs`` rounds; in each, every (setup, streams) once, the order rotated; each run
    waits for the machine to be quiet first (see :func:`wait_quiet`)."""
    keys = [(name, n) for n in streams for name in clients]
    samples: dict[tuple[str, int], list[Sample]] = {key: [] for key in keys}
    for round_ in range(runs):
        shift = round_ % len(keys)
        for name, n in keys[shift:] + keys[:shift]:
            others = wait_quiet(quiet, patience)
            args = ["-J", "-t", str(seconds), "-O", str(omit), "-P", str(n)]
            total0, idle0 = cpu_counters()
            report = clients[name](args)
            total1, idle1 = cpu_counters()
            busy = (total1 - total0 - (idle1 - idle0)) / os.sysconf("SC_CLK_TCK")
            result = sample(report, others_busy=others, busy_seconds=busy)
            samples[(name, n)].append(result)
            print(
                f"round {round_ + 1}/{runs} {name:>13} P{n}: {result.gbps:6.2f} Gbit/s "
                f"retr {result.retransmits:5d}, {result.cpu_ms_per_gb:5.0f} CPU ms/GB, "
                f"others busy {others:4.0%} before",
                flush=True,
            )
    return samples


def summarize(
    samples: dict[tuple[str, int], list[Sample]], streams: list[int]
) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for (name, n), runs in samples.items():
        rates = sorted(s.gbps for s in runs)
        table[f"{name} P{n}"] = {
            "median_gbps": round(statistics.median(rates), 2),
            "min_gbps": round(rates[0], 2),
            "max_gbps": round(rates[-1], 2),
            "retransmits_median": statistics.median(s.retransmits for s in runs),
            "sender_cpu_pct_median": round(statistics.median(s.sender_cpu for s in runs), 1),
            "receiver_cpu_pct_median": round(statistics.median(s.receiver_cpu for s in runs), 1),
            "others_busy_median": round(statistics.median(s.others_busy for s in runs), 2),
            "cpu_ms_per_gb_median": round(statistics.median(s.cpu_ms_per_gb for s in runs)),
        }
    for n in streams:
        veth = table.get(f"veth P{n}", {}).get("median_gbps")
        loop = table.get(f"loopback P{n}", {}).get("median_gbps")
        for name in SETUPS[1:] + ABLATIONS:
            row = table.get(f"{name} P{n}")
            if row is None:
                continue
            if veth and name != "veth":
                row["share_of_veth"] = round(row["median_gbps"] / veth, 3)
            if loop:
                row["share_of_loopback"] = round(row["median_gbps"] / loop, 3)
    return table


def markdown(table: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| setup | streams | median Gbit/s | min-max | share of veth | share of loopback"
        " | CPU ms/GB | retransmits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, row in table.items():
        name, _, n = key.partition(" P")
        lines.append(
            f"| {name} | {n} | {row['median_gbps']:.2f} | {row['min_gbps']:.2f}-"
            f"{row['max_gbps']:.2f} | {row.get('share_of_veth', '')} | "
            f"{row.get('share_of_loopback', '')} | {row['cpu_ms_per_gb_median']} | "
            f"{row['retransmits_median']:g} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpus = os.cpu_count()
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1 << 20)
    return f"{platform.node()}: {cpus} CPUs, {mem} GiB, kernel {platform.release()}"


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every ``finally`` above


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--omit", type=int, default=1, help="seconds of slow start not counted")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS + ABLATIONS)
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.25,
        help="before each run, wait until others use at most this share of the CPUs",
    )
    parser.add_argument(
        "--patience", type=float, default=60, help="seconds to wait for --quiet at most"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    iperf3 = ensure_iperf3()
    version = sh(iperf3, "--version").splitlines()[0]
    results: dict[str, Any] = {
        "machine": machine(),
        "iperf3": version,
        "runs": args.runs,
        "seconds": args.seconds,
        "omit": args.omit,
        "quiet": args.quiet,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    print(results["machine"], version, "load", results["load_before"], flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="dybench-iperf-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        clients: dict[str, Client] = {}
        group = stack.enter_context(cpu_group())
        if "loopback" in args.setups:
            clients["loopback"] = stack.enter_context(loopback(iperf3, group))
        for name in ("veth", "bridge"):
            if name in args.setups:
                setup_ns = namespaces(iperf3, group, bridged=name == "bridge")
                clients[name] = stack.enter_context(setup_ns)
        if {"dockyard", "published", *ABLATIONS} & set(args.setups):
            setup = stack.enter_context(dockyard_setup(Path(tmp), iperf3))
            if "dockyard" in args.setups:
                clients["dockyard"] = setup.container_client()
            if "dockyard-brnf" in args.setups:
                clients["dockyard-brnf"] = setup.bridged_netfilter_client()
            results["router_br_netfilter"] = setup.router_br_netfilter()
            print("router br_netfilter:", results["router_br_netfilter"] or "absent", flush=True)
            if "published" in args.setups:
                clients["published"] = setup.published_client(iperf3, group)
        samples = measure(
            clients,
            runs=args.runs,
            seconds=args.seconds,
            omit=args.omit,
            streams=args.streams,
            quiet=args.quiet,
            patience=args.patience,
        )
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["results"] = summarize(samples, args.streams)
    print(json.dumps(results, indent=2))
    print(markdown(results["results"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
