"""Reading Docker's JSON request bodies with type checks and Docker-style messages."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockyard.core.errors import InvalidArgument

__all__ = [
    "get_bool",
    "get_int",
    "get_list",
    "get_map",
    "get_str",
    "get_str_list",
    "get_str_map",
    "read_json",
]

_MAX_BODY = 16 * 1024 * 1024


async def read_json(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; 400 for anything else."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > _MAX_BODY:
            raise InvalidArgument("request body is too large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if empty_ok:
            return {}
        raise InvalidArgument("invalid JSON: request body is empty")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid JSON: {exc}") from exc
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("invalid JSON: the request body must be an object")
    return data


def _where(key: str, where: str) -> str:
    return f"{where}.{key}" if where else key


def get_str(body: dict[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid type for {_where(key, where)}: expected a string")
    return value


def get_bool(body: dict[str, Any], key: str, where: str = "") -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgument(f"invalid type for {_where(key, where)}: expected a boolean")
    return value


def get_int(body: dict[str, Any], key: str, where: str = "", *, default: int = 0) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"invalid type for {_where(key, where)}: expected an integer")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidArgument(f"invalid value for {_where(key, where)}: expected an integer")
    number = int(value)
    if abs(number) > (1 << 63) - 1:
        raise InvalidArgument(f"invalid value for {_where(key, where)}: out of range")
    return number


def get_str_list(
    body: dict[str, Any], key: str, where: str = "", *, lone_string: bool = False
) -> tuple[str, ...] | None:
    """A list of strings, None when absent or null. ``lone_string`` accepts a single string
    as a one-element list, as Docker's ``strslice`` does for Cmd, Entrypoint and Shell."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str) and lone_string:
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid type for {_where(key, where)}: expected a list of strings")
    return tuple(value)


def get_list(body: dict[str, Any], key: str, where: str = "") -> list[Any] | None:
    """A JSON array, None when absent or null."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidArgument(f"invalid type for {_where(key, where)}: expected a list")
    return value


def get_map(body: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid type for {_where(key, where)}: expected an object")
    return value


def get_str_map(body: dict[str, Any], key: str, where: str = "") -> dict[str, str]:
    value = get_map(body, key, where)
    if not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(
            f"invalid type for {_where(key, where)}: expected an object of strings"
        )
    return dict(value)
