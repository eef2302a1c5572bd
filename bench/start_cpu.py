"""Where the CPU of a container start goes: create + start through the Engine API.

    PYTHONPATH=src .venv/bin/python bench/start_cpu.py [--count 100] [--py-spy DIR]

Starts a fresh test instance, makes 5 warm-up containers, then ``--count`` idle
containers (docker-py create + start, one after another) and prints, per container: the
wall time, the medians of create and start, the whole machine's busy CPU time, and the
CPU time of the controller and the agent processes (children not included: conmon and
crun are in the machine's figure). ``--py-spy DIR`` also samples both daemons with
py-spy (raw format, ``DIR/controller.txt`` and ``DIR/agent.txt``). Run it on a quiet
machine; compare figures from one sitting only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dockyard.wire  # noqa: F401  (before anything imports aiohttp)
from dockyard.testing.cloud import TestCloud

_HZ = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """Seconds of CPU time the whole machine has spent busy (not idle or iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / _HZ


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _HZ


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--py-spy", type=Path, help="sample both daemons into this directory")
    args = parser.parse_args()
    import docker

    with tempfile.TemporaryDirectory(prefix="dybench-start-") as tmp:
        cloud = TestCloud.launch(Path(tmp) / "dockyard")
        try:
            env = cloud.env()
            client = docker.APIClient(base_url=env["DOCKER_HOST"], version="1.41")
            config = Path(env["DOCKER_CONFIG"]) / "config.json"
            client.headers.update(json.loads(config.read_text()).get("HttpHeaders", {}))
            for _ in range(5):
                client.start(client.create_container("busybox", ["sleep", "36000"])["Id"])
            pids = {name: cloud.pid(name) for name in ("controller", "agent")}
            samplers = []
            if args.py_spy is not None:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                spy = Path(sys.executable).with_name("py-spy")
                for name, pid in pids.items():
                    out = args.py_spy / f"{name}.txt"
                    command = [str(spy), "record", "-p", str(pid), "-r", "400", "-f", "raw"]
                    samplers.append(
                        subprocess.Popen(
                            [*command, "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                time.sleep(1.5)
            cpu_before = {name: process_cpu(pid) for name, pid in pids.items()}
            busy_before = machine_busy()
            creates, starts = [], []
            began = time.perf_counter()
            for _ in range(args.count):
                t0 = time.perf_counter()
                made = client.create_container("busybox", ["sleep", "36000"])
                t1 = time.perf_counter()
                client.start(made["Id"])
                starts.append((time.perf_counter() - t1) * 1000)
                creates.append((t1 - t0) * 1000)
            wall = time.perf_counter() - began
            busy = machine_busy() - busy_before
            cpu = {name: process_cpu(pid) - cpu_before[name] for name, pid in pids.items()}
            for sampler in samplers:
                sampler.send_signal(2)
                sampler.wait()
            per = 1000 / args.count
            result = {
                "containers": args.count,
                "wall_ms": round(wall * per, 1),
                "create_median_ms": round(statistics.median(creates), 1),
                "start_median_ms": round(statistics.median(starts), 1),
                "machine_busy_cpu_ms": round(busy * per, 1),
                "controller_cpu_ms": round(cpu["controller"] * per, 1),
                "agent_cpu_ms": round(cpu["agent"] * per, 1),
            }
            print(json.dumps(result, indent=2))
            client.close()
        finally:
            cloud.purge()
    return 0


if __name__ == "__main__":
    sys.exit(main())
