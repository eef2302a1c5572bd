"""``dockyard info``, ``dockyard usage [check]`` and ``dockyard admin plan|quota``.

Tenants see their plan, the container sizes and their use against their quotas on the
Docker endpoint (with the token from the docker config); the operator sees and sets any
tenant's plan and limits on the controller's internal socket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dockyard.cli.common import (
    admin_client,
    config_option,
    endpoint,
    fail,
    host_option,
    layout_options,
    logged_in,
    table,
)
from dockyard.cli.identity import admin
from dockyard.client.native import NativeClient
from dockyard.core.errors import DockyardError, InvalidArgument
from dockyard.core.quotas import BYTE_QUOTAS, QUOTAS, UNLIMITED, amount_text, parse_limit
from dockyard.core.units import format_bytes, parse_bytes

__all__ = ["info", "plan", "quota", "usage"]

F = TypeVar("F", bound=Callable[..., Any])


def _client(config_dir: Path | None, host: str | None) -> NativeClient:
    """As the login commands: TLS with the client certificate where docker would use it."""
    return logged_in(host, config_dir)


def _percent(used: int, limit: int) -> str:
    if limit == UNLIMITED:
        return ""
    if limit == 0:
        return "100%" if used else "0%"
    return f"{100 * used / limit:.0f}%"


def _quota_table(report: dict[str, Any]) -> None:
    table(
        ["QUOTA", "USED", "LIMIT", "USE"],
        [
            [
                q["quota"],
                amount_text(q["quota"], q["used"]),
                amount_text(q["quota"], q["limit"]),
                _percent(q["used"], q["limit"]),
            ]
            for q in report["quotas"]
        ],
    )


def _hosts_table(report: dict[str, Any]) -> None:
    rows = []
    for h in report["hosts"]:
        if h.get("error"):
            rows.append([h["name"], "", "", "", "", "", f"not answering: {h['error']}"])
            continue
        measured = h.get("measured", 0)
        rows.append(
            [
                h["name"],
                h["containers_running"],
                format_bytes(h["memory"]),
                f"{h['cpu'] / 1e9:.1f}s",
                format_bytes(h["writable"]),
                format_bytes(h["volumes"]),
                time.strftime("%H:%M:%S", time.gmtime(measured / 1e9)) if measured else "not yet",
            ]
        )
    table(["HOST", "RUNNING", "MEMORY IN USE", "CPU TIME", "WRITABLE", "VOLUMES", "MEASURED"], rows)


def _show(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    overrides = report.get("overrides") or {}
    click.echo(f"tenant {report['tenant']['name']}, plan {report['plan']}")
    if overrides:
        changed = ", ".join(f"{q} {amount_text(q, v)}" for q, v in sorted(overrides.items()))
        click.echo(f"overridden: {changed}")
    click.echo()
    _quota_table(report)
    if report["hosts"]:
        click.echo()
        _hosts_table(report)


# tenants ---------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@config_option
@host_option
@click.pass_context
def usage(ctx: click.Context, as_json: bool, config_dir: Path | None, host: str | None) -> None:
    """Your use against your quotas, and your accounting on each host."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        report = _client(config_dir, host).usage()
    except DockyardError as exc:
        raise fail(exc) from exc
    _show(report, as_json)


