"""The agent daemon: ``python -m dockyard.daemon.agent --controller unix:///run/dockyard/controller.sock``.

Start-up order matters for crash safety: the exit watch starts before recovery so no exit
is missed, recovery re-adopts what survived, then the socket opens for the controller.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from dockyard.agent.blobs import ControllerBlobs
from dockyard.agent.containers import AgentSettings, ContainerManager
from dockyard.agent.dns import AgentDns
from dockyard.agent.events import EventLog
from dockyard.agent.execs import ExecManager
from dockyard.agent.files import ContainerFiles
from dockyard.agent.hostinfo import host_info
from dockyard.agent.inotify import DirectoryWatch
from dockyard.agent.server import make_app
from dockyard.agent.usage import DEFAULT_DISK_INTERVAL, DiskWatch
from dockyard.core.ids import new_id
from dockyard.core.layout import Layout
from dockyard.core.protocol import ExecStatus
from dockyard.daemon.common import (
    AlreadyRunning,
    layout_arguments,
    layout_from,
    pidfile_lock,
    serve_unix,
    setup_logging,
    use_pidfd_child_watcher,
    wait_for_signal,
)
from dockyard.images.layers import LayerStore
from dockyard.images.snapshot import Snapshotter
from dockyard.network.host import DEFAULT_TRANSIT_SUBNET, HostNetwork
from dockyard.runtime.cgroups import moves_favored
from dockyard.runtime.conmon import ConmonRuntime
from dockyard.runtime.seccomp import default_profile
from dockyard.runtime.seccomp_bpf import encoded_program
from dockyard.runtime.tmpfs import ensure_tmpfs
from dockyard.volumes.local import LocalVolumes

log = logging.getLogger("dockyard.agent")


def agent_id(layout: Layout) -> str:
    """This host's stable agent id, created on first start."""
    path = layout.agent_dir / "agent-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = new_id()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
        return value


def prepare_dirs(layout: Layout) -> None:
    """The agent's directories: the runtime tmpfs (ADR 0023) and, on the state disk and
    in it, the containers' data, bundles and exit files; those naming containers closed
    to listing (0711)."""
    ensure_tmpfs(layout.agent_run_dir)
    for directory in (
        layout.agent_dir,
        layout.containers_dir,
        layout.bundles_dir,
        layout.exits_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    for directory in (layout.agent_dir, layout.containers_dir, layout.bundles_dir):
        directory.chmod(0o711)


async def run(
    layout: Layout, controller: str, *, disk_interval: float, transit_subnet: str
) -> None:
    use_pidfd_child_watcher()
    prepare_dirs(layout)
    if moves_favored() is False:
        log.warning(
            "the cgroup2 root lacks favordynmods: every container start waits an RCU grace "
            "period (scripts/setup-host.sh sets it; ADR 0024)"
        )
    events = EventLog()
    profile = default_profile()
    network = HostNetwork(instance=layout.instance, transit_subnet=transit_subnet)
    await network.start()
    dns = AgentDns(network)  # before recovery: restored containers' networks get DNS too
    layers = LayerStore(layout.layers_dir)
    volumes = LocalVolumes(layout.volumes_dir)
    runtime = ConmonRuntime(state_root=layout.crun_root)

    def exec_ended(ended: ExecStatus) -> None:
        events.emit("exec_die", manager.status(ended.container_id), exec_status=ended)

    execs = ExecManager(runtime=runtime, on_exit=exec_ended)
    manager = ContainerManager(
        settings=AgentSettings(
            layout=layout, seccomp=profile, seccomp_program=encoded_program(profile)
        ),
        runtime=runtime,
        layers=layers,
        snapshotter=Snapshotter(layers, layout.idmapped_dir),
        network=network,
        volumes=volumes,
        blobs=ControllerBlobs(controller),
        events=events,
        execs=execs,
    )
    watch = DirectoryWatch(layout.exits_dir, manager.exit_file_written)
    watch.start()
    await manager.recover()
    manager.process_pending_exits()
    disk = DiskWatch(manager=manager, volumes=volumes, interval=disk_interval)
    disk.start()
    ident = agent_id(layout)
    info = host_info(
        agent_id=ident, boot_id=events.boot_id, root_dir=layout.agent_dir, crun="/usr/bin/crun"
    )
    runner = await serve_unix(
        make_app(
            manager=manager,
            execs=execs,
            volumes=volumes,
            info=lambda: info,
            files=ContainerFiles(manager=manager, volumes=volumes, layers=layers),
            usage=disk,
        ),
        layout.agent_socket,
        mode=0o600,
    )
    log.info("agent %s ready on %s", ident[:12], layout.agent_socket)
    try:
        await wait_for_signal()
    finally:
        # Stop serving first: requests still in flight get the exit watch until they end.
        await runner.cleanup()
        watch.close()
        await disk.close()
        manager.logs.close()
        await dns.close()
        # Close the published ports' reservation sockets now, not as the process exits
        # after the pidfile lock is released: the next agent, which waits only for that
        # lock, would find its containers' ports still taken by us and fail to re-adopt
        # them ("port is already allocated"). The kernel's network state stays.
        network.close()
        log.info("agent stopped; containers keep running under conmon")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard-agent")
    layout_arguments(parser)
    parser.add_argument(
        "--controller",
        required=True,
        help="controller's internal address, unix:///path or http://host:port",
    )
    parser.add_argument(
        "--disk-interval",
        type=float,
        default=DEFAULT_DISK_INTERVAL,
        help="seconds between measurements of writable layers and volumes (0: on demand)",
    )
    parser.add_argument(
        "--transit-subnet",
        default=DEFAULT_TRANSIT_SUBNET,
        help="IPv4 subnet the tenants' router namespaces take their uplink /31s from "
        "(distinct per instance on one host)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("agent")
    layout = layout_from(args)
    try:
        with pidfile_lock(layout.agent_pidfile):
            asyncio.run(
                run(
                    layout,
                    args.controller,
                    disk_interval=args.disk_interval,
                    transit_subnet=args.transit_subnet,
                )
            )
    except AlreadyRunning:
        log.info("an agent already runs for %s", layout.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
