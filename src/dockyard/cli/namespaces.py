"""``dockyard namespace [set|list]`` (a tenant's registry namespaces) and ``dockyard admin
namespace list|assign`` (the operator's).

``dockyard namespace`` prints one name per line, nothing else on stdout, for scripts:
``docker tag app "$(dockyard namespace | head -1)/app"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dockyard.cli.common import (
    admin_client,
    config_option,
    fail,
    host_option,
    layout_options,
    logged_in,
    table,
    when,
)
from dockyard.cli.identity import admin
from dockyard.core.errors import DockyardError

__all__ = ["admin_namespace", "namespace"]

_HINT = (
    "No registry namespace yet. A tenant admin claims one with: dockyard namespace set NAME "
    "(4 to 30 of a-z, 0-9 and _; unique across the cloud, never renamed)"
)


@click.group(invoke_without_command=True)
@config_option
@host_option
@click.pass_context
def namespace(ctx: click.Context, config_dir: Path | None, host: str | None) -> None:
    """Your tenant's registry namespaces, one per line."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        listed = logged_in(host, config_dir).namespaces()
    except DockyardError as exc:
        raise fail(exc) from exc
    if not listed:
        click.echo(_HINT, err=True)
    for item in listed:
        click.echo(item["name"])


@namespace.command("set")
@click.argument("name")
@config_option
@host_option
def namespace_set(name: str, config_dir: Path | None, host: str | None) -> None:
    """Claim a registry namespace for your tenant (the first or another one; a tenant
    admin's token). Names are unique across the cloud and can never be changed."""
    try:
        claimed = logged_in(host, config_dir).claim_namespace(name)
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(claimed["name"])


@namespace.command("list")
@config_option
@host_option
def namespace_list(config_dir: Path | None, host: str | None) -> None:
    """Your tenant's registry namespaces, with when each was claimed."""
    try:
        listed = logged_in(host, config_dir).namespaces()
    except DockyardError as exc:
        raise fail(exc) from exc
    table(["NAME", "CREATED"], [[n["name"], when(n["created"])] for n in listed])


# the operator ----------------------------------------------------------------------------


def _owner(item: dict[str, Any]) -> str:
    tenant = item["tenant"]
    return tenant["name"] or f"(deleted {tenant['id'][:12]})"


@admin.group("namespace")
def admin_namespace() -> None:
    """Registry namespaces of every tenant."""


@admin_namespace.command("list")
@click.option("--tenant", "tenant_name", default="", help="only this tenant's")
@layout_options
def admin_namespace_list(tenant_name: str, state_dir: Path, run_dir: Path, instance: str) -> None:
    """Every namespace with its tenant; a deleted tenant's stay, retired."""
    try:
        listed = admin_client(state_dir, run_dir, instance).namespaces(tenant_name)
    except DockyardError as exc:
        raise fail(exc) from exc
    table(
        ["NAME", "TENANT", "CREATED", "BY", "RETIRED"],
        [
            [
                n["name"],
                _owner(n),
                when(n["created"]),
                n["created_by"][:12],
                when(n["retired"]) if n["retired"] else "",
            ]
            for n in listed
        ],
    )


@admin_namespace.command("assign")
@click.argument("tenant_name")
@click.argument("name")
@layout_options
def admin_namespace_assign(
    tenant_name: str, name: str, state_dir: Path, run_dir: Path, instance: str
) -> None:
    """Give a tenant a namespace (reserved names too, beyond its limit); prints it."""
    try:
        assigned = admin_client(state_dir, run_dir, instance).assign_namespace(tenant_name, name)
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(assigned["name"])
