"""The HTTP status each error kind answers with, on the Docker API and the agent protocol."""

from __future__ import annotations

from dockyard.core.errors import DockyardError

__all__ = ["http_status"]

_BY_KIND: dict[str, int] = {
    "not_found": 404,
    "already_exists": 409,
    "conflict": 409,
    "invalid_argument": 400,
    "failed_precondition": 412,
    "unauthenticated": 401,
    "permission_denied": 403,
    "rate_limited": 429,
    "quota_exceeded": 403,
    "not_modified": 304,
    "unavailable": 503,
    "internal": 500,
}


def http_status(error: DockyardError) -> int:
    return _BY_KIND.get(error.kind, 500)
