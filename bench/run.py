"""Dockyard's benchmarks, each against its reference measured in the same run.

    .venv/bin/python bench/run.py [--runs 30] [--idle 200] [--no-docker] [--write]

- run latency: ``docker run --rm busybox true`` (the stock CLI) against Dockyard and
  against a Docker engine (Debian's docker.io) started beside it on its own data root,
  exec root, socket and bridge, with iptables and ip forwarding left alone; raw
  ``crun run`` of the same command is the floor.
- 200 idle containers started one after another (``docker run -d busybox sleep``).
- host memory per idle container: MemAvailable before and after, divided by the count.

``--write`` records the results in docs/benchmarks.md. Nothing is timed inside tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dockyard.wire  # noqa: F401  (before anything imports aiohttp)
from dockyard.testing.cloud import TestCloud

ROOT = Path(__file__).resolve().parents[1]
DOCKER = shutil.which("docker") or "docker"


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable")


def timed_runs(env: dict[str, str], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        subprocess.run(
            [DOCKER, "run", "--rm", "busybox", "true"],
            env=env,
            check=True,
            capture_output=True,
        )
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [DOCKER, "run", "--rm", "busybox", "true"],
            env=env,
            check=True,
            capture_output=True,
        )
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 1),
        "min_ms": round(ordered[0], 1),
    }


# crun floor ---------------------------------------------------------------------------


def crun_floor(runs: int, work: Path) -> list[float]:
    """``crun run`` of busybox ``true`` in a plain bundle: no userns, no network setup."""
    bundle = work / "crun-bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    with contextlib.suppress(FileExistsError):
        (rootfs / "bin" / "true").symlink_to("busybox")
    subprocess.run(["crun", "spec"], cwd=bundle, check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["linux"]["cgroupsPath"] = "/dybench-crun/c"
    (bundle / "config.json").write_text(json.dumps(config))
    state = work / "crun-state"
    times = []
    for index in range(runs + 3):
        started = time.perf_counter()
        subprocess.run(
            ["crun", f"--root={state}", "run", "--bundle", str(bundle), f"floor{index}"],
            check=True,
            capture_output=True,
        )
        if index >= 3:
            times.append((time.perf_counter() - started) * 1000)
    return times


def monitor_floor(count: int, work: Path) -> dict[str, float]:
    """``count`` idle containers through conmon + crun directly (our runtime driver, no
    controller, agent, user namespace or network): the floor for the idle benchmark."""
    import asyncio

    from dockyard.runtime.base import CreateOptions
    from dockyard.runtime.conmon import ConmonRuntime
    from dockyard.runtime.paths import BundlePaths

    rootfs = work / "crun-bundle" / "rootfs"
    base = json.loads((work / "crun-bundle" / "config.json").read_text())
    base["process"]["args"] = ["/bin/busybox", "sleep", "36000"]
    base["root"] = {"path": str(rootfs), "readonly": True}

    async def run() -> float:
        runtime = ConmonRuntime(state_root=work / "floor-state")
        started = time.perf_counter()
        for index in range(count):
            bundle = work / "floor" / f"c{index}"
            bundle.mkdir(parents=True)
            config = dict(base, linux=dict(base["linux"], cgroupsPath=f"/dybench-crun/f{index}"))
            (bundle / "config.json").write_text(json.dumps(config))
            paths = BundlePaths(bundle, bundle, work / "floor-exits")
            await runtime.create(paths, CreateOptions())
            await runtime.start(paths.container_id)
        elapsed = time.perf_counter() - started
        for index in range(count):
            await runtime.delete(f"c{index}", force=True)
        return elapsed

    elapsed = asyncio.run(run())
    return {
        "containers": count,
        "start_all_s": round(elapsed, 2),
        "per_container_ms": round(elapsed / count * 1000, 1),
    }


# the side-by-side Docker engine -------------------------------------------------------


def ensure_docker_engine() -> None:
    if shutil.which("dockerd"):
        return
    # Keep the package's init script from starting a system-wide daemon.
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
            check=True,
            env=env,
            capture_output=True,
        )
    finally:
        if created:
            policy.unlink()


@contextlib.contextmanager
def docker_engine(work: Path) -> Iterator[dict[str, str]]:
    """A dockerd of our own: own data root, exec root, socket and bridge; no iptables."""
    ensure_docker_engine()
    bridge = "dybenchdk0"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "10.251.77.1/24", "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    sock = work / "docker.sock"
    log = open(work / "dockerd.log", "wb")  # noqa: SIM115
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(work / "docker-data"),
            "--exec-root",
            str(work / "docker-exec"),
            "--host",
            f"unix://{sock}",
            "--pidfile",
            str(work / "docker.pid"),
            "--bridge",
            bridge,
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--cgroup-parent",
            "/dybench-docker",
            "--containerd-namespace",
            "dybench",
            "--containerd-plugins-namespace",
            "dybench-plugins",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{sock}",
        "DOCKER_CONFIG": str(work / "docker-config"),
    }
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            [DOCKER, "version"], env=env, capture_output=True, check=False
        ).returncode:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(f"dockerd did not start: see {work / 'dockerd.log'}")
            time.sleep(0.5)
        yield env
    finally:
        subprocess.run(
            [
                DOCKER,
                "rm",
                "-f",
                *subprocess.run(
                    [DOCKER, "ps", "-aq"], env=env, capture_output=True, text=True, check=False
                ).stdout.split(),
            ],
            env=env,
            capture_output=True,
            check=False,
        )
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        subprocess.run(
            ["umount", "-R", str(work / "docker-data")], capture_output=True, check=False
        )
        subprocess.run(
            ["umount", "-R", str(work / "docker-exec")], capture_output=True, check=False
        )


def copy_busybox(dockyard_env: dict[str, str], docker_env: dict[str, str], work: Path) -> None:
    """Give the Docker engine the very image Dockyard runs (saved by Dockyard)."""
    archive = work / "busybox.tar"
    subprocess.run(
        [DOCKER, "save", "-o", str(archive), "busybox:latest"], env=dockyard_env, check=True
    )
    subprocess.run(
        [DOCKER, "load", "-i", str(archive)],
        env=docker_env,
        check=True,
        capture_output=True,
    )


# idle containers ------------------------------------------------------------------------


def idle_containers(env: dict[str, str], count: int) -> dict[str, float]:
    before = mem_available()
    started = time.perf_counter()
    for _ in range(count):
        result = subprocess.run(
            [DOCKER, "run", "-d", "busybox", "sleep", "36000"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"docker run -d failed: {result.stderr.strip()}")
    elapsed = time.perf_counter() - started
    time.sleep(2)  # let page cache and allocations settle
    after = mem_available()
    return {
        "containers": count,
        "start_all_s": round(elapsed, 2),
        "per_container_ms": round(elapsed / count * 1000, 1),
        "memory_per_container_mib": round((before - after) / count / (1 << 20), 2),
    }


def idle_containers_api(env: dict[str, str], count: int) -> dict[str, float]:
    """The same through the Engine API (docker-py), without the CLI's own start-up."""
    import docker

    client = docker.APIClient(base_url=env["DOCKER_HOST"], version="1.41")
    config = Path(env.get("DOCKER_CONFIG", "")) / "config.json"
    if config.is_file():  # the login the CLI uses (Dockyard's token header)
        client.headers.update(json.loads(config.read_text()).get("HttpHeaders", {}))
    started = time.perf_counter()
    for _ in range(count):
        container = client.create_container("busybox", ["sleep", "36000"])
        client.start(container["Id"])
    elapsed = time.perf_counter() - started
    client.close()
    return {
        "containers": count,
        "start_all_s": round(elapsed, 2),
        "per_container_ms": round(elapsed / count * 1000, 1),
    }


