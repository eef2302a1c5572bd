"""``dockyard images`` (the tenant's registry repositories), ``dockyard images rm``,
``dockyard cpi SRC DST`` and the operator's ``dockyard images seed`` and ``dockyard admin
registry gc`` (ADR 0021).

References name repositories of the cloud's registry: ``ns/app:tag``, the same with the
registry's address in front (``127.0.0.1:5000/ns/app:tag``), or a curated name
(``busybox``, ``alpine:3.10``).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from dockyard.cli.common import (
    admin_client,
    config_option,
    fail,
    host_option,
    layout_options,
    logged_in,
    table,
)
from dockyard.cli.identity import admin
from dockyard.core.errors import DockyardError
from dockyard.core.humanize import human_duration
from dockyard.core.units import format_bytes

__all__ = ["admin_registry", "cpi", "images"]


def _ago(ns: int) -> str:
    if not ns:
        return ""
    return f"{human_duration(max(time.time() - ns / 1e9, 0))} ago"


@click.group(invoke_without_command=True)
@click.option("--curated", is_flag=True, help="the curated public images instead of yours")
@click.option("--digests", is_flag=True, help="show each tag's manifest digest")
@config_option
@host_option
@click.pass_context
def images(
    ctx: click.Context, curated: bool, digests: bool, config_dir: Path | None, host: str | None
) -> None:
    """Your tenant's repositories in the cloud's registry, with their tags, sizes and
    when each tag was pushed."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        listed = logged_in(host, config_dir).repositories(curated=curated)
    except DockyardError as exc:
        raise fail(exc) from exc
    columns = ["REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "SIZE", "PUSHED"]
    rows = []
    for repo in listed:
        name = repo["name"].removeprefix("library/") if curated else repo["reference"]
        for tag in repo["tags"]:
            digest = [tag["digest"]] if digests else []
            rows.append([name, tag["tag"], *digest, format_bytes(tag["size"]), _ago(tag["pushed"])])
    table(columns, rows)


@images.command("rm")
@click.argument("refs", nargs=-1, required=True)
@config_option
@host_option
def images_rm(refs: tuple[str, ...], config_dir: Path | None, host: str | None) -> None:
    """Delete tags (``ns/app:tag``: the manifest too once no tag is left on it) or
    manifests (``ns/app@sha256:...``: with their tags) from the registry."""
    client = logged_in(host, config_dir)
    failed = None
    for ref in refs:
        try:
            for deleted in client.delete_image(ref):
                click.echo(f"Deleted: {deleted}")
        except DockyardError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = exc
    if failed is not None:
        raise fail(failed)


@images.command("seed")
@layout_options
def images_seed(state_dir: Path, run_dir: Path, instance: str) -> None:
    """Publish the curated set (busybox-based stand-ins for busybox, alpine and
    hello-world, built from Debian's busybox-static) to ``library`` (the operator)."""
    try:
        published = admin_client(state_dir, run_dir, instance).seed_images()
    except DockyardError as exc:
        raise fail(exc) from exc
    for ref in published:
        click.echo(ref)


@click.command()
@click.argument("source")
@click.argument("destination")
@config_option
@host_option
def cpi(source: str, destination: str, config_dir: Path | None, host: str | None) -> None:
    """Copy an image between registry repositories (SOURCE: any image you may pull;
    DESTINATION: a tag in one of your namespaces)."""
    try:
        copied = logged_in(host, config_dir).copy_image(source, destination)
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(f"{copied['destination']}: digest: {copied['digest']}")


@admin.group("registry")
def admin_registry() -> None:
    """The cloud's registry."""


@admin_registry.command("gc")
@click.option(
    "--grace",
    type=float,
    default=None,
    help="keep unreferenced blobs younger than this many seconds (default 3600)",
)
@layout_options
def admin_registry_gc(grace: float | None, state_dir: Path, run_dir: Path, instance: str) -> None:
    """Reclaim the space of blobs no manifest references; pushes wait while it sweeps."""
    try:
        report = admin_client(state_dir, run_dir, instance).registry_gc(grace=grace)
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(
        f"deleted {report['blobs_deleted']} blobs ({format_bytes(report['bytes_freed'])}), "
        f"kept {report['blobs_kept']} younger than the grace period"
    )
