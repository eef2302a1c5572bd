"""The ``dockyard`` command.

``dockyard up`` starts the embedded single-host cloud (controller + one agent) and logs the
local admin of its first tenant in, ``dockyard env`` prints the shell lines that point
``docker`` at it, ``dockyard down`` stops the daemons (containers keep running and are
re-adopted at the next ``up``). Identity commands live in ``dockyard.cli.identity``, the
audit log's in ``dockyard.cli.audit``, security groups' in ``dockyard.cli.security_groups``,
public IPs' in ``dockyard.cli.public_ips``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from dockyard.cli import daemons as d
from dockyard.cli.audit import admin_audit, audit
from dockyard.cli.certs import cert
from dockyard.cli.common import admin_client, layout_options
from dockyard.cli.identity import admin, login, login_local, logout, token, whoami
from dockyard.cli.images import cpi, images
from dockyard.cli.namespaces import namespace
from dockyard.cli.public_ips import ip
from dockyard.cli.security_groups import sg
from dockyard.cli.usage import info, usage
from dockyard.core.errors import DockyardError
from dockyard.core.layout import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, Layout

__all__ = ["main"]

_DEFAULT_SUBNET = "172.17.0.0/16"
_DEFAULT_UID_START = 1_000_000_000
_DEFAULT_TLS_ADDRESS = "127.0.0.1:2376"
_DEFAULT_REGISTRY_ADDRESS = "127.0.0.1:5000"


@click.group()
def main() -> None:
    """Dockyard: a multi-tenant, Docker-compatible container cloud."""


@main.command()
@layout_options
@click.option(
    "--bridge-subnet",
    default=_DEFAULT_SUBNET,
    show_default=True,
    help="IPv4 subnet of every tenant's predefined bridge network (NAT only)",
)
@click.option(
    "--uid-range-start",
    default=_DEFAULT_UID_START,
    show_default=True,
    help="first host uid handed to tenants' user namespaces",
)
@click.option(
    "--transit-subnet",
    default=d.DEFAULT_TRANSIT_SUBNET,
    show_default=True,
    help="IPv4 subnet of the tenants' router uplinks (distinct per instance on a host)",
)
@click.option(
    "--tls-address",
    default=_DEFAULT_TLS_ADDRESS,
    show_default=True,
    help="host:port of the TLS listener for docker --tlsverify ('': none)",
)
@click.option(
    "--registry-address",
    default=_DEFAULT_REGISTRY_ADDRESS,
    show_default=True,
    help="host:port of the registry (token service and /v2/ API) ('': none)",
)
@click.option("--timeout", default=60.0, show_default=True, help="seconds to wait for ready")
def up(  # noqa: PLR0917  (click passes options positionally)
    state_dir: Path,
    run_dir: Path,
    instance: str,
    bridge_subnet: str,
    uid_range_start: int,
    transit_subnet: str,
    tls_address: str,
    registry_address: str,
    timeout: float,
) -> None:
    """Start the embedded cloud (idempotent: running daemons are left alone)."""
    if os.geteuid() != 0:
        raise click.ClickException("dockyard up must run as root")
    layout = Layout(state_dir=state_dir, run_dir=run_dir, instance=instance)
    for daemon in d.daemons(
        layout,
        bridge_subnet=bridge_subnet,
        uid_range_start=uid_range_start,
        tls_address=tls_address,
        transit_subnet=transit_subnet,
        registry_address=registry_address,
    ):
        started = d.start(daemon, layout)
        click.echo(f"{daemon.name}: {'started' if started else 'already running'}")
    try:
        d.wait_ready(layout, timeout=timeout)
        config_dir = login_local(layout)
    except DockyardError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"logged in as admin of tenant default ({config_dir})")
    try:  # the curated images (ADR 0021): docker pull busybox works offline
        published = admin_client(state_dir, run_dir, instance).seed_images()
        click.echo(f"curated images in the registry: {', '.join(published)}")
    except DockyardError as exc:
        click.echo(f"warning: curated images not published: {exc.message}", err=True)
    click.echo(f'Dockyard is up. Run: eval "$(dockyard env{_layout_flags(layout)})"')
    if tls_address:
        click.echo(
            f'For TLS (docker --tlsverify): eval "$(dockyard env --tls{_layout_flags(layout)})"'
        )


@main.command()
@layout_options
def down(state_dir: Path, run_dir: Path, instance: str) -> None:
    """Stop the daemons; containers keep running and are re-adopted by the next up."""
    layout = Layout(state_dir=state_dir, run_dir=run_dir, instance=instance)
    for daemon in reversed(
        d.daemons(layout, bridge_subnet=_DEFAULT_SUBNET, uid_range_start=_DEFAULT_UID_START)
    ):
        stopped = d.stop(daemon)
        click.echo(f"{daemon.name}: {'stopped' if stopped else 'not running'}")


@main.command()
@layout_options
@click.option("--tls", is_flag=True, help="the TLS listener, with the local admin's certificate")
def env(state_dir: Path, run_dir: Path, instance: str, tls: bool) -> None:
    """Print shell lines that point docker and docker-py at Dockyard."""
    layout = Layout(state_dir=state_dir, run_dir=run_dir, instance=instance)
    if tls:
        try:
            endpoint = layout.tls_endpoint_file.read_text().strip()
        except FileNotFoundError:
            raise click.ClickException(
                "the controller serves no TLS listener (dockyard up --tls-address HOST:PORT)"
            ) from None
        click.echo(f"export DOCKER_HOST={endpoint}")
        click.echo("export DOCKER_TLS_VERIFY=1")
        click.echo(f"export DOCKER_CERT_PATH={layout.docker_config_dir}")
    else:
        click.echo(f"export DOCKER_HOST=unix://{layout.docker_socket}")
    if (layout.docker_config_dir / "config.json").exists():
        click.echo(f"export DOCKER_CONFIG={layout.docker_config_dir}")
    with contextlib.suppress(FileNotFoundError):
        registry = layout.registry_endpoint_file.read_text().strip()
        if registry:
            click.echo(f"export DOCKYARD_REGISTRY={registry}")


@main.command()
@layout_options
def status(state_dir: Path, run_dir: Path, instance: str) -> None:
    """Show whether the daemons run and the API answers."""
    layout = Layout(state_dir=state_dir, run_dir=run_dir, instance=instance)
    for daemon in d.daemons(
        layout, bridge_subnet=_DEFAULT_SUBNET, uid_range_start=_DEFAULT_UID_START
    ):
        pid = d.is_running(daemon.pidfile)
        click.echo(f"{daemon.name}: {f'running (pid {pid})' if pid else 'stopped'}")
    click.echo(f"docker API: {'ok' if d.ping(layout.docker_socket) else 'not answering'}")


def _layout_flags(layout: Layout) -> str:
    flags = ""
    if layout.state_dir != DEFAULT_STATE_DIR:
        flags += f" --state-dir {layout.state_dir}"
    if layout.run_dir != DEFAULT_RUN_DIR:
        flags += f" --run-dir {layout.run_dir}"
    if layout.instance != "dockyard":
        flags += f" --instance {layout.instance}"
    return flags


for _command in (login, logout, whoami, token, cert, admin, usage, info, sg, ip):
    main.add_command(_command)
main.add_command(audit)
main.add_command(namespace)
main.add_command(images)
main.add_command(cpi)
admin.add_command(admin_audit)
