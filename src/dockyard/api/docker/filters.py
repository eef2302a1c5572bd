"""Docker's ``filters`` query parameter: ``{"key": ["v1", "v2"]}`` (or the older
``{"key": {"v1": true}}``), validated against the keys an endpoint accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from dockyard.core.errors import InvalidArgument

__all__ = ["Filters", "labels_match", "name_pattern", "parse_filters"]

_SAFE_REGEX = re.compile(r"^\^?(?:[A-Za-z0-9_./-]\*?)*\$?$")
_MAX_PATTERN = 256


class Filters:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def get(self, key: str) -> list[str]:
        return self._values.get(key, [])

    def has(self, key: str) -> bool:
        return bool(self._values.get(key))

    def one(self, key: str) -> str:
        values = self.get(key)
        if len(values) > 1:
            raise InvalidArgument(f"filter '{key}' accepts one value, got {len(values)}")
        return values[0] if values else ""

    def bool(self, key: str) -> bool | None:
        value = self.one(key)
        if not value:
            return None
        if value.lower() in ("1", "true"):
            return True
        if value.lower() in ("0", "false"):
            return False
        raise InvalidArgument(f"invalid filter '{key}={value}'")


def parse_filters(raw: str, allowed: Iterable[str]) -> Filters:
    if not raw:
        return Filters({})
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filter: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filter: expected a JSON object")
    keys = set(allowed)
    values: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in keys:
            raise InvalidArgument(f"invalid filter '{key}'")
        if isinstance(value, dict):
            values[key] = [str(k) for k, v in value.items() if v]
        elif isinstance(value, list):
            values[key] = [str(v) for v in value]
        elif isinstance(value, str):
            values[key] = [value]
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return Filters(values)


def name_pattern(pattern: str) -> re.Pattern[str]:
    """Docker's ``name`` filter is a regular expression; Dockyard accepts the subset that
    cannot backtrack catastrophically (characters of names, ``/``, ``.``, ``*`` after one
    of them, ``^`` and ``$``), so a tenant's filter can never stall the shared controller.
    Docker matches it against the name with and without its leading ``/`` (``^/web$`` and
    ``^web$`` both find ``web``); callers do the same."""
    if len(pattern) > _MAX_PATTERN or not _SAFE_REGEX.match(pattern):
        raise InvalidArgument(
            f"name filter {pattern!r}: only name characters, '/', '.', '*', '^' and '$' are "
            "supported in patterns"
        )
    return re.compile(pattern)


def labels_match(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """Docker's ``label`` filter: every ``key`` is present and every ``key=value`` equal."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
