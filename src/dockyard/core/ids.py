"""Identifiers and names.

Object ids are 64 lowercase hex digits drawn from the OS's CSPRNG, global across tenants, so
guessing another tenant's id is hopeless and an id never encodes who owns it. Names follow
Docker's grammar; generated names are ``adjective_noun`` like Docker's.
"""

from __future__ import annotations

import re
import secrets

from dockyard.core.errors import InvalidArgument

__all__ = [
    "ID_LENGTH",
    "NAME_PATTERN",
    "is_full_id",
    "new_id",
    "random_name",
    "short_id",
    "validate_name",
]

ID_LENGTH = 64
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_HEX = re.compile(r"^[0-9a-f]+$")
_MAX_NAME = 253

_ADJECTIVES = (
    "amber",
    "brave",
    "calm",
    "clever",
    "cosy",
    "crisp",
    "dapper",
    "eager",
    "fierce",
    "gentle",
    "glad",
    "hardy",
    "honest",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucid",
    "merry",
    "mellow",
    "modest",
    "nimble",
    "noble",
    "patient",
    "plucky",
    "proud",
    "quiet",
    "rapid",
    "serene",
    "sharp",
    "shy",
    "silent",
    "sleepy",
    "snug",
    "sober",
    "steady",
    "stoic",
    "sunny",
    "swift",
    "tender",
    "tidy",
    "upbeat",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zealous",
)
_NOUNS = (
    "anchor",
    "barge",
    "beacon",
    "bollard",
    "bosun",
    "buoy",
    "cabin",
    "capstan",
    "cargo",
    "compass",
    "coracle",
    "crane",
    "cutter",
    "davit",
    "dinghy",
    "dory",
    "ferry",
    "galley",
    "gantry",
    "harbour",
    "hawser",
    "hull",
    "jetty",
    "keel",
    "ketch",
    "lantern",
    "launch",
    "lighthouse",
    "mast",
    "mooring",
    "oar",
    "pier",
    "pilot",
    "quay",
    "rigging",
    "rudder",
    "schooner",
    "sextant",
    "skiff",
    "slipway",
    "sloop",
    "spinnaker",
    "stern",
    "tender",
    "tiller",
    "trawler",
    "tug",
    "wharf",
    "winch",
    "yawl",
)


def new_id() -> str:
    """A fresh random id: 64 hex digits (256 bits)."""
    return secrets.token_hex(ID_LENGTH // 2)


def short_id(object_id: str) -> str:
    """The 12-digit form Docker prints."""
    return object_id[:12]


def is_full_id(text: str) -> bool:
    return len(text) == ID_LENGTH and bool(_HEX.match(text))


def random_name() -> str:
    """A readable generated name such as ``steady_lighthouse``; callers retry on collision."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"


def validate_name(name: str, *, what: str = "container") -> str:
    """Return ``name`` without Docker's optional leading slash, or raise InvalidArgument."""
    bare = name[1:] if name.startswith("/") else name
    if not bare or len(bare) > _MAX_NAME or not NAME_PATTERN.match(bare):
        raise InvalidArgument(
            f"Invalid {what} name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return bare
