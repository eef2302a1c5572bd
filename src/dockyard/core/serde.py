"""Plain-data conversion for dataclasses, used by the store and the agent protocol.

``to_data`` turns a dataclass tree into JSON-compatible values; ``from_data`` rebuilds it
from the field types, so a message or record is declared once, as a dataclass. Supported
field types: ``None``, ``bool``, ``int``, ``float``, ``str``, enums whose values are
strings, dataclasses, ``list[X]``, ``tuple[X, ...]``, fixed ``tuple[X, Y]``,
``dict[str, X]`` and ``X | None``. Unknown keys in input are ignored (newer peers may send
more); missing keys take the field's default.

Both directions build one converter per type on first use and reuse it: records are
converted several times per request, and walking type hints each time cost more than the
SQL around it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, get_args, get_origin

from dockyard.core.errors import InvalidArgument

__all__ = ["from_data", "to_data"]

T = TypeVar("T")
Decoder = Callable[[Any, str], Any]
Encoder = Callable[[Any], Any]


# encoding --------------------------------------------------------------------------------


def to_data(value: Any) -> Any:
    """Convert ``value`` (a dataclass tree) to dicts, lists and scalars."""
    return _encoder(type(value))(value)  # type: ignore[arg-type]  # types are hashable


def _identity(value: Any) -> Any:
    return value


# Types that encode as themselves, tested by exact type (an enum deriving from str is not
# one): most values of a record are, and skipping the converter lookup for them makes
# encoding a container record about a third cheaper.
_PLAIN = frozenset({str, int, bool, float, type(None)})


def _encode_sequence(value: Any) -> Any:
    return [v if type(v) in _PLAIN else to_data(v) for v in value]


def _encode_mapping(value: Any) -> Any:
    return {str(k): v if type(v) in _PLAIN else to_data(v) for k, v in value.items()}


def _encode_enum(value: Any) -> Any:
    return value.value


@functools.cache
def _encoder(cls: type) -> Encoder:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))

        def encode_dataclass(value: Any) -> Any:
            out = {}
            for name in names:
                field = getattr(value, name)
                out[name] = field if type(field) in _PLAIN else to_data(field)
            return out

        return encode_dataclass
    if issubclass(cls, enum.Enum):
        return _encode_enum
    if issubclass(cls, list | tuple):
        return _encode_sequence
    if issubclass(cls, dict):
        return _encode_mapping
    return _identity


# decoding --------------------------------------------------------------------------------


def from_data(cls: type[T], data: Any) -> T:
    """Build a ``cls`` from plain data; raise InvalidArgument when the shape is wrong."""
    decoder = _decoder(cls)  # type: ignore[arg-type]  # types are hashable
    return typing.cast(T, decoder(data, cls.__name__))


def _type_name(tp: Any) -> str:
    return str(getattr(tp, "__name__", tp))


@functools.cache
def _decoder(tp: Any) -> Decoder:
    if tp is Any:
        return lambda data, _where: data
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union_decoder(get_args(tp))
    if origin in (list, tuple):
        return _sequence_decoder(origin, get_args(tp))
    if origin is dict:
        return _mapping_decoder(get_args(tp)[1])
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_decoder(tp)
    if tp is float:
        return _float_decoder
    if tp is int:
        return _int_decoder
    return _scalar_decoder(tp)


def _union_decoder(args: tuple[Any, ...]) -> Decoder:
    optional = type(None) in args
    choices = [_decoder(arg) for arg in args if arg is not type(None)]

    def decode(data: Any, where: str) -> Any:
        if data is None and optional:
            return None
        errors = []
        for choice in choices:
            try:
                return choice(data, where)
            except InvalidArgument as exc:
                errors.append(exc.message)
        raise InvalidArgument("; ".join(errors) or f"{where}: unexpected null")

    return decode


def _sequence_decoder(origin: Any, args: tuple[Any, ...]) -> Decoder:
    if origin is tuple and args and args[-1] is not Ellipsis:
        items = [_decoder(a) for a in args]

        def decode_fixed(data: Any, where: str) -> Any:
            if not isinstance(data, list | tuple):
                raise InvalidArgument(f"{where}: expected a list, got {type(data).__name__}")
            if len(items) != len(data):
                raise InvalidArgument(f"{where}: expected {len(items)} items, got {len(data)}")
            return tuple(
                item(v, f"{where}[{i}]")
                for i, (item, v) in enumerate(zip(items, data, strict=True))
            )

        return decode_fixed
    item = _decoder(args[0])
    make: Callable[[list[Any]], Any] = list if origin is list else tuple

    def decode(data: Any, where: str) -> Any:
        if not isinstance(data, list | tuple):
            raise InvalidArgument(f"{where}: expected a list, got {type(data).__name__}")
        return make([item(v, f"{where}[{i}]") for i, v in enumerate(data)])

    return decode


def _mapping_decoder(value_tp: Any) -> Decoder:
    value = _decoder(value_tp)

    def decode(data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        return {str(k): value(v, f"{where}.{k}") for k, v in data.items()}

    return decode


def _dataclass_decoder(cls: type) -> Decoder:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls)]

    def decode(data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        kwargs = {
            name: field(data[name], f"{where}.{name}") for name, field in fields if name in data
        }
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"{where}: {exc}") from exc

    return decode


def _enum_decoder(cls: type[enum.Enum]) -> Decoder:
    def decode(data: Any, where: str) -> Any:
        try:
            return cls(data)
        except ValueError as exc:
            raise InvalidArgument(f"{where}: {data!r} is not a valid {cls.__name__}") from exc

    return decode


def _float_decoder(data: Any, where: str) -> Any:
    if isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    raise InvalidArgument(f"{where}: expected float, got {type(data).__name__}")


def _int_decoder(data: Any, where: str) -> Any:
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    raise InvalidArgument(f"{where}: expected int, got {type(data).__name__}")


def _scalar_decoder(tp: Any) -> Decoder:
    def decode(data: Any, where: str) -> Any:
        if isinstance(tp, type) and isinstance(data, tp):
            return data
        raise InvalidArgument(f"{where}: expected {_type_name(tp)}, got {type(data).__name__}")

    return decode