@usage.command("check")
@click.option("--size", "sizes", multiple=True, help="a container of this size (repeatable)")
@click.option("--memory", "memories", multiple=True, help="a container with -m SIZE (repeatable)")
@click.option("--count", default=0, help="that many of each container (default 1)")
@click.option("--volumes", default=0, help="new volumes")
@click.option("--public-ips", default=0, help="new public IPs")
@click.option("--image-storage", default="0", help="new image layer bytes (e.g. 200m)")
@config_option
@host_option
def usage_check(  # noqa: PLR0917  (click passes options positionally)
    sizes: tuple[str, ...],
    memories: tuple[str, ...],
    count: int,
    volumes: int,
    public_ips: int,
    image_storage: str,
    config_dir: Path | None,
    host: str | None,
) -> None:
    """Would this fit? Exits 1, naming each quota it would pass, if not."""
    try:
        described: list[dict[str, Any]] = [{"size": s} for s in sizes]
        described += [{"memory": parse_bytes(m)} for m in memories]
        if not described and count:
            described = [{}]  # containers of the default size
        described = described * max(count, 1)
        answer = _client(config_dir, host).check_usage(
            containers=described,
            volumes=volumes,
            public_ips=public_ips,
            image_storage=parse_bytes(image_storage),
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    if answer["fits"]:
        click.echo("fits")
        return
    click.echo(answer["message"], err=True)
    raise SystemExit(1)


@click.command()
@config_option
@host_option
def info(config_dir: Path | None, host: str | None) -> None:
    """Who you are, your plan, and the container sizes."""
    try:
        client = _client(config_dir, host)
        who = client.whoami()
        report = client.usage()
        sizes = client.sizes()
        namespaces = [n["name"] for n in client.namespaces()]
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(f"endpoint: {endpoint(host)}")
    click.echo(f"tenant:   {who['tenant']['name']}")
    click.echo(f"registry namespaces: {', '.join(namespaces) or 'none'}")
    click.echo(f"user:     {who['user']['name']} ({who['user']['role']})")
    click.echo(f"plan:     {report['plan']}")
    click.echo()
    table(
        ["SIZE", "MEMORY", "CPU SHARES", "WRITABLE LAYER", ""],
        [
            [
                s["name"],
                format_bytes(s["memory"]),
                s["cpu_shares"],
                format_bytes(s["writable"]),
                "default" if s["default"] else "",
            ]
            for s in sizes
        ],
    )
    click.echo()
    click.echo("Choose one with --label dockyard.size=NAME or -m (rounded up to a size).")


# the operator ----------------------------------------------------------------------------


@admin.group()
def plan() -> None:
    """Plans: named sets of quota limits."""


@plan.command("list")
@layout_options
def plan_list(state_dir: Path, run_dir: Path, instance: str) -> None:
    try:
        listed = admin_client(state_dir, run_dir, instance).plans()
    except DockyardError as exc:
        raise fail(exc) from exc
    table(
        ["PLAN", *[q.upper() for q in QUOTAS], "DESCRIPTION"],
        [
            [
                p["name"] + (" (default)" if p["default"] else ""),
                *[amount_text(q, p["limits"][q]) for q in QUOTAS],
                p["description"],
            ]
            for p in listed
        ],
    )


@admin.group()
def quota() -> None:
    """Tenants' plans and limits."""


@quota.command("show")
@click.argument("tenant_name")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@layout_options
def quota_show(
    tenant_name: str, as_json: bool, state_dir: Path, run_dir: Path, instance: str
) -> None:
    """A tenant's plan, limits and use."""
    try:
        report = admin_client(state_dir, run_dir, instance).quota(tenant_name)
    except DockyardError as exc:
        raise fail(exc) from exc
    _show(report, as_json)


def _limit_option(name: str, what: str) -> Callable[[F], F]:
    unit = "a size such as 4g" if name in BYTE_QUOTAS else "a number"
    return click.option(
        f"--{name.replace('_', '-')}",
        name,
        default=None,
        help=f"{what}: {unit}, or 'unlimited'",
    )


@quota.command("set")
@click.argument("tenant_name")
@click.option("--plan", "plan_name", default="", help="move the tenant to this plan")
@_limit_option("memory", "memory of its containers")
@_limit_option("containers", "containers")
@_limit_option("volumes", "volumes")
@_limit_option("volume_storage", "bytes in its volumes")
@_limit_option("public_ips", "public IPs")
@_limit_option("image_storage", "bytes of its image layers")
@click.option(
    "--reset",
    multiple=True,
    help="drop an override, back to the plan's limit (a quota's name, or 'all'; repeatable)",
)
@layout_options
def quota_set(  # noqa: PLR0917  (click passes options positionally)
    tenant_name: str,
    plan_name: str,
    memory: str | None,
    containers: str | None,
    volumes: str | None,
    volume_storage: str | None,
    public_ips: str | None,
    image_storage: str | None,
    reset: tuple[str, ...],
    state_dir: Path,
    run_dir: Path,
    instance: str,
) -> None:
    """Set a tenant's plan and override single limits; shows the result."""
    given = {
        "memory": memory,
        "containers": containers,
        "volumes": volumes,
        "volume_storage": volume_storage,
        "public_ips": public_ips,
        "image_storage": image_storage,
    }
    try:
        limits: dict[str, int | str] = {
            q: parse_limit(q, v) for q, v in given.items() if v is not None
        }
        if not (plan_name or limits or reset):
            raise InvalidArgument("nothing to set: give --plan, a limit or --reset")
        report = admin_client(state_dir, run_dir, instance).set_quota(
            tenant_name, plan=plan_name, limits=limits, reset=list(reset)
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    _show(report, as_json=False)
