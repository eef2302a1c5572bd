"""Docker's ``filters`` query parameter (api.docker.filters)."""

from __future__ import annotations

import json

import pytest

from dockyard.api.docker.filters import Filters, name_pattern, parse_filters
from dockyard.core.errors import InvalidArgument

KEYS = ("status", "label", "name", "dangling")


def test_empty_parameter_means_no_filters() -> None:
    filters = parse_filters("", KEYS)
    assert filters.get("status") == []
    assert not filters.has("status")
    assert filters.one("status") == ""
    assert filters.bool("dangling") is None


def test_list_shape() -> None:
    filters = parse_filters(json.dumps({"status": ["running", "exited"], "name": ["web"]}), KEYS)
    assert filters.get("status") == ["running", "exited"]
    assert filters.has("status")
    assert filters.one("name") == "web"
    assert filters.get("label") == []


def test_legacy_map_shape_keeps_true_entries() -> None:
    filters = parse_filters(json.dumps({"label": {"a=b": True, "c": False, "d": True}}), KEYS)
    assert filters.get("label") == ["a=b", "d"]


def test_empty_values_are_not_present() -> None:
    filters = parse_filters(json.dumps({"status": []}), KEYS)
    assert not filters.has("status")


def test_unknown_key_is_invalid_argument_naming_it() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filters(json.dumps({"colour": ["red"]}), KEYS)
    assert info.value.message == "invalid filter 'colour'"


@pytest.mark.parametrize("raw", ["{", "not json", "[1]", '"status"', "null", "3"])
def test_malformed_json(raw: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid filter"):
        parse_filters(raw, KEYS)


@pytest.mark.parametrize("value", [5, None, True])
def test_malformed_values(value: object) -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'status'"):
        parse_filters(json.dumps({"status": value}), KEYS)


def test_one_refuses_several_values() -> None:
    filters = Filters({"name": ["a", "b"]})
    with pytest.raises(InvalidArgument, match="accepts one value"):
        filters.one("name")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("TRUE", True), ("false", False), ("0", False), ("False", False)],
)
def test_bool(value: str, expected: bool) -> None:
    assert parse_filters(json.dumps({"dangling": [value]}), KEYS).bool("dangling") is expected


def test_bool_refuses_other_words() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=yes'"):
        parse_filters(json.dumps({"dangling": ["yes"]}), KEYS).bool("dangling")


@pytest.mark.parametrize(
    ("pattern", "name", "hit"),
    [
        ("web", "web", True),
        ("^web$", "web", True),
        ("^/web$", "/web", True),
        ("^/web$", "web", False),
        ("we.*b", "web-b", True),
        ("^db$", "web", False),
    ],
)
def test_name_patterns(pattern: str, name: str, hit: bool) -> None:
    assert bool(name_pattern(pattern).search(name)) is hit


@pytest.mark.parametrize("pattern", ["(a+)+$", "a|b", "[a-z]+", "a{1,9}", "x" * 257])
def test_name_patterns_that_could_backtrack_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="name filter"):
        name_pattern(pattern)
