"""``dockyard sg``: your tenant's security groups, their ingress rules, and which
containers are in them (docs/native-api.md#security-groups).

Tables for people, ``--json`` for scripts. A change whose new network spec some agent has
not taken yet says so on stderr (the controller retries it in the background).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dockyard.cli.common import config_option, fail, host_option, logged_in, table, when
from dockyard.client.native import NativeClient
from dockyard.core.errors import DockyardError

__all__ = ["sg"]


def _client(config_dir: Path | None, host: str | None) -> NativeClient:
    return logged_in(host, config_dir)


def _ports(rule: dict[str, Any]) -> str:
    low, high = rule["port_min"], rule["port_max"]
    if rule["protocol"] not in ("tcp", "udp"):
        return "-"
    if (low, high) == (1, 65535):
        return "all"
    return str(low) if low == high else f"{low}-{high}"


def _source(rule: dict[str, Any]) -> str:
    if rule["source_group"]:
        return f"group {rule['source_group_name'] or rule['source_group'][:12]}"
    return str(rule["source"])


def _rules_table(rules: list[dict[str, Any]]) -> None:
    table(
        ["RULE", "PROTOCOL", "PORTS", "SOURCE"],
        [[r["id"][:12], r["protocol"], _ports(r), _source(r)] for r in rules],
    )


def _warn_unapplied(unapplied: list[str]) -> None:
    if unapplied:
        shown = ", ".join(c[:12] for c in unapplied)
        click.echo(
            f"warning: not applied yet to container(s) {shown} (agent unreachable); "
            "Dockyard retries in the background",
            err=True,
        )


def _parse_ports(text: str) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    low, sep, high = text.partition("-")
    if not low.isdecimal() or (sep and not high.isdecimal()):
        raise click.BadParameter(f"{text!r}: PORT or MIN-MAX", param_hint="--port")
    return int(low), int(high) if sep else int(low)


def _labels(items: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r}: KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


@click.group()
def sg() -> None:
    """Security groups: what may reach your containers from outside their networks."""


@sg.command("create")
@click.argument("name")
@click.option("--description", default="", help="what the group is for")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE (repeatable)")
@config_option
@host_option
def sg_create(
    name: str,
    description: str,
    labels: tuple[str, ...],
    config_dir: Path | None,
    host: str | None,
) -> None:
    """Make a group without rules; prints its id."""
    try:
        made = _client(config_dir, host).create_security_group(
            name, description=description, labels=_labels(labels)
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(made["id"])


@sg.command("ls")
@click.option("--container", default="", help="only the groups this container is in")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@config_option
@host_option
def sg_ls(container: str, as_json: bool, config_dir: Path | None, host: str | None) -> None:
    """Your tenant's groups."""
    client = _client(config_dir, host)
    try:
        groups = client.security_groups()
        if container:
            chosen = {
                g["id"] for g in client.container_security_groups(container)["security_groups"]
            }
            groups = [g for g in groups if g["id"] in chosen]
    except DockyardError as exc:
        raise fail(exc) from exc
    if as_json:
        click.echo(json.dumps(groups, indent=2))
        return
    table(
        ["NAME", "ID", "RULES", "CREATED", "DESCRIPTION"],
        [
            [
                g["name"] + (" (default)" if g["default"] else ""),
                g["id"][:12],
                len(g["rules"]),
                when(g["created"]),
                g["description"],
            ]
            for g in groups
        ],
    )


