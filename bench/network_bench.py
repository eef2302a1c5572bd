"""Security groups and public IPs: what an endpoint costs the kernel, container starts with
many members in their group, and binding a public IP (issue 5, item 8).

    .venv/bin/python bench/network_bench.py [--sizes 10,1000,20000] [--adds 50]
        [--members 10,1000] [--synthetic 20000] [--starts 20] [--binds 20] [--no-cloud]

- **endpoint add** (the nft work of attaching one endpoint with its security-group
  elements) with N endpoints already in one group in one router. The endpoints are
  synthetic: a real router namespace (``create_router``) and its table, and for each
  endpoint exactly what ``HostNetwork`` does for it (``RouterIngress.change``, then one
  ``Router.replace_elements`` transaction, then commit), without veths or a process. The
  group's rules: tcp 80-443 from 0.0.0.0/0, tcp 22 from the group itself, icmp from
  10.0.0.0/8. Timed: ``--adds`` adds at each size (median, p90), and as many removals.
  **Baseline**, same run, in a namespace of its own: each endpoint's rules as its own
  elements of concatenated interval sets keyed by its address (the layout ADR 0016 first
  sketched), the same two elements per endpoint.
- **container start** with the stock docker CLI (``docker run -d --label
  dockyard.security-groups=bench -m 12m busybox sleep``) when the group has ``--members``
  running containers (real ones of 12 MiB, started through the Engine API), median of
  ``--starts``; the same command without the label (the ``default`` group) in the same
  state as the baseline. ``--synthetic`` adds elements for that many members straight
  into the router's maps (with the group's tags) when real containers would not fit the
  machine (20,000 would need more memory than the build hosts' 24 GiB), and measures
  once more.
- **bind**: ``POST /v1/ips/{address}/bind`` to a running container with an allowing rule,
  until a TCP connection from a public namespace (a veth pair on 198.18.0.0/15 routing the
  pool to the host) to the address succeeds; median of ``--binds`` rounds (each unbinds
  first). The API call's own duration is reported too.

Nothing here is a test; compare numbers from one run only (the machines are shared).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dockyard.wire  # noqa: F401  (before anything imports aiohttp)
from dockyard.client.native import NativeClient
from dockyard.core.protocol import IngressRule
from dockyard.network.ingress import ContainerIngress, EndpointIngress, compile_profile
from dockyard.network.names import router_prefix, uplink_name
from dockyard.network.netns import (
    NETNS_RUN_DIR,
    create_named_netns,
    named_netns,
    remove_named_netns,
    socket_in_named_netns,
)
from dockyard.network.nft import Nft
from dockyard.network.router import Router, create_router, remove_router
from dockyard.network.rtnl import Rtnl
from dockyard.testing.cloud import TestCloud

DOCKER = "docker"
MEMBER_MEMORY = "12m"  # the default size reserves 256 MiB: 1,000 of those would not fit
GROUP = "b" * 64  # the synthetic group's id
RULES = (
    IngressRule("tcp", 80, 443, source="0.0.0.0/0"),
    IngressRule("tcp", 22, 22, source_group=GROUP),
    IngressRule("icmp", source="10.0.0.0/8"),
)
BASELINE = """add table inet baseline
delete table inet baseline
table inet baseline {
  set per_endpoint { type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval; }
  set per_endpoint_icmp { type ipv4_addr . inet_proto . ipv4_addr; flags interval; }
}
"""


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[max(int(len(ordered) * 0.9) - 1, 0)], 3),
        "min_ms": round(ordered[0], 3),
    }


def machine() -> str:
    cpus = os.cpu_count()
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1 << 20)
    return f"{platform.node()}: {cpus} CPUs, {mem} GiB, kernel {platform.release()}"


# endpoint adds on a synthetic router ------------------------------------------------------


def address(n: int) -> str:
    return str(ipaddress.IPv4Address("10.0.0.0") + 2 + n)


def owner(n: int) -> str:
    return f"{n:064x}"


@contextlib.contextmanager
def bench_router() -> Iterator[Router]:
    name = f"dyk-dyb{secrets.token_hex(3)}-bench"
    path = named_netns(name, run_dir=NETNS_RUN_DIR)
    transit = f"100.{secrets.randbelow(64) + 64}.{secrets.randbelow(256)}.0/24"
    with Rtnl() as root:
        router = create_router(
            name=name, path=path, uplink=uplink_name(name), transit=transit, root=root
        )
    try:
        yield router
    finally:
        router.close()
        remove_router(path, uplink_name(name))


@contextlib.contextmanager
def baseline_nft() -> Iterator[Nft]:
    """An nft context in a namespace of its own, for the baseline's table."""
    path = named_netns(f"dyb-base-{secrets.token_hex(3)}", run_dir=NETNS_RUN_DIR)
    nft = create_named_netns(path, Nft)
    try:
        yield nft
    finally:
        nft.close()
        remove_named_netns(path)


