"""Registry namespaces: the first path component of a tenant's image names.

A tenant owns one or more namespaces (``acme`` in ``registry/acme/app:1``); the registry's
token service will grant push and pull on ``<namespace>/...`` to the tenant that owns it
and to no one else. A name is 4 to 30 of ``[a-z0-9_]``, unique across the cloud, and never
renamed. It starts and ends with a letter or digit and has no more than two ``_`` in a
row: anything else could not begin an image reference (distribution's grammar for a path
component is ``[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*``), so a tenant could claim a name it
can never push to.

A namespace outlives its tenant: deleting the tenant *retires* it (``retired`` is when),
and a retired name is never claimed or assigned again, like a uid range is never handed
out twice: images pulled as ``acme/app`` must never silently come from someone else.

Some names belong to the operator, for curated images: :data:`ALWAYS_RESERVED` and
whatever the controller is configured with. Tenants cannot claim them; the operator can
assign any name, reserved ones included.

This module is data and validation only; claiming is ``dockyard.controller.namespaces``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from dockyard.core.errors import InvalidArgument

__all__ = [
    "ALWAYS_RESERVED",
    "CURATED_NAMESPACE",
    "MAX_NAME",
    "MIN_NAME",
    "Namespace",
    "validate_namespace",
]

MIN_NAME: Final = 4
MAX_NAME: Final = 30
CURATED_NAMESPACE: Final = "library"
"""Where the curated public images live, readable by every tenant (ADR 0021)."""
ALWAYS_RESERVED: Final = frozenset({CURATED_NAMESPACE})
"""Names no tenant may claim, whatever the configuration: ``library`` is where Docker's
familiar names (``busybox`` = ``library/busybox``) live, i.e. the curated images."""

_NAME = re.compile(rf"(?=.{{{MIN_NAME},{MAX_NAME}}}\Z)[a-z0-9]+(?:_{{1,2}}[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class Namespace:
    """A claimed name. ``tenant`` is the owner's id (kept after the tenant is deleted);
    ``created`` and ``retired`` are ns since the epoch (``retired`` 0: in use);
    ``created_by`` is the id of the user who claimed it, or
    :data:`dockyard.core.audit.OPERATOR` when the operator assigned it."""

    name: str
    tenant: str
    created: int
    created_by: str
    retired: int = 0


def validate_namespace(name: str) -> str:
    """``name`` if it can be a namespace, else InvalidArgument saying what one is."""
    if not _NAME.fullmatch(name):  # not match: $ would let a trailing newline in
        raise InvalidArgument(
            f"invalid namespace {name!r}: {MIN_NAME} to {MAX_NAME} of [a-z0-9_], starting "
            "and ending with a letter or digit, at most two _ in a row"
        )
    return name
