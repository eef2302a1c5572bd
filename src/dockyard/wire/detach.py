"""Detach keys: the key sequence that ends an attach and leaves the container running.

Docker's syntax (``--detach-keys``, the ``detachKeys`` query parameter, an exec's
``DetachKeys``): comma-separated keys, each one character or ``ctrl-<x>`` with ``<x>`` in
``a``-``z``, ``@``, ``[``, ``\\``, ``]``, ``^`` or ``_``. The default is ``ctrl-p,ctrl-q``.
As in Docker, only attaches with a TTY look for them.
"""

from __future__ import annotations

from dockyard.core.errors import InvalidArgument

__all__ = ["DEFAULT_DETACH_KEYS", "EscapeMatcher", "parse_detach_keys"]

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """The byte sequence for ``text`` (empty: the default); InvalidArgument if malformed."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1 and key.isascii():
            out.append(ord(key))
            continue
        name = key.lower()
        if name.startswith("ctrl-") and len(name) == 6:
            char = name[5]
            if "a" <= char <= "z":
                out.append(ord(char) - ord("a") + 1)
                continue
            if char in _CTRL_SPECIALS:
                out.append(_CTRL_SPECIALS[char])
                continue
        raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class EscapeMatcher:
    """Finds the detach sequence in a stream of input chunks.

    :meth:`feed` returns what to pass on and whether the sequence was seen. Bytes that may
    begin the sequence are held back until the next chunk settles it; when it is
    complete, nothing of it (nor anything after it) is passed on.
    """

    def __init__(self, keys: bytes) -> None:
        if not keys:
            raise ValueError("empty detach sequence")
        self._keys = keys
        self._held = 0  # bytes of the sequence matched so far (not yet passed on)

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            if byte == self._keys[self._held]:
                self._held += 1
                if self._held == len(self._keys):
                    return bytes(out), True
                continue
            if self._held:
                # A false start: pass on what was held, then look at this byte afresh.
                out += self._keys[: self._held]
                self._held = 0
                if byte == self._keys[0]:
                    self._held = 1
                    continue
            out.append(byte)
        return bytes(out), False