def endpoint_adds(sizes: list[int], adds: int) -> dict[str, Any]:
    profile = compile_profile(RULES)
    empty = ContainerIngress()

    def state(n: int) -> ContainerIngress:
        return ContainerIngress(endpoints=(EndpointIngress(address(n), (GROUP,), profile),))

    def baseline_elements(n: int) -> str:
        ip = address(n)
        return (
            f"add element inet baseline per_endpoint {{ {ip} . tcp . 80-443 . 0.0.0.0/0 }}\n"
            f"add element inet baseline per_endpoint_icmp {{ {ip} . icmp . 10.0.0.0/8 }}\n"
        )

    results: dict[str, Any] = {"rules": [str(r) for r in RULES], "sizes": {}}
    with bench_router() as router, baseline_nft() as base:
        base.cmd(BASELINE)
        count = 0
        for size in sizes:
            while count < size:  # fill, many endpoints per transaction
                batch: list[Any] = []
                baseline = []
                for n in range(count, min(size, count + 1000)):
                    change = router.ingress.change(owner=owner(n), old=empty, new=state(n))
                    batch += change.add
                    change.commit()
                    baseline.append(baseline_elements(n))
                router.add_elements(batch)
                base.cmd("".join(baseline))
                count = min(size, count + 1000)
            # Each series on its own (the baseline's big set clones in between would
            # leave our operations with cold caches).
            added, kernel, removed, base_added = [], [], [], []
            for n in range(count, count + adds):
                started = time.perf_counter()
                change = router.ingress.change(owner=owner(n), old=empty, new=state(n))
                sent = time.perf_counter()
                router.replace_elements(change.delete, change.add)
                kernel.append((time.perf_counter() - sent) * 1000)
                change.commit()
                added.append((time.perf_counter() - started) * 1000)
            for n in range(count, count + adds):
                started = time.perf_counter()
                change = router.ingress.change(owner=owner(n), old=state(n), new=empty)
                router.replace_elements(change.delete, change.add)
                change.commit()
                removed.append((time.perf_counter() - started) * 1000)
            for n in range(count, count + adds):
                started = time.perf_counter()
                base.cmd(baseline_elements(n))
                base_added.append((time.perf_counter() - started) * 1000)
            for n in range(count, count + adds):
                base.cmd(baseline_elements(n).replace("add element", "delete element"))
            per = {
                "add": summary(added),
                "add_nft_only": summary(kernel),
                "remove": summary(removed),
                "baseline_add": summary(base_added),
                "elements_per_add": len(state(count).endpoints[0].groups) + 1,
            }
            results["sizes"][str(size)] = per
            print(f"endpoints {size}: {json.dumps(per)}", flush=True)
    return results


# the cloud: starts with members, binding ---------------------------------------------------


