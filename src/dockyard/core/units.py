"""Byte quantities as people write and read them: ``2g``, ``512MiB``, ``1.5 GiB``.

Suffixes are binary, as Docker's ``-m`` reads them (``k`` = 1024): ``b``, ``k``/``kb``/
``kib``, ``m``, ``g``, ``t``, ``p``, any case, an optional space before them. A bare number
is bytes. :func:`format_bytes` writes the other way, in binary units with up to two
decimals (``1.75 GiB``), for messages and tables.
"""

from __future__ import annotations

import re

from dockyard.core.errors import InvalidArgument

__all__ = ["format_bytes", "parse_bytes"]

_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_NAMES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def parse_bytes(text: str) -> int:
    """Bytes in ``text`` (``"2g"``, ``"512 MiB"``, ``"1048576"``); InvalidArgument else."""
    match = _QUANTITY.match(text)
    if match is None:
        raise InvalidArgument(f"invalid size {text!r}: a number with an optional unit (k, m, g, t)")
    number, unit = str(match[1]), str(match[2])
    scale = 1 << (10 * _UNITS[unit.lower()])
    if "." in number:
        whole, _, fraction = number.partition(".")
        # Exact arithmetic: 1.5g is 1610612736, not a float's approximation of it.
        denominator = int("1" + "0" * len(fraction))
        return (int(whole) * denominator + int(fraction)) * scale // denominator
    return int(number) * scale


def format_bytes(value: int) -> str:
    """``value`` in the largest binary unit that keeps it at or above 1 (``"1.75 GiB"``,
    ``"64 MiB"``, ``"0 B"``); at most two decimals, trailing zeros dropped."""
    if value < 0:
        return "-" + format_bytes(-value)
    unit = 0
    while unit + 1 < len(_NAMES) and value >= 1024 ** (unit + 1):
        unit += 1
    if unit == 0:
        return f"{value} B"
    text = f"{value / 1024**unit:.2f}".rstrip("0").rstrip(".")
    return f"{text} {_NAMES[unit]}"
