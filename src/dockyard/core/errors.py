"""One error hierarchy for the whole system, by semantic kind.

::

    DockyardError
    ├── NotFound             the object does not exist (or belongs to another tenant)
    ├── AlreadyExists        a name or id is taken
    ├── Conflict             the object is in a state that forbids the operation
    ├── InvalidArgument      the request itself is malformed or out of range
    ├── FailedPrecondition   something the request depends on is not ready
    ├── Unauthenticated      the caller did not prove who it is (no, bad, expired token)
    ├── PermissionDenied     policy forbids it (never used to hide another tenant)
    ├── QuotaExceeded        a tenant limit would be crossed
    ├── RateLimited          too many attempts (failed logins); retry later
    ├── NotModified          nothing to do; Docker answers 304 for some of these
    ├── Unavailable          a dependency (agent, runtime, kernel) failed or is away
    └── Internal             a bug: an invariant did not hold

Errors carry no HTTP status: `dockyard.wire.status` maps each kind to one. Across the agent
protocol they travel as ``{"kind": "...", "message": "..."}`` and are rebuilt with
:func:`from_wire`, so no side ever matches on message text.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DockyardError",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "NotModified",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "from_wire",
]


class DockyardError(Exception):
    """Base of every error Dockyard raises on purpose."""

    kind: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message}


class NotFound(DockyardError):
    kind = "not_found"


class AlreadyExists(DockyardError):
    kind = "already_exists"


class Conflict(DockyardError):
    kind = "conflict"


class InvalidArgument(DockyardError):
    kind = "invalid_argument"


class FailedPrecondition(DockyardError):
    kind = "failed_precondition"


class Unauthenticated(DockyardError):
    kind = "unauthenticated"


class PermissionDenied(DockyardError):
    kind = "permission_denied"


class RateLimited(DockyardError):
    kind = "rate_limited"


class QuotaExceeded(DockyardError):
    kind = "quota_exceeded"


class NotModified(DockyardError):
    kind = "not_modified"


class Unavailable(DockyardError):
    kind = "unavailable"


class Internal(DockyardError):
    kind = "internal"


_BY_KIND: dict[str, type[DockyardError]] = {
    cls.kind: cls
    for cls in (
        NotFound,
        AlreadyExists,
        Conflict,
        InvalidArgument,
        FailedPrecondition,
        Unauthenticated,
        PermissionDenied,
        QuotaExceeded,
        RateLimited,
        NotModified,
        Unavailable,
        Internal,
    )
}


def from_wire(payload: Any) -> DockyardError:
    """Rebuild an error sent as ``{"kind": ..., "message": ...}``; unknown kinds are Internal."""
    if not isinstance(payload, dict):
        return Internal(f"malformed error payload: {payload!r}")
    cls = _BY_KIND.get(str(payload.get("kind")), Internal)
    return cls(str(payload.get("message", "")))
