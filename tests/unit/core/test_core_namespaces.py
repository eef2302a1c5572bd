"""core.namespaces: which names can be registry namespaces."""

from __future__ import annotations

import pytest

import dockyard.core.namespaces
from dockyard.core.errors import InvalidArgument
from dockyard.core.namespaces import ALWAYS_RESERVED, validate_namespace
from dockyard.core.reference import parse_reference


@pytest.mark.parametrize(
    "name",
    ["acme", "a1b2", "team_web", "a__b", "0000", "x" * 30, "my_team_2", "library"],
)
def test_valid_names(name: str) -> None:
    assert validate_namespace(name) == name
    # Every valid name can begin an image reference (what the registry will need).
    assert parse_reference(f"{name}/app:1").path == f"{name}/app"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "abc",  # too short
        "x" * 31,  # too long
        "Acme",  # upper case
        "ac-me",
        "ac.me",
        "ac me",
        "acme/",
        "_acme",  # not at either end: no image reference could use it
        "acme_",
        "a___b",  # three in a row neither
        "____",
        "acmé",
        "acme\n",
    ],
)
def test_invalid_names_say_what_a_name_is(name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"invalid namespace .*4 to 30 of \[a-z0-9_\]"):
        validate_namespace(name)


def test_library_is_always_reserved() -> None:
    assert "library" in ALWAYS_RESERVED


def test_public_surface() -> None:
    assert set(dockyard.core.namespaces.__all__) == {
        "ALWAYS_RESERVED",
        "CURATED_NAMESPACE",
        "MAX_NAME",
        "MIN_NAME",
        "Namespace",
        "validate_namespace",
    }
