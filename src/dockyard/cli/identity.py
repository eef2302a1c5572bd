"""``dockyard login|logout|whoami|token`` and ``dockyard admin tenant|user|token``.

Tenants' commands talk to the Docker endpoint with the token from the docker config
(``$DOCKER_CONFIG`` or ``--config-dir``); admin commands talk to the controller's
root-only internal socket. Commands that create a token print only the token on stdout,
so scripts can capture it: ``TOKEN=$(dockyard admin tenant create acme --user ann)``.
"""

from __future__ import annotations

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
    logged_in,
    native_client,
    table,
    when,
)
from dockyard.client.dockerconfig import clear_token, read_token, write_token
from dockyard.client.native import AdminClient, NativeClient
from dockyard.core.errors import DockyardError
from dockyard.core.layout import Layout

__all__ = ["admin", "login", "login_local", "logout", "token", "whoami"]


# tenants ---------------------------------------------------------------------------------


@click.command()
@click.option("--token", help="the token (asked for when not given)")
@click.option("--no-cert", is_flag=True, help="do not fetch a TLS client certificate")
@click.option(
    "--cert-ttl", default=0, help="client certificate lifetime in seconds (0: the longest)"
)
@click.option(
    "--cert-dir",
    type=click.Path(path_type=Path),
    help="where ca.pem, cert.pem and key.pem go (default: the docker config directory)",
)
@config_option
@host_option
def login(
    token: str | None,
    no_cert: bool,
    cert_ttl: int,
    cert_dir: Path | None,
    config_dir: Path | None,
    host: str | None,
) -> None:
    """Log in with a token: store it in the docker config so that docker and docker-py
    send it, and fetch a client certificate for ``docker --tlsverify``."""
    text = token or click.prompt("Token", hide_input=True)
    try:
        client = native_client(host, text, config_dir)
        who = client.whoami()
    except DockyardError as exc:
        raise fail(exc) from exc
    path = write_token(docker_config_dir(config_dir), text)
    click.echo(f"Logged in as {who['user']['name']} of {who['tenant']['name']} ({path})", err=True)
    if not no_cert:
        from dockyard.cli.certs import fetch_cert

        fetch_cert(client, cert_dir or docker_config_dir(config_dir), ttl=cert_ttl)


@click.command()
@config_option
@click.option(
    "--cert-dir",
    type=click.Path(path_type=Path),
    help="where the client certificate is (default: the docker config directory)",
)
def logout(config_dir: Path | None, cert_dir: Path | None) -> None:
    """Remove the token from the docker config, and the client certificate Dockyard
    issued (the certificate stays valid until it expires: revoke it first to end it)."""
    from dockyard.client.certs import CertFiles, remove_cert_files

    removed = clear_token(docker_config_dir(config_dir))
    removed = remove_cert_files(CertFiles(cert_dir or docker_config_dir(config_dir))) or removed
    click.echo("Logged out" if removed else "Not logged in", err=True)


@click.command()
@config_option
@host_option
def whoami(config_dir: Path | None, host: str | None) -> None:
    """Show the user, tenant and scopes of the current login."""
    try:
        client = logged_in(host, config_dir)
        who = client.whoami()
        namespaces = [n["name"] for n in client.namespaces()]
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(f"user:   {who['user']['name']} ({who['user']['role']})")
    click.echo(f"tenant: {who['tenant']['name']}")
    click.echo(f"namespaces: {', '.join(namespaces) or 'none (dockyard namespace set NAME)'}")
    click.echo(f"scopes: {', '.join(who['scopes'])}")
    click.echo(f"token:  {who['token']}")
    if who.get("certificate"):
        click.echo(f"cert:   {who['certificate']}")


@click.group()
def token() -> None:
    """Your API tokens."""


@token.command("list")
@config_option
@host_option
def token_list(config_dir: Path | None, host: str | None) -> None:
    try:
        listed = logged_in(host, config_dir).tokens()
    except DockyardError as exc:
        raise fail(exc) from exc
    _token_table(listed)


