"""Plain-data conversion for dataclasses, used by the store and the agent protocol.

``to_data`` turns a dataclass tree into JSON-compatible values; ``from_data`` rebuilds it
from the field types, so a message or record is declared once, as a dataclass. Supported
field types: ``None``, ``bool``, ``int``, ``float``, ``str``, enums whose values are
strings, dataclasses, ``list[X]``, ``tuple[X, ...]``, fixed ``tuple[X, Y]``,
``dict[str, X]`` and ``X | None``.
Unknown keys in input are ignored (newer peers may send more); missing keys take the
field's default.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, TypeVar, get_args, get_origin

from dockyard.core.errors import InvalidArgument

__all__ = ["from_data", "to_data"]

T = TypeVar("T")


def to_data(value: Any) -> Any:
    """Convert ``value`` (a dataclass tree) to dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


def from_data(cls: type[T], data: Any) -> T:
    """Build a ``cls`` from plain data; raise InvalidArgument when the shape is wrong."""
    return typing.cast(T, _convert(cls, data, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, data: Any, where: str) -> Any:  # noqa: PLR0912
    if tp is Any:
        return data
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, data, where)
            except InvalidArgument as exc:
                errors.append(exc.message)
        raise InvalidArgument("; ".join(errors) or f"{where}: unexpected null")
    if origin in (list, tuple):
        if not isinstance(data, list | tuple):
            raise InvalidArgument(f"{where}: expected a list, got {type(data).__name__}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(data):
                raise InvalidArgument(f"{where}: expected {len(args)} items, got {len(data)}")
            return tuple(
                _convert(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, data, strict=True))
            )
        items = [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        _, value_tp = get_args(tp)
        return {str(k): _convert(value_tp, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
        try:
            return tp(**kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"{where}: {exc}") from exc
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError as exc:
            raise InvalidArgument(f"{where}: {data!r} is not a valid {tp.__name__}") from exc
    if tp is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if tp is int and isinstance(data, bool):
        raise InvalidArgument(f"{where}: expected int, got bool")
    if isinstance(tp, type) and isinstance(data, tp):
        return data
    raise InvalidArgument(
        f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(data).__name__}"
    )