@sg.command("inspect")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@config_option
@host_option
def sg_inspect(name: str, as_json: bool, config_dir: Path | None, host: str | None) -> None:
    """A group: its rules and the containers in it."""
    try:
        group = _client(config_dir, host).security_group(name)
    except DockyardError as exc:
        raise fail(exc) from exc
    if as_json:
        click.echo(json.dumps(group, indent=2))
        return
    click.echo(f"name:        {group['name']}{' (default)' if group['default'] else ''}")
    click.echo(f"id:          {group['id']}")
    if group["description"]:
        click.echo(f"description: {group['description']}")
    for key, value in sorted(group["labels"].items()):
        click.echo(f"label:       {key}={value}")
    click.echo(f"created:     {when(group['created'])} UTC")
    click.echo()
    if group["rules"]:
        _rules_table(group["rules"])
    else:
        click.echo("no rules: nothing from outside their networks reaches its containers")
    click.echo()
    members = group["containers"]
    click.echo("containers:  " + (", ".join(c["name"] for c in members) if members else "none"))


@sg.command("rm")
@click.argument("names", nargs=-1, required=True)
@config_option
@host_option
def sg_rm(names: tuple[str, ...], config_dir: Path | None, host: str | None) -> None:
    """Remove groups no container is in and no other group's rule names."""
    client = _client(config_dir, host)
    failed = []
    for name in names:
        try:
            client.remove_security_group(name)
        except DockyardError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed.append(name)
        else:
            click.echo(name)
    if failed:
        raise SystemExit(1)


@sg.group("rule")
def sg_rule() -> None:
    """A group's ingress rules."""


@sg_rule.command("add")
@click.argument("name")
@click.option(
    "--proto",
    "protocol",
    required=True,
    type=click.Choice(["tcp", "udp", "icmp", "all"], case_sensitive=False),
    help="the protocol let in",
)
@click.option("--port", default="", help="PORT or MIN-MAX, for tcp and udp (default: all)")
@click.option("--source", default="", help="from this IPv4 address or prefix (CIDR)")
@click.option("--source-group", default="", help="from the members of this group of yours")
@config_option
@host_option
def sg_rule_add(  # noqa: PLR0917  (click passes options positionally)
    name: str,
    protocol: str,
    port: str,
    source: str,
    source_group: str,
    config_dir: Path | None,
    host: str | None,
) -> None:
    """Let traffic into the group's containers; prints the rule's id."""
    if bool(source) == bool(source_group):
        raise click.UsageError("give exactly one of --source CIDR and --source-group GROUP")
    low, high = _parse_ports(port)
    try:
        made = _client(config_dir, host).add_security_group_rule(
            name,
            protocol=protocol.lower(),
            port_min=low,
            port_max=high,
            source=source,
            source_group=source_group,
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(made["id"][:12])
    _warn_unapplied(made["unapplied"])


@sg_rule.command("rm")
@click.argument("name")
@click.argument("rule")
@config_option
@host_option
def sg_rule_rm(name: str, rule: str, config_dir: Path | None, host: str | None) -> None:
    """Remove a rule (its id, or the start of it as listed)."""
    try:
        changed = _client(config_dir, host).remove_security_group_rule(name, rule)
    except DockyardError as exc:
        raise fail(exc) from exc
    _warn_unapplied(changed["unapplied"])


def _show_membership(changed: dict[str, Any]) -> None:
    names = ", ".join(g["name"] for g in changed["security_groups"]) or "none"
    click.echo(f"{changed['name']}: {names}")
    _warn_unapplied(changed["unapplied"])


@sg.command("attach")
@click.argument("container")
@click.argument("group")
@config_option
@host_option
def sg_attach(container: str, group: str, config_dir: Path | None, host: str | None) -> None:
    """Put a container (running or not) in a group; prints the groups it is in."""
    try:
        changed = _client(config_dir, host).attach_security_group(container, group)
    except DockyardError as exc:
        raise fail(exc) from exc
    _show_membership(changed)


@sg.command("detach")
@click.argument("container")
@click.argument("group")
@config_option
@host_option
def sg_detach(container: str, group: str, config_dir: Path | None, host: str | None) -> None:
    """Take a container out of a group; prints the groups it is left in."""
    try:
        changed = _client(config_dir, host).detach_security_group(container, group)
    except DockyardError as exc:
        raise fail(exc) from exc
    _show_membership(changed)
