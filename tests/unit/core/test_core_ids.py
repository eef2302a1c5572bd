"""Object ids and Docker's name grammar (dockyard.core.ids)."""

from __future__ import annotations

import re

import pytest

from dockyard.core import ids
from dockyard.core.errors import InvalidArgument
from dockyard.core.ids import (
    ID_LENGTH,
    NAME_PATTERN,
    is_full_id,
    new_id,
    random_name,
    short_id,
    validate_name,
)


def test_public_surface() -> None:
    assert set(ids.__all__) == {
        "ID_LENGTH",
        "NAME_PATTERN",
        "is_full_id",
        "new_id",
        "random_name",
        "short_id",
        "validate_name",
    }


def test_new_ids_are_64_lowercase_hex_and_distinct() -> None:
    made = {new_id() for _ in range(200)}
    assert len(made) == 200
    for value in made:
        assert re.fullmatch(r"[0-9a-f]{64}", value)
        assert is_full_id(value)
    assert ID_LENGTH == 64


def test_short_id_is_dockers_twelve_digits() -> None:
    value = new_id()
    assert short_id(value) == value[:12]


@pytest.mark.parametrize(
    "text", ["", "a" * 63, "a" * 65, "A" * 64, "g" * 64, " " + "a" * 63, "sha256:" + "a" * 57]
)
def test_is_full_id_rejects_everything_else(text: str) -> None:
    assert not is_full_id(text)


def test_random_names_are_valid_adjective_noun_pairs() -> None:
    names = {random_name() for _ in range(300)}
    assert len(names) > 100, "names should vary"
    for name in names:
        assert re.fullmatch(r"[a-z]+_[a-z]+", name)
        assert validate_name(name) == name


@pytest.mark.parametrize("name", ["web", "a", "Web-1", "db.primary", "x_y", "0", "a" * 253])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name
    assert NAME_PATTERN.match(name)


def test_leading_slash_is_dropped() -> None:
    assert validate_name("/web") == "web"
    assert validate_name("/a.b_c-d") == "a.b_c-d"


@pytest.mark.parametrize(
    "name", ["", "/", "//web", "_web", ".web", "-web", "we b", "web/x", "web:1", "wéb", "a" * 254]
)
def test_invalid_names_use_dockers_message(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_name(name)
    assert info.value.message == (
        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )


def test_what_names_the_kind_of_object() -> None:
    with pytest.raises(InvalidArgument, match=r"^Invalid volume name \(a b\)"):
        validate_name("a b", what="volume")
