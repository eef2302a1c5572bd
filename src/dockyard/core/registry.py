"""Docker token authentication's vocabulary: access scopes (ADR 0021).

A client asks the token service for ``scope=repository:acme/app:pull,push``; the token it
gets lists what was granted as ``access`` entries of the same shape. A scope is
``<type>:<name>:<actions>``: the type ends at the *first* colon and the actions start
after the *last* one, because a name may itself hold a colon (a registry host's port:
``repository:localhost:5000/acme/app:pull``). Types seen in practice are ``repository``
(actions ``pull``, ``push``, ``delete``, ``*``) and ``registry`` (``registry:catalog:*``).

Data and parsing only; who gets what is ``dockyard.controller.registry_auth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dockyard.core.errors import InvalidArgument

__all__ = [
    "CATALOG",
    "REGISTRY_SERVICE",
    "Access",
    "format_scope",
    "parse_scope",
]

REGISTRY_SERVICE: Final = "dockyard-registry"
"""The ``service`` the registry names in its challenge and tokens are minted for (``aud``)."""


@dataclass(frozen=True, slots=True)
class Access:
    """What one scope asks for, or one ``access`` entry of a token grants: ``actions`` on
    the resource ``name`` of ``type``. Empty ``actions``: nothing (a refused request)."""

    type: str
    name: str
    actions: tuple[str, ...]

    def as_claim(self) -> dict[str, object]:
        """The entry in a token's ``access`` claim."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


CATALOG: Final = Access("registry", "catalog", ("*",))
"""Listing every repository (``GET /v2/_catalog``): the operator's only."""


def parse_scope(text: str) -> Access:
    """The access one ``scope`` parameter asks for. InvalidArgument if it has no type, name
    or actions part. Actions are split on commas, blanks dropped, duplicates removed in
    order; the type and name are kept as sent (the grant decides what they mean)."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        raise InvalidArgument(f"invalid scope {text!r}: expected type:name:actions")
    wanted = tuple(dict.fromkeys(a.strip() for a in actions.split(",") if a.strip()))
    return Access(type=kind, name=name, actions=wanted)


def format_scope(access: Access) -> str:
    """The scope text of ``access`` (the inverse of :func:`parse_scope`)."""
    return f"{access.type}:{access.name}:{','.join(access.actions)}"
