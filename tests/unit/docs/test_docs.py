"""The docs say what the code does: every endpoint, command and option is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import dockyard.wire  # noqa: F401  (before aiohttp)
from dockyard.api import (
    admin,
    certs,
    namespaces,
    native,
    public_ips,
    repositories,
    security_groups,
)
from dockyard.api.docker.app import ROUTE_TABLES
from dockyard.cli.main import main as cli
from dockyard.daemon.agent import build_parser as agent_parser
from dockyard.daemon.controller import build_parser as controller_parser

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _routes() -> list[tuple[str, str]]:
    found = []
    for table in ROUTE_TABLES:
        for route in table:
            path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)  # type: ignore[union-attr]
            found.append((route.method, path))  # type: ignore[union-attr]
    return found


@pytest.mark.parametrize(("method", "path"), _routes())
def test_every_docker_endpoint_is_documented(method: str, path: str) -> None:
    text = (DOCS / "docker-api.md").read_text()
    pattern = re.escape(method) + r"[ ,A-Z]*`?\s*" + re.escape(path)
    documented = re.search(r"`" + re.escape(method) + " " + re.escape(path), text) or any(
        method in line and path.rsplit("/", 1)[-1] in line and path.split("/")[1] in line
        for line in text.splitlines()
        if line.startswith("|")
    )
    assert documented, f"{method} {path} is served but not in docs/docker-api.md ({pattern})"


def _native_routes() -> list[tuple[str, str]]:
    tables = (
        native.routes,
        certs.routes,
        namespaces.routes,
        security_groups.routes,
        public_ips.routes,
        repositories.routes,
    )
    return [
        (r.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", r.path))  # type: ignore[union-attr]
        for table in tables
        for r in table
    ]


@pytest.mark.parametrize(("method", "path"), _native_routes())
def test_every_native_endpoint_is_documented(method: str, path: str) -> None:
    text = (DOCS / "native-api.md").read_text()
    assert f"`{method} {path}`" in text, f"{method} {path} is served but not in native-api.md"


def test_every_admin_endpoint_is_documented() -> None:
    text = (DOCS / "native-api.md").read_text()
    for route in [
        *admin.routes,
        *certs.admin_routes,
        *namespaces.admin_routes,
        *public_ips.admin_routes,
        *repositories.admin_routes,
    ]:
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)  # type: ignore[union-attr]
        assert path in text, f"{path} is served on the internal socket but not documented"


def _cli_items() -> list[str]:
    items = []
    assert isinstance(cli, click.Group)
    for name, command in cli.commands.items():
        items.append(f"dockyard {name}")
        items.extend(opt for param in command.params for opt in param.opts if opt.startswith("--"))
    return sorted(set(items))


@pytest.mark.parametrize("item", _cli_items())
def test_every_cli_command_and_option_is_documented(item: str) -> None:
    assert f"`{item}" in (DOCS / "cli.md").read_text(), f"{item} missing from docs/cli.md"


def _daemon_options() -> list[str]:
    options = set()
    for parser in (agent_parser(), controller_parser()):
        for action in parser._actions:
            options.update(o for o in action.option_strings if o.startswith("--") and o != "--help")
    return sorted(options)


@pytest.mark.parametrize("option", _daemon_options())
def test_every_daemon_option_is_documented(option: str) -> None:
    text = (DOCS / "configuration.md").read_text()
    assert f"`{option}" in text, f"{option} missing from docs/configuration.md"


def test_every_adr_has_a_status() -> None:
    for adr in sorted((DOCS / "adr").glob("*.md")):
        assert "Status:" in adr.read_text(), adr.name