@token.command("create")
@click.option("--scope", "scopes", multiple=True, help="read, write or admin (repeatable)")
@click.option("--ttl", default=0, help="lifetime in seconds (0: no expiry)")
@click.option("--description", default="")
@config_option
@host_option
def token_create(
    scopes: tuple[str, ...], ttl: int, description: str, config_dir: Path | None, host: str | None
) -> None:
    """Make a token for yourself; prints it (the only time it is shown)."""
    try:
        made = logged_in(host, config_dir).create_token(
            scopes=list(scopes) or None, ttl=ttl, description=description
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(made["token"])


@token.command("revoke")
@click.argument("token_id")
@config_option
@host_option
def token_revoke(token_id: str, config_dir: Path | None, host: str | None) -> None:
    try:
        logged_in(host, config_dir).revoke_token(token_id)
    except DockyardError as exc:
        raise fail(exc) from exc


def _token_table(listed: list[dict[str, Any]]) -> None:
    table(
        ["ID", "USER", "SCOPES", "CREATED", "EXPIRES", "REVOKED", "DESCRIPTION"],
        [
            [
                t["id"],
                t["user"][:12],
                ",".join(t["scopes"]),
                when(t["created"]),
                when(t["expires"]),
                when(t["revoked"]) if t["revoked"] else "",
                t["description"],
            ]
            for t in listed
        ],
    )


# the operator ----------------------------------------------------------------------------


def login_local(layout: Layout) -> Path:
    """Log the embedded cloud's local admin in (``dockyard up``): keep a working token in
    ``layout.docker_config_dir``, else bootstrap the first tenant and write a new one; and
    keep a client certificate there, fetching one when it is missing, about to expire or
    was obtained with a replaced token."""
    from dockyard.cli.certs import ensure_local_cert

    config_dir = layout.docker_config_dir
    address = f"unix://{layout.docker_socket}"
    current = read_token(config_dir)
    if current:
        try:
            NativeClient(address, current).whoami()
        except DockyardError:
            pass  # revoked, expired, or another cloud's: make a new one
        else:
            ensure_local_cert(NativeClient(address, current), config_dir, renew=False)
            return config_dir
    made = AdminClient(f"unix://{layout.controller_socket}").bootstrap(
        tenant="default", user="admin"
    )
    write_token(config_dir, made["token"])
    ensure_local_cert(NativeClient(address, made["token"]), config_dir, renew=True)
    return config_dir


@click.group()
def admin() -> None:
    """Operator commands (root on the controller's host)."""


@admin.group()
def tenant() -> None:
    """Tenants."""


@tenant.command("create")
@click.argument("name")
@click.option("--user", default="admin", show_default=True, help="its first (admin) user")
@click.option("--plan", default="", help="its plan (default: the controller's default plan)")
@click.option("--seed-busybox", is_flag=True, help="give it busybox:latest")
@layout_options
def tenant_create(  # noqa: PLR0917  (click passes options positionally)
    name: str,
    user: str,
    plan: str,
    seed_busybox: bool,
    state_dir: Path,
    run_dir: Path,
    instance: str,
) -> None:
    """Create a tenant with an admin user; prints that user's token."""
    try:
        made = admin_client(state_dir, run_dir, instance).create_tenant(
            name, user=user, seed_busybox=seed_busybox, plan=plan
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(made["token"])


@tenant.command("list")
@layout_options
def tenant_list(state_dir: Path, run_dir: Path, instance: str) -> None:
    try:
        listed = admin_client(state_dir, run_dir, instance).tenants()
    except DockyardError as exc:
        raise fail(exc) from exc
    table(
        ["NAME", "ID", "PLAN", "UIDS"],
        [
            [t["name"], t["id"][:12], t.get("plan", ""), f"{t['uid_base']}+{t['uid_size']}"]
            for t in listed
        ],
    )


@tenant.command("rm")
@click.argument("name")
@layout_options
def tenant_rm(name: str, state_dir: Path, run_dir: Path, instance: str) -> None:
    """Remove a tenant that owns nothing any more."""
    try:
        admin_client(state_dir, run_dir, instance).remove_tenant(name)
    except DockyardError as exc:
        raise fail(exc) from exc


@admin.group()
def user() -> None:
    """Users of a tenant."""


@user.command("add")
@click.argument("tenant_name")
@click.argument("name")
@click.option("--role", type=click.Choice(["member", "admin"]), default="member")
@layout_options
def user_add(
    tenant_name: str, name: str, role: str, state_dir: Path, run_dir: Path, instance: str
) -> None:
    try:
        admin_client(state_dir, run_dir, instance).add_user(tenant_name, name, role=role)
    except DockyardError as exc:
        raise fail(exc) from exc


@user.command("list")
@click.argument("tenant_name")
@layout_options
def user_list(tenant_name: str, state_dir: Path, run_dir: Path, instance: str) -> None:
    try:
        listed = admin_client(state_dir, run_dir, instance).users(tenant_name)
    except DockyardError as exc:
        raise fail(exc) from exc
    table(
        ["NAME", "ROLE", "ID", "CREATED"],
        [[u["name"], u["role"], u["id"][:12], when(u["created"])] for u in listed],
    )


@user.command("rm")
@click.argument("tenant_name")
@click.argument("name")
@layout_options
def user_rm(tenant_name: str, name: str, state_dir: Path, run_dir: Path, instance: str) -> None:
    """Remove a user and revoke its tokens."""
    try:
        admin_client(state_dir, run_dir, instance).remove_user(tenant_name, name)
    except DockyardError as exc:
        raise fail(exc) from exc


@admin.group("token")
def admin_token() -> None:
    """Tokens of a tenant's users."""


@admin_token.command("create")
@click.argument("tenant_name")
@click.argument("user_name")
@click.option("--scope", "scopes", multiple=True, help="read, write or admin (repeatable)")
@click.option("--ttl", default=0, help="lifetime in seconds (0: no expiry)")
@click.option("--description", default="")
@layout_options
def admin_token_create(  # noqa: PLR0917  (click passes options positionally)
    tenant_name: str,
    user_name: str,
    scopes: tuple[str, ...],
    ttl: int,
    description: str,
    state_dir: Path,
    run_dir: Path,
    instance: str,
) -> None:
    """Make a token for a user; prints it."""
    try:
        made = admin_client(state_dir, run_dir, instance).issue_token(
            tenant_name, user_name, scopes=list(scopes) or None, ttl=ttl, description=description
        )
    except DockyardError as exc:
        raise fail(exc) from exc
    click.echo(made["token"])


@admin_token.command("list")
@click.argument("tenant_name")
@click.option("--user", "user_name", default="")
@layout_options
def admin_token_list(
    tenant_name: str, user_name: str, state_dir: Path, run_dir: Path, instance: str
) -> None:
    try:
        listed = admin_client(state_dir, run_dir, instance).tokens(tenant_name, user=user_name)
    except DockyardError as exc:
        raise fail(exc) from exc
    _token_table(listed)


@admin_token.command("revoke")
@click.argument("tenant_name")
@click.argument("token_id")
@layout_options
def admin_token_revoke(
    tenant_name: str, token_id: str, state_dir: Path, run_dir: Path, instance: str
) -> None:
    try:
        admin_client(state_dir, run_dir, instance).revoke_token(tenant_name, token_id)
    except DockyardError as exc:
        raise fail(exc) from exc
