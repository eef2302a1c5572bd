"""Query-string values, read the way Docker's daemon reads them."""

from __future__ import annotations

from aiohttp import web

from dockyard.core.errors import InvalidArgument

__all__ = ["flag", "query_int"]


def flag(request: web.Request, name: str) -> bool:
    """Docker's boolean query values: absent, "", "0", "no", "false", "none" are false."""
    value = request.query.get(name, "")
    return value.strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: web.Request, name: str, default: int = 0) -> int:
    """An integer query value; absent or empty is ``default``, anything else not an int is 400."""
    value = request.query.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None