def docker_run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [DOCKER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def timed_starts(env: dict[str, str], starts: int) -> dict[str, dict[str, float]]:
    """``starts`` runs into the group and as many into the default group, alternating
    (so that neither series gets the quieter moments); each container is removed before
    the next run (untimed): a Linux bridge takes at most 1,024 ports, and the members
    already fill the tenant's ``default`` network up to 1,000."""
    times: dict[str, list[float]] = {"in_the_group": [], "default_group": []}
    for _ in range(starts):
        for series, extra in (
            ("in_the_group", ["--label", "dockyard.security-groups=bench"]),
            ("default_group", []),
        ):
            started = time.perf_counter()
            made = docker_run(
                env, "run", "-d", "-m", MEMBER_MEMORY, *extra, "busybox", "sleep", "600"
            )
            times[series].append((time.perf_counter() - started) * 1000)
            docker_run(env, "rm", "-f", made)
    return {series: summary(found) for series, found in times.items()}


def the_router(cloud: TestCloud) -> str:
    prefix = router_prefix(cloud.instance)
    (name,) = [n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix)]
    return name


def nft_in(router: str, text: str) -> str:
    command = ["ip", "netns", "exec", router, "nft", *(["-f", "-"] if text else [])]
    return subprocess.run(command, input=text, capture_output=True, text=True, check=True).stdout


