"""TLS client certificates: fetched by ``dockyard login``, listed and revoked with
``dockyard cert`` (yours) and ``dockyard admin cert`` (the operator's).

The key is made on this machine and only a certificate request goes to the server. The
files land where ``docker --tlsverify`` looks (``$DOCKER_CERT_PATH``, by default the
docker config directory).
"""

from __future__ import annotations

import datetime
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
from dockyard.client.certs import CertFiles, make_key_request, write_cert_files
from dockyard.client.native import NativeClient
from dockyard.core.errors import DockyardError

__all__ = ["admin_cert", "cert", "ensure_local_cert", "fetch_cert"]

_RENEW_BEFORE = datetime.timedelta(days=7)


def fetch_cert(client: NativeClient, directory: Path, *, ttl: int = 0) -> dict[str, Any] | None:
    """Fetch a certificate for a new key into ``directory`` and say so on stderr; on
    refusal (a token without the ``write`` scope, another CA's files there) say why and
    return None: the token login stands either way."""
    request = make_key_request()
    try:
        made = client.create_cert(request.csr_pem, ttl=ttl)
        write_cert_files(
            CertFiles(directory),
            key_pem=request.key_pem,
            cert_pem=made["certificate"],
            ca_pem=made["ca"],
        )
    except DockyardError as exc:
        click.echo(f"No client certificate: {exc.message}", err=True)
        return None
    click.echo(
        f"Client certificate {made['serial']} until {when(made['expires'])} UTC in {directory}",
        err=True,
    )
    if made.get("endpoint"):
        click.echo(
            f"TLS: DOCKER_HOST={made['endpoint']} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={directory}",
            err=True,
        )
    return made


def ensure_local_cert(client: NativeClient, directory: Path, *, renew: bool) -> bool:
    """Keep a working certificate in ``directory`` (the embedded cloud's local admin):
    fetch one when ``renew``, when there is none, or when it expires within a week.
    Whether there is one; a failure is a warning on stderr (the token login stands, and a
    controller started by an older Dockyard has no certificates to give)."""
    files = CertFiles(directory)
    expires = files.expires()
    soon = datetime.datetime.now(datetime.UTC) + _RENEW_BEFORE
    if not renew and files.present() and expires is not None and expires > soon:
        return True
    request = make_key_request()
    try:
        made = client.create_cert(request.csr_pem)
        write_cert_files(
            files, key_pem=request.key_pem, cert_pem=made["certificate"], ca_pem=made["ca"]
        )
    except DockyardError as exc:
        click.echo(f"No client certificate for the local admin: {exc.message}", err=True)
        return False
    return True


def _cert_table(listed: list[dict[str, Any]]) -> None:
    table(
        ["SERIAL", "USER", "SCOPES", "CREATED", "EXPIRES", "REVOKED", "TOKEN"],
        [
            [
                c["serial"],
                c["user"][:12],
                ",".join(c["scopes"]),
                when(c["created"]),
                when(c["expires"]),
                when(c["revoked"]) if c["revoked"] else "",
                c["token"],
            ]
            for c in listed
        ],
    )


@click.group()
def cert() -> None:
    """Your TLS client certificates."""


@cert.command("list")
@config_option
@host_option
def cert_list(config_dir: Path | None, host: str | None) -> None:
    """Your certificates (all of the tenant's with the admin scope)."""
    try:
        listed = logged_in(host, config_dir).certs()
    except DockyardError as exc:
        raise fail(exc) from exc
    _cert_table(listed)


@cert.command("revoke")
@click.argument("serial")
@config_option
@host_option
def cert_revoke(serial: str, config_dir: Path | None, host: str | None) -> None:
    """Revoke one of your certificates (any of the tenant's with the admin scope)."""
    try:
        logged_in(host, config_dir).revoke_cert(serial)
    except DockyardError as exc:
        raise fail(exc) from exc


@admin.group("cert")
def admin_cert() -> None:
    """Client certificates of a tenant's users."""


@admin_cert.command("list")
@click.argument("tenant_name")
@click.option("--user", "user_name", default="")
@layout_options
def admin_cert_list(
    tenant_name: str, user_name: str, state_dir: Path, run_dir: Path, instance: str
) -> None:
    try:
        listed = admin_client(state_dir, run_dir, instance).certs(tenant_name, user=user_name)
    except DockyardError as exc:
        raise fail(exc) from exc
    _cert_table(listed)


@admin_cert.command("revoke")
@click.argument("tenant_name")
@click.argument("serial")
@layout_options
def admin_cert_revoke(
    tenant_name: str, serial: str, state_dir: Path, run_dir: Path, instance: str
) -> None:
    """Revoke a certificate; the next call made with it is 401."""
    try:
        admin_client(state_dir, run_dir, instance).revoke_cert(tenant_name, serial)
    except DockyardError as exc:
        raise fail(exc) from exc
