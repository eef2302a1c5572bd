"""The controller daemon: ``python -m dockyard.daemon.controller --agent unix:///run/dockyard/agent.sock``.

Serves the Docker Engine API on the instance's docker socket and the internal API for
agents on a root-only socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from dockyard.api.docker.app import make_docker_app
from dockyard.api.internal import make_internal_app
from dockyard.controller.app import Controller
from dockyard.controller.config import (
    DEFAULT_BRIDGE_SUBNET,
    DEFAULT_EVENTS_KEEP,
    DEFAULT_EVENTS_MAX_AGE,
    DEFAULT_UID_RANGE_START,
    ControllerConfig,
)
from dockyard.core.clock import go_duration
from dockyard.core.errors import InvalidArgument
from dockyard.daemon.common import (
    AlreadyRunning,
    layout_arguments,
    layout_from,
    pidfile_lock,
    serve_unix,
    setup_logging,
    wait_for_signal,
)
from dockyard.store.sql import SqlStore

log = logging.getLogger("dockyard.controller")


async def run(config: ControllerConfig, agents: list[str], *, seed: bool) -> None:
    layout = config.layout
    store = SqlStore.sqlite(layout.database, uid_range_start=config.uid_range_start)
    controller = Controller(config, store)
    internal = await serve_unix(make_internal_app(controller), layout.controller_socket, mode=0o600)
    try:
        await controller.start(agents)
        if seed:
            await controller.seed_busybox()
        docker = await serve_unix(make_docker_app(controller), layout.docker_socket, mode=0o660)
        log.info("controller ready: DOCKER_HOST=unix://%s", layout.docker_socket)
        try:
            await wait_for_signal()
        finally:
            await docker.cleanup()
    finally:
        await internal.cleanup()
        await controller.close()
        log.info("controller stopped")


def _duration(text: str) -> int:
    if text == "0":
        return 0
    try:
        return go_duration(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard-controller")
    layout_arguments(parser)
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        help="an agent's address (unix:///path or http://host:port)",
    )
    parser.add_argument("--bridge-subnet", default=DEFAULT_BRIDGE_SUBNET)
    parser.add_argument("--uid-range-start", type=int, default=DEFAULT_UID_RANGE_START)
    parser.add_argument(
        "--events-keep",
        type=int,
        default=DEFAULT_EVENTS_KEEP,
        help="events each tenant keeps at most (0: no limit by count)",
    )
    parser.add_argument(
        "--events-max-age",
        type=_duration,
        default=DEFAULT_EVENTS_MAX_AGE,
        help="drop events older than this Go duration, e.g. 168h (0: no limit by age)",
    )
    parser.add_argument(
        "--seed-busybox",
        action="store_true",
        help="give the default tenant busybox:latest if it has none",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("controller")
    layout = layout_from(args)
    config = ControllerConfig(
        layout=layout,
        bridge_subnet=args.bridge_subnet,
        uid_range_start=args.uid_range_start,
        events_keep=args.events_keep,
        events_max_age=args.events_max_age,
    )
    try:
        with pidfile_lock(layout.controller_pidfile):
            asyncio.run(run(config, args.agent, seed=args.seed_busybox))
    except AlreadyRunning:
        log.info("a controller already runs for %s", layout.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