def synthetic_members(cloud: TestCloud, group_id: str, count: int, *, remove: bool) -> None:
    """Add (or remove) ``count`` members of the group straight to the router's maps: an
    sg_profile and an sg_members element each, with the tags the agent handed out."""
    router = the_router(cloud)
    listing = json.loads(
        subprocess.run(
            ["ip", "netns", "exec", router, "nft", "-j", "list", "table", "inet", "dockyard"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    tags: dict[str, int] = {}
    profile_tag = 0
    for item in listing["nftables"]:
        found = item.get("set") or item.get("map") or {}
        for elem in found.get("elem", []):
            if found.get("name") == "sg_tags":
                tags[elem["elem"]["comment"]] = elem["elem"]["val"]
            if found.get("name") == "sg_profile":
                profile_tag = elem[1]
    group_tag = tags[f"g:{group_id}"]
    verb = "delete" if remove else "add"
    base = ipaddress.IPv4Address("10.250.0.0")
    for start in range(0, count, 2000):
        lines = []
        for n in range(start, min(count, start + 2000)):
            ip = base + n
            profile, member = f"sg_profile {{ {ip}", f"sg_members {{ {ip} . 0"
            if not remove:
                profile += f' comment "synthetic" : {profile_tag}'
                member += f' comment "synthetic" : {group_tag}'
            lines.append(f"{verb} element inet dockyard {profile} }}")
            lines.append(f"{verb} element inet dockyard {member} }}")
        nft_in(router, "\n".join(lines) + "\n")


@contextlib.contextmanager
def public_side(cloud: TestCloud) -> Iterator[tuple[str, str]]:
    """A namespace on a veth pair with 198.18.N.0/30 routing 198.18.N.8/29 (the pool,
    added to the cloud) to the host, which has the pool unreachable. Yields (namespace,
    pool)."""
    tag = secrets.token_hex(3)
    ns, host_if, peer_if = f"dyb-out-{tag}", f"dybo{tag}", f"dybp{tag}"
    third = secrets.randbelow(250)
    host_ip, peer_ip, pool = f"198.18.{third}.1", f"198.18.{third}.2", f"198.18.{third}.8/29"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        run("ip", "link", "set", peer_if, "netns", ns)
        run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "-n", ns, "addr", "add", f"{peer_ip}/30", "dev", peer_if)
        run("ip", "-n", ns, "link", "set", peer_if, "up")
        run("ip", "-n", ns, "route", "add", pool, "via", host_ip)
        run("ip", "route", "add", "unreachable", pool)
        cloud.admin().add_ip_pool(pool)
        yield ns, pool
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", pool], check=False)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def connects(ns: str, target: str, port: int) -> bool:
    sock = socket_in_named_netns(
        NETNS_RUN_DIR / ns, family=socket.AF_INET, kind=socket.SOCK_STREAM, proto=0
    )
    with sock:
        sock.settimeout(0.2)
        try:
            sock.connect((target, port))
        except OSError:
            return False
        return True


def bind_latency(cloud: TestCloud, api: NativeClient, binds: int) -> dict[str, Any]:
    env = cloud.env()
    with public_side(cloud) as (ns, pool):
        container = docker_run(
            env, "run", "-d", "--expose", "8080", "--label", "dockyard.security-groups=bench",
            "busybox", "sh", "-c", "echo hi > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        )  # fmt: skip
        target = api.request_ip()["address"]
        calls, flowing = [], []
        try:
            for _ in range(binds):
                api.unbind_ip(target)
                if connects(ns, target, 8080):
                    raise RuntimeError(f"{target} answers while unbound")
                started = time.perf_counter()
                api.bind_ip(target, container)
                calls.append((time.perf_counter() - started) * 1000)
                deadline = started + 10
                while not connects(ns, target, 8080):
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"{target} does not answer 10 s after binding")
                    time.sleep(0.001)
                flowing.append((time.perf_counter() - started) * 1000)
        finally:
            docker_run(env, "rm", "-f", container)
            api.release_ip(target)
            cloud.admin().remove_ip_pool(pool)
    return {"api_call": summary(calls), "until_traffic": summary(flowing)}


def cloud_benches(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"starts": {}}
    cloud = TestCloud.launch(work / "dockyard")
    try:
        env = cloud.env()
        api = NativeClient(cloud.docker_host, cloud.token)
        group = api.create_security_group("bench")
        api.add_security_group_rule("bench", protocol="tcp", port_min=8080, source="0.0.0.0/0")
        api.add_security_group_rule("bench", protocol="all", source_group="bench")
        client = cloud.client()
        members = 0
        timed_starts(env, 2)  # warm-up
        for target in args.members:
            while members < target:
                made = client.api.create_container(
                    "busybox",
                    ["sleep", "3600"],
                    labels={"dockyard.security-groups": "bench"},
                    host_config=client.api.create_host_config(mem_limit=MEMBER_MEMORY),
                )
                client.api.start(made["Id"])
                members += 1
            results["starts"][str(target)] = timed_starts(env, args.starts)
            print(f"members {target}: {json.dumps(results['starts'][str(target)])}", flush=True)
        if args.synthetic > members:
            synthetic_members(cloud, group["id"], args.synthetic - members, remove=False)
            key = f"{args.synthetic} ({members} real)"
            results["starts"][key] = timed_starts(env, args.starts)
            print(f"members {key}: {json.dumps(results['starts'][key])}", flush=True)
            synthetic_members(cloud, group["id"], args.synthetic - members, remove=True)
        results["bind"] = bind_latency(cloud, api, args.binds)
        print(f"bind: {json.dumps(results['bind'])}", flush=True)
        ids = [c["Id"] for c in client.api.containers(all=True)]
        for start in range(0, len(ids), 100):
            docker_run(env, "rm", "-f", *ids[start : start + 100])
        client.close()
    finally:
        cloud.purge()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    numbers = lambda text: [int(n) for n in text.split(",") if n]  # noqa: E731
    parser.add_argument("--sizes", type=numbers, default=[10, 1000, 20000])
    parser.add_argument("--adds", type=int, default=50)
    parser.add_argument("--members", type=numbers, default=[10, 1000])
    parser.add_argument("--synthetic", type=int, default=20000)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--binds", type=int, default=20)
    parser.add_argument("--no-cloud", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine()}
    results["endpoint_add"] = endpoint_adds(sorted(args.sizes), args.adds)
    if not args.no_cloud:
        with tempfile.TemporaryDirectory(prefix="dybench-net-") as tmp:
            results["cloud"] = cloud_benches(args, Path(tmp))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
