"""``dockyard audit`` (a tenant's admin) and ``dockyard admin audit`` (the operator).

Both print the records newest first as a table (time in UTC, user, action, target, result)
or, with ``--json``, as the API gives them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dockyard.cli.common import (
    admin_client,
    config_option,
    docker_config_dir,
    fail,
    host_option,
    layout_options,
    native_client,
    table,
    when,
)
from dockyard.client.dockerconfig import read_token
from dockyard.core.errors import DockyardError

__all__ = ["admin_audit", "audit"]

_HEX_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
_MAX_ERROR = 72


def _query_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = (
        click.option(
            "--since", default="", help="from this time (Unix seconds, RFC 3339, or 10m, 24h ago)"
        ),
        click.option("--until", default="", help="up to this time (same forms as --since)"),
        click.option("--user", default="", help="one user's calls (name or id)"),
        click.option("--action", default="", help="actions starting with this (container_)"),
        click.option("--target", default="", help="objects named or made starting with this"),
        click.option("--result", default="", help="ok, error, or one HTTP status"),
        click.option("--limit", default=100, show_default=True, help="at most this many"),
        click.option("--json", "as_json", is_flag=True, help="print the records as JSON"),
    )
    for option in reversed(options):
        func = option(func)
    return func


def _show(records: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table(
        ["TIME", "USER", "ACTION", "TARGET", "RESULT"],
        [
            [
                when(r["time"]),
                r["user"] or "-",
                r["action"] or f"{r['method']} {r['path']}",
                _target(r),
                _result(r),
            ]
            for r in records
        ],
    )


def _short(ref: str) -> str:
    """A 64-hex id as Docker shows it (12 digits); anything else as it is."""
    return ref.removeprefix("sha256:")[:12] if _HEX_ID.match(ref) else ref


def _target(record: dict[str, Any]) -> str:
    target, created = _short(record["target"]), _short(record["created"])
    if created and created != target:
        return f"{target} -> {created}" if target else created
    return target or "-"


def _result(record: dict[str, Any]) -> str:
    status = record["status"]
    if not status:
        return f"no answer: {record['error']}" if record["error"] else "no answer"
    error = record["error"]
    if len(error) > _MAX_ERROR:
        error = error[: _MAX_ERROR - 3] + "..."
    return f"{status} {error}" if error else str(status)


@click.command()
@_query_options
@config_option
@host_option
def audit(
    *,
    since: str,
    until: str,
    user: str,
    action: str,
    target: str,
    result: str,
    limit: int,
    as_json: bool,
    config_dir: Path | None,
    host: str | None,
) -> None:
    """Your tenant's audit log: who changed what, and how it went (needs the admin
    scope)."""
    try:
        token = read_token(docker_config_dir(config_dir))
        records = native_client(host, token, config_dir).audit(
            since=since,
            until=until,
            user=user,
            action=action,
            target=target,
            result=result,
            limit=limit,
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    _show(records, as_json=as_json)


@click.command("audit")
@click.argument("tenant_name", required=False, default="")
@_query_options
@layout_options
def admin_audit(
    *,
    tenant_name: str,
    since: str,
    until: str,
    user: str,
    action: str,
    target: str,
    result: str,
    limit: int,
    as_json: bool,
    state_dir: Path,
    run_dir: Path,
    instance: str,
) -> None:
    """A tenant's audit log; without TENANT, the operator log (failed authentications)."""
    try:
        records = admin_client(state_dir, run_dir, instance).audit(
            tenant_name,
            since=since,
            until=until,
            user=user,
            action=action,
            target=target,
            result=result,
            limit=limit,
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    _show(records, as_json=as_json)