def remove_all(env: dict[str, str]) -> None:
    ids = subprocess.run(
        [DOCKER, "ps", "-aq"], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    for start in range(0, len(ids), 50):
        subprocess.run(
            [DOCKER, "rm", "-f", *ids[start : start + 50]],
            env=env,
            capture_output=True,
            check=False,
        )


# report ---------------------------------------------------------------------------------


def machine() -> str:
    cpus = os.cpu_count()
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1 << 20)
    crun = subprocess.run(["crun", "--version"], capture_output=True, text=True, check=False).stdout
    return (
        f"{platform.node()}: {cpus} CPUs, {mem} GiB, kernel {platform.release()}, "
        f"{crun.splitlines()[0]}"
    )


def write_report(results: dict[str, object], command: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else ""
    marker = "<!-- results -->"
    block = (
        f"{marker}\n\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        f"Command: `{command}`  \nMachine: {results['machine']}\n\n"
        f"```json\n{json.dumps(results, indent=2)}\n```\n"
    )
    if marker in text:
        head, _, _ = text.partition(marker)
        text = head + block
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"machine": machine(), "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="dybench-") as tmp:
        work = Path(tmp)
        results["crun_run_true"] = summary(crun_floor(args.runs, work))
        print("crun floor", results["crun_run_true"], flush=True)
        cloud = TestCloud.launch(work / "dockyard")
        try:
            env = cloud.env()
            results["dockyard_run_rm_true"] = summary(timed_runs(env, args.runs))
            print("dockyard", results["dockyard_run_rm_true"], flush=True)
            if not args.no_docker:
                with docker_engine(work) as docker_env:
                    copy_busybox(env, docker_env, work)
                    results["docker_run_rm_true"] = summary(timed_runs(docker_env, args.runs))
                    print("docker", results["docker_run_rm_true"], flush=True)
                docker_median = results["docker_run_rm_true"]["median_ms"]  # type: ignore[index]
                ours = results["dockyard_run_rm_true"]["median_ms"]  # type: ignore[index]
                results["dockyard_share_of_docker"] = round(ours / docker_median, 3)
            # After the latencies: removing its 200 containers leaves the kernel and the
            # state disk (ext4 without a journal skips recently freed inodes) busy for a
            # while, which slowed the runs measured right after it by ~10 ms.
            results["conmon_crun_idle"] = monitor_floor(args.idle, work)
            print("conmon+crun idle floor", results["conmon_crun_idle"], flush=True)
            results["dockyard_idle"] = idle_containers(env, args.idle)
            print("idle", results["dockyard_idle"], flush=True)
            remove_all(env)
            results["dockyard_idle_api"] = idle_containers_api(env, args.idle)
            print("idle (API)", results["dockyard_idle_api"], flush=True)
            remove_all(env)
        finally:
            cloud.purge()
            for parent in ("dybench-crun", "dybench-docker"):
                for controller in Path("/sys/fs/cgroup").iterdir():
                    target = controller / parent
                    if target.is_dir():
                        for dirpath, _d, _f in sorted(os.walk(target), key=lambda e: -len(e[0])):
                            with contextlib.suppress(OSError):
                                os.rmdir(dirpath)
    print(json.dumps(results, indent=2))
    if args.write:
        write_report(results, "make bench  # " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
