"""An agent without a controller, on the real runtime and kernel (root): for the agent's
own wiring (network plumbing at start, endpoints, ``container:`` mode, restarts) until
the controller side of a feature exists.

The stack is what ``dockyard.daemon.agent`` composes, over a random instance in a
temporary layout; the image is busybox from the host's busybox-static, unpacked straight
into the layer store (no controller to fetch blobs from). A finalizer removes every
container, the instance's routers, table, mounts and cgroups, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.agent.blobs import ControllerBlobs
from dockyard.agent.containers import AgentSettings, ContainerManager
from dockyard.agent.events import EventLog
from dockyard.agent.execs import ExecManager
from dockyard.agent.inotify import DirectoryWatch
from dockyard.core.layout import Layout
from dockyard.core.protocol import CreateRequest, NetworkSpec, ProcessSpec
from dockyard.daemon.agent import prepare_dirs
from dockyard.daemon.common import use_pidfd_child_watcher
from dockyard.images.layers import LayerStore
from dockyard.images.seed import busybox_rootfs_tar
from dockyard.images.snapshot import Snapshotter
from dockyard.network import HostNetwork
from dockyard.network.names import router_prefix, uplink_name
from dockyard.runtime.conmon import ConmonRuntime
from dockyard.volumes.local import LocalVolumes

T = TypeVar("T")
_CGROUP = Path("/sys/fs/cgroup")


@dataclass
class Agent:
    """One agent process's worth of objects (make another over the same layout to
    "restart" it)."""

    layout: Layout
    manager: ContainerManager
    network: HostNetwork
    watch: DirectoryWatch
    layer: str
    uid_base: int

    def request(self, name: str, network: NetworkSpec, *, tenant: str = "t1") -> CreateRequest:
        return CreateRequest(
            id=secrets.token_hex(32),
            tenant=tenant,
            name=name,
            uid_base=self.uid_base,
            uid_size=65536,
            layers=(self.layer,),
            process=ProcessSpec(args=("sleep", "600"), env=("PATH=/bin",)),
            hostname=name,
            network=network,
        )

    async def close(self) -> None:
        self.watch.close()
        await self.manager.drain()
        self.manager.logs.close()
        self.network.close()


@pytest.fixture(scope="session")
def busybox_layer() -> tuple[str, bytes]:
    tar = busybox_rootfs_tar()
    return "sha256:" + hashlib.sha256(tar).hexdigest(), tar


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_watch_children())
    yield loop
    loop.close()


async def _watch_children() -> None:
    use_pidfd_child_watcher()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    return loop.run_until_complete


@pytest.fixture
def make_agent(
    tmp_path: Path,
    busybox_layer: tuple[str, bytes],
    run: Callable[[Coroutine[Any, Any, Any]], Any],
) -> Iterator[Callable[[], Agent]]:
    """Factory of started agents over one random instance (several = restarts)."""
    instance = "dya" + secrets.token_hex(3)
    layout = Layout(state_dir=tmp_path / "state", run_dir=tmp_path / "run", instance=instance)
    transit = f"100.{random.randrange(64, 128)}.{random.randrange(256)}.0/24"
    uid_base = 2_100_000_000 + random.randrange(1000) * 65536
    diff_id, tar = busybox_layer
    made: list[Agent] = []

    async def start() -> Agent:
        prepare_dirs(layout)
        layers = LayerStore(layout.layers_dir)
        layers.ensure(diff_id, lambda: contextlib.nullcontext(io.BytesIO(tar)))
        network = HostNetwork(instance=instance, transit_subnet=transit)
        await network.start()
        runtime = ConmonRuntime(state_root=layout.crun_root)
        events = EventLog()
        manager = ContainerManager(
            settings=AgentSettings(layout=layout),
            runtime=runtime,
            layers=layers,
            snapshotter=Snapshotter(layers, layout.idmapped_dir),
            network=network,
            volumes=LocalVolumes(layout.volumes_dir),
            blobs=ControllerBlobs("unix:///nonexistent"),
            events=events,
            execs=ExecManager(runtime=runtime),
        )
        watch = DirectoryWatch(layout.exits_dir, manager.exit_file_written)
        watch.start()
        await manager.recover()
        manager.process_pending_exits()
        return Agent(layout, manager, network, watch, diff_id, uid_base)

    def make() -> Agent:
        if made:
            run(made[-1].close())
        agent = run(start())
        made.append(agent)
        return agent

    yield make
    try:
        if made:
            last = made[-1]
            for record in last.manager.records():
                with contextlib.suppress(Exception):
                    run(last.manager.delete(record.id, force=True))
            run(last.manager.drain())
            run(last.network.teardown())
            run(last.close())
    finally:
        _purge(layout)


def _purge(layout: Layout) -> None:
    """Whatever the agent left, by name: monitors, routers, table, mounts, cgroups."""
    marker = str(layout.containers_dir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), 9)
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if name.startswith(router_prefix(layout.instance)):
            subprocess.run(
                ["ip", "link", "del", uplink_name(name)], capture_output=True, check=False
            )
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    subprocess.run(
        ["nft", "delete", "table", "inet", layout.nft_table], capture_output=True, check=False
    )
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    root = str(layout.state_dir.parent)
    for point in sorted((p for p in points if p.startswith(root)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for controller in _CGROUP.iterdir() if _CGROUP.is_dir() else []:
        target = controller / layout.cgroup_root.strip("/")
        if target.is_dir():
            for dirpath, _dirs, _files in sorted(os.walk(target), key=lambda e: -len(e[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
    shutil.rmtree(layout.state_dir.parent / "state", ignore_errors=True)


@pytest.fixture
def agent(make_agent: Callable[[], Agent]) -> Agent:
    return make_agent()
