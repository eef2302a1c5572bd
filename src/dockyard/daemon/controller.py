"""The controller daemon: ``python -m dockyard.daemon.controller --agent unix:///run/dockyard/agent.sock``.

Serves the Docker Engine API on the instance's docker socket and the internal API for
agents on a root-only socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from dockyard.api.docker.app import make_docker_app
from dockyard.api.internal import make_internal_app
from dockyard.api.registry import make_registry_app
from dockyard.controller.app import Controller
from dockyard.controller.config import (
    DEFAULT_AUDIT_KEEP,
    DEFAULT_AUDIT_MAX_AGE,
    DEFAULT_BRIDGE_SUBNET,
    DEFAULT_DEFAULT_SUBNET,
    DEFAULT_EVENTS_KEEP,
    DEFAULT_EVENTS_MAX_AGE,
    DEFAULT_UID_RANGE_START,
    ControllerConfig,
    default_tls_names,
    parse_address,
)
from dockyard.controller.namespaces import DEFAULT_NAMESPACE_LIMIT
from dockyard.controller.pki import server_context
from dockyard.controller.plans import DEFAULT_PLAN, builtin_plans, load_plans
from dockyard.controller.public_ips import parse_pool
from dockyard.core.certs import CLIENT_CERT_MAX_TTL
from dockyard.core.clock import go_duration
from dockyard.core.errors import InvalidArgument
from dockyard.core.namespaces import validate_namespace
from dockyard.daemon.common import (
    AlreadyRunning,
    layout_arguments,
    layout_from,
    pidfile_lock,
    serve_tcp,
    serve_tls,
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
        await controller.registry.start()
        docker = await serve_unix(make_docker_app(controller), layout.docker_socket, mode=0o660)
        tls = front = None
        try:
            tls = await _serve_tls(controller) if config.tls_address else None
            if tls is None:
                layout.tls_endpoint_file.unlink(missing_ok=True)  # a previous run's
            front = await _serve_registry(controller) if config.registry_address else None
            if front is None:
                layout.registry_endpoint_file.unlink(missing_ok=True)
            log.info("controller ready: DOCKER_HOST=unix://%s", layout.docker_socket)
            await wait_for_signal()
        finally:
            if tls is not None:
                layout.tls_endpoint_file.unlink(missing_ok=True)
            if front is not None:
                layout.registry_endpoint_file.unlink(missing_ok=True)
            # Together: each may wait out its grace for a client's stream (daemon.common).
            await asyncio.gather(*(r.cleanup() for r in (docker, tls, front) if r is not None))
    finally:
        await internal.cleanup()
        await controller.close()
        log.info("controller stopped")


async def _serve_tls(controller: Controller) -> web.AppRunner | None:
    """The Docker and native API over TLS, for clients with a certificate from our CA.

    An address that cannot be bound (taken by another server) is logged as an error and
    the controller goes on without TLS: the docker socket, what the embedded cloud needs,
    still works, and ``dockyard env --tls`` says there is no listener."""
    config = controller.config
    host, port = parse_address(config.tls_address)
    names = config.tls_names or default_tls_names(config.tls_address)
    await asyncio.to_thread(controller.certs.prepare_listener, names)
    context = server_context(controller.certs.files)
    try:
        runner = await serve_tls(make_docker_app(controller, tls=True), host, port, context=context)
    except OSError as exc:
        log.error("no TLS listener: cannot listen on %s: %s", config.tls_address, exc)  # noqa: TRY400
        return None
    config.layout.tls_endpoint_file.write_text(config.tls_endpoint + "\n")
    log.info("TLS listener on %s (names: %s)", config.tls_endpoint, ", ".join(names))
    return runner


async def _serve_registry(controller: Controller) -> web.AppRunner | None:
    """The registry front (token service and ``/v2/`` pass-through, ADR 0021) over plain
    HTTP. An address that cannot be bound is logged as an error and the controller goes
    on without it, as for the TLS listener."""
    config = controller.config
    host, port = parse_address(config.registry_address)
    try:
        runner = await serve_tcp(make_registry_app(controller), host, port)
    except OSError as exc:
        log.error("no registry front: cannot listen on %s: %s", config.registry_address, exc)  # noqa: TRY400
        return None
    config.layout.registry_endpoint_file.write_text(config.registry_endpoint + "\n")
    log.info("registry front on %s", config.registry_endpoint)
    return runner


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
    parser.add_argument("--default-subnet", default=DEFAULT_DEFAULT_SUBNET)
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
        "--audit-keep",
        type=int,
        default=DEFAULT_AUDIT_KEEP,
        help="audit records each tenant keeps at most (0: no limit by count)",
    )
    parser.add_argument(
        "--audit-max-age",
        type=_duration,
        default=DEFAULT_AUDIT_MAX_AGE,
        help="drop audit records older than this Go duration, e.g. 2160h (0: no limit by age)",
    )
    parser.add_argument(
        "--tls-address",
        default="",
        help="serve the Docker API over TLS on host:port, client certificates required",
    )
    parser.add_argument(
        "--tls-name",
        action="append",
        default=[],
        help="a host name or IP the TLS certificate is valid for (repeatable; default: "
        "localhost, 127.0.0.1, ::1, this host's name and the listening address)",
    )
    parser.add_argument(
        "--client-cert-max-ttl",
        type=_duration,
        default=CLIENT_CERT_MAX_TTL * 1_000_000_000,
        help="longest lifetime of a client certificate, a Go duration (default 720h)",
    )
    parser.add_argument(
        "--plans",
        type=Path,
        help="a TOML file of plans ([plans.<name>] tables) added to the built-in ones",
    )
    parser.add_argument(
        "--default-plan",
        default=DEFAULT_PLAN,
        help="the plan of tenants created without one (default: free)",
    )
    parser.add_argument(
        "--reserved-namespace",
        action="append",
        default=[],
        help="a registry namespace tenants cannot claim, kept for the operator's curated "
        "images (repeatable; library always is)",
    )
    parser.add_argument(
        "--namespace-limit",
        type=int,
        default=DEFAULT_NAMESPACE_LIMIT,
        help="registry namespaces a tenant may claim itself (0: no limit; default "
        f"{DEFAULT_NAMESPACE_LIMIT})",
    )
    parser.add_argument(
        "--public-pool",
        action="append",
        default=[],
        metavar="CIDR",
        help="a range of public addresses handed out as floating IPs, added at start if "
        "missing (repeatable; dockyard admin ip pool manages them at run time)",
    )
    parser.add_argument(
        "--registry-address",
        default="",
        help="serve the registry front (token service and /v2/ of the registry) over HTTP "
        "on host:port (default: none)",
    )
    parser.add_argument(
        "--registry-binary",
        default="docker-registry",
        help="the CNCF distribution server run as the registry (default: docker-registry)",
    )
    parser.add_argument(
        "--seed-busybox",
        action="store_true",
        help="give the default tenant busybox:latest if it has none",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging("controller")
    layout = layout_from(args)
    try:
        plans = load_plans(args.plans) if args.plans else builtin_plans()
    except InvalidArgument as exc:
        parser.error(exc.message)
    if args.default_plan not in plans:
        parser.error(f"--default-plan {args.default_plan}: no such plan ({', '.join(plans)})")
    for name in args.reserved_namespace:
        try:
            validate_namespace(name)
        except InvalidArgument as exc:
            parser.error(f"--reserved-namespace: {exc.message}")
    config = ControllerConfig(
        layout=layout,
        bridge_subnet=args.bridge_subnet,
        default_subnet=args.default_subnet,
        uid_range_start=args.uid_range_start,
        events_keep=args.events_keep,
        events_max_age=args.events_max_age,
        audit_keep=args.audit_keep,
        audit_max_age=args.audit_max_age,
        tls_address=args.tls_address,
        tls_names=tuple(args.tls_name),
        client_cert_max_ttl=max(args.client_cert_max_ttl // 1_000_000_000, 1),
        plans=plans,
        default_plan=args.default_plan,
        reserved_namespaces=tuple(args.reserved_namespace),
        namespace_limit=args.namespace_limit,
        public_pools=tuple(args.public_pool),
        registry_address=args.registry_address,
        registry_binary=args.registry_binary,
    )
    for address in (args.tls_address, args.registry_address):
        if address:
            try:
                parse_address(address)
            except InvalidArgument as exc:
                parser.error(exc.message)
    for cidr in args.public_pool:
        try:
            parse_pool(cidr)
        except InvalidArgument as exc:
            parser.error(f"--public-pool: {exc.message}")
    try:
        with pidfile_lock(layout.controller_pidfile):
            asyncio.run(run(config, args.agent, seed=args.seed_busybox))
    except AlreadyRunning:
        log.info("a controller already runs for %s", layout.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
