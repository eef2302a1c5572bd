"""What the ``dockyard`` commands share: the instance options, the endpoint and docker
config a command talks to, clients, error reporting and tables."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dockyard.client.certs import context_from_env
from dockyard.client.dockerconfig import default_config_dir, read_token
from dockyard.client.native import AdminClient, NativeClient
from dockyard.core.errors import DockyardError
from dockyard.core.layout import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, Layout

__all__ = [
    "admin_client",
    "config_option",
    "docker_config_dir",
    "endpoint",
    "fail",
    "host_option",
    "layout_of",
    "layout_options",
    "logged_in",
    "native_client",
    "table",
    "when",
]


def layout_of(state_dir: Path, run_dir: Path, instance: str) -> Layout:
    return Layout(state_dir=state_dir, run_dir=run_dir, instance=instance)


def endpoint(host: str | None) -> str:
    """``--host``, else ``$DOCKER_HOST``, else the embedded cloud's socket."""

    address = host or os.environ.get("DOCKER_HOST") or ""
    if not address:
        address = (
            f"unix://{Layout(state_dir=DEFAULT_STATE_DIR, run_dir=DEFAULT_RUN_DIR).docker_socket}"
        )
    return address


def docker_config_dir(config_dir: Path | None) -> Path:
    return config_dir or default_config_dir()


def native_client(host: str | None, token: str, config_dir: Path | None) -> NativeClient:
    """A client of the endpoint, over TLS with the client certificate when the docker CLI
    would use TLS there (``tcp://`` with ``DOCKER_TLS_VERIFY``)."""
    address = endpoint(host)
    context = context_from_env(address, docker_config_dir(config_dir))
    return NativeClient(address, token, context=context)


def logged_in(host: str | None, config_dir: Path | None) -> NativeClient:
    """A client acting with the token of the docker config (``dockyard login``'s)."""
    return native_client(host, read_token(docker_config_dir(config_dir)), config_dir)


def fail(exc: DockyardError) -> click.ClickException:
    return click.ClickException(exc.message)


def table(columns: list[str], rows: list[list[Any]]) -> None:
    shown = Table(*columns, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        shown.add_row(*(str(v) for v in row))
    # Not on a terminal (a pipe, a script): do not squeeze columns into 80 characters.
    Console(width=None if sys.stdout.isatty() else 200).print(shown)


def when(ns: int) -> str:
    return "never" if not ns else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9))


host_option = click.option("--host", "-H", help="Dockyard endpoint (default: $DOCKER_HOST)")
config_option = click.option(
    "--config-dir",
    type=click.Path(path_type=Path),
    help="docker config directory (default: $DOCKER_CONFIG or ~/.docker)",
)


def layout_options(func: Any) -> Any:
    """``--state-dir``, ``--run-dir`` and ``--instance``: which Dockyard instance."""
    func = click.option(
        "--instance",
        default="dockyard",
        envvar="DOCKYARD_INSTANCE",
        show_default=True,
        help="name prefix of kernel objects",
    )(func)
    func = click.option(
        "--run-dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_RUN_DIR,
        envvar="DOCKYARD_RUN_DIR",
        show_default=True,
    )(func)
    return click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_STATE_DIR,
        envvar="DOCKYARD_STATE_DIR",
        show_default=True,
    )(func)


def admin_client(state_dir: Path, run_dir: Path, instance: str) -> AdminClient:
    return AdminClient(f"unix://{layout_of(state_dir, run_dir, instance).controller_socket}")
