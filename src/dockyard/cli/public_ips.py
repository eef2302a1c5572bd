"""Public (floating) IPs: ``dockyard ip`` (a tenant's addresses) and ``dockyard admin ip
pool`` (the operator's ranges they come from).

``dockyard ip request`` prints only the new address, for scripts:
``IP=$(dockyard ip request) && dockyard ip bind "$IP" web``.
"""

from __future__ import annotations

import json
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

__all__ = ["admin_ip", "ip"]


def _show(listed: list[dict[str, Any]]) -> None:
    table(
        ["ADDRESS", "CONTAINER", "CREATED"],
        [
            [
                i["address"],
                i["container_name"] or (i["container"][:12] if i["container"] else ""),
                when(i["created"]),
            ]
            for i in listed
        ],
    )


@click.group()
def ip() -> None:
    """Your public (floating) IPs: each reaches one container's exposed ports, and that
    container's traffic out leaves from it."""


@ip.command("request")
@config_option
@host_option
def ip_request(config_dir: Path | None, host: str | None) -> None:
    """A new public IP from the cloud's pools (your public_ips quota permitting); prints
    its address."""
    try:
        made = logged_in(host, config_dir).request_ip()
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(made["address"])


@ip.command("list")
@click.option("--json", "as_json", is_flag=True, help="the API's answer")
@config_option
@host_option
def ip_list(as_json: bool, config_dir: Path | None, host: str | None) -> None:
    """Your public IPs with the container each is bound to."""
    try:
        listed = logged_in(host, config_dir).ips()
    except DockyardError as exc:
        raise fail(exc) from exc
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    _show(listed)


@ip.command("bind")
@click.argument("address")
@click.argument("container")
@config_option
@host_option
def ip_bind(address: str, container: str, config_dir: Path | None, host: str | None) -> None:
    """Bind ADDRESS to CONTAINER (name or id), taking it from the container it was bound to."""
    try:
        logged_in(host, config_dir).bind_ip(address, container)
    except DockyardError as exc:
        raise fail(exc) from exc


@ip.command("unbind")
@click.argument("address")
@config_option
@host_option
def ip_unbind(address: str, config_dir: Path | None, host: str | None) -> None:
    """Take ADDRESS off its container (its traffic stops at once); you keep the address."""
    try:
        logged_in(host, config_dir).unbind_ip(address)
    except DockyardError as exc:
        raise fail(exc) from exc


@ip.command("release")
@click.argument("address")
@config_option
@host_option
def ip_release(address: str, config_dir: Path | None, host: str | None) -> None:
    """Give ADDRESS back to the pool (unbinding it first)."""
    try:
        logged_in(host, config_dir).release_ip(address)
    except DockyardError as exc:
        raise fail(exc) from exc


# the operator --------------------------------------------------------------------------------


@admin.group("ip")
def admin_ip() -> None:
    """Public IPs: the pools tenants' addresses come from."""


@admin_ip.group("pool")
def admin_ip_pool() -> None:
    """Ranges of public addresses handed out as floating IPs."""


@admin_ip_pool.command("add")
@click.argument("cidr")
@layout_options
def admin_ip_pool_add(cidr: str, state_dir: Path, run_dir: Path, instance: str) -> None:
    """Add a range (198.51.100.0/24; one address: 198.51.100.7/32)."""
    try:
        admin_client(state_dir, run_dir, instance).add_ip_pool(cidr)
    except DockyardError as exc:
        raise fail(exc) from exc


def _pool_list(state_dir: Path, run_dir: Path, instance: str) -> None:
    try:
        listed = admin_client(state_dir, run_dir, instance).ip_pools()
    except DockyardError as exc:
        raise fail(exc) from exc
    table(
        ["CIDR", "SIZE", "HELD", "CREATED"],
        [[p["cidr"], p["size"], p["held"], when(p["created"])] for p in listed],
    )


@admin_ip_pool.command("ls")
@layout_options
def admin_ip_pool_ls(state_dir: Path, run_dir: Path, instance: str) -> None:
    """The ranges, with how many addresses each hands out and how many tenants hold."""
    _pool_list(state_dir, run_dir, instance)


@admin_ip_pool.command("rm")
@click.argument("cidr")
@layout_options
def admin_ip_pool_rm(cidr: str, state_dir: Path, run_dir: Path, instance: str) -> None:
    """Remove a range no tenant holds an address of (refused otherwise)."""
    try:
        admin_client(state_dir, run_dir, instance).remove_ip_pool(cidr)
    except DockyardError as exc:
        raise fail(exc) from exc
