"""core.registry: Docker token scopes, parsed and written back."""

from __future__ import annotations

import pytest

from dockyard.core import registry
from dockyard.core.errors import InvalidArgument
from dockyard.core.registry import CATALOG, Access, format_scope, parse_scope


def test_public_surface() -> None:
    assert set(registry.__all__) == {
        "CATALOG",
        "REGISTRY_SERVICE",
        "Access",
        "format_scope",
        "parse_scope",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:acme/app:pull", Access("repository", "acme/app", ("pull",))),
        ("repository:acme/app:pull,push", Access("repository", "acme/app", ("pull", "push"))),
        ("repository:acme/a/b/c:push", Access("repository", "acme/a/b/c", ("push",))),
        # a name with a registry host's port: type before the first colon, actions after
        # the last
        (
            "repository:localhost:5000/acme/app:pull",
            Access("repository", "localhost:5000/acme/app", ("pull",)),
        ),
        ("registry:catalog:*", CATALOG),
        ("repository:acme/app:*", Access("repository", "acme/app", ("*",))),
        ("repository:acme/app:", Access("repository", "acme/app", ())),
        (
            "repository:acme/app:pull,,pull, push",
            Access("repository", "acme/app", ("pull", "push")),
        ),
        ("repository(plugin):acme/app:pull", Access("repository(plugin)", "acme/app", ("pull",))),
    ],
)
def test_parse_scope(text: str, expected: Access) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize("text", ["", "repository", "repository:acme", ":acme/app:pull", "a::pull"])
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid scope"):
        parse_scope(text)


@pytest.mark.parametrize(
    "text",
    [
        "repository:acme/app:pull,push",
        "repository:localhost:5000/acme/app:pull",
        "registry:catalog:*",
    ],
)
def test_format_is_the_inverse_of_parse(text: str) -> None:
    assert format_scope(parse_scope(text)) == text


def test_access_as_a_token_claim() -> None:
    assert Access("repository", "acme/app", ("pull", "push")).as_claim() == {
        "type": "repository",
        "name": "acme/app",
        "actions": ["pull", "push"],
    }
