"""The audit log's record: who did what to which object, when, and with what result.

One :class:`AuditRecord` per call that may change something (every method but GET and
HEAD, on the Docker and native APIs and the operator's socket), refused ones included,
and one per failed authentication. It is not Docker's event log (``core.events``): an
event says what happened to an object, an audit record says who asked for what and how the
answer went, also when nothing happened (a 403, a 409).

What a record never holds: request or response bodies (environment values, build
arguments and tokens travel in them) and the query string (it may carry build arguments
too). Only the path, the object the call named, the id of what a create made and, on
failure, the error message the caller was given.

``tenant`` is the tenant's id, or :data:`OPERATOR_LOG` for what belongs to no tenant:
failed authentications (the caller is unknown, and a token id is no proof of anything:
anyone could name another tenant's token to write into its log) and operator calls that
named no existing tenant.

``seq`` numbers records in the order they were stored (given by the store; 0 before);
``time`` (ns) is when the call was answered, or when its stream began (attach, exec start),
and never decreases along ``seq`` within one controller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from dockyard.core.errors import InvalidArgument

__all__ = [
    "MAX_LIMIT",
    "OPERATOR",
    "OPERATOR_LOG",
    "AuditQuery",
    "AuditRecord",
    "parse_result_filter",
]

OPERATOR_LOG: Final = ""
"""The ``tenant`` of records that belong to no tenant (read on the operator's socket)."""

OPERATOR: Final = "@operator"
"""The user name of calls made on the operator's socket (no user name can start with @)."""

MAX_LIMIT: Final = 10_000
"""The most records one read returns."""

_RESULT = re.compile(r"^(ok|error|[1-5][0-9][0-9])$")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited call. ``token`` is the id of the token used (never its secret; for a
    client certificate, the token it was obtained with), empty for the operator and when
    none was readable; ``cert`` the serial of the client certificate that authenticated
    the call, if one did; ``source`` is the peer (``ip:ADDRESS`` or ``uid:N`` on a unix socket).
    ``action`` is the operation (Docker's operation id in snake case, such as
    ``container_create``; empty for a path that matched no route). ``target`` is the object
    the call named (a path's id or name, or a create's requested name); ``created`` the id
    (or new tag) of what a create made. ``status`` is the HTTP status answered, 0 when the
    call ended without an answer (the client or the controller went away); ``error`` the
    message a failed call answered with."""

    tenant: str
    time: int
    user_id: str
    user: str
    token: str
    source: str
    action: str
    method: str
    path: str
    target: str = ""
    created: str = ""
    status: int = 0
    error: str = ""
    request_id: str = ""
    cert: str = ""
    seq: int = 0

    @property
    def ok(self) -> bool:
        return 0 < self.status < 400


def parse_result_filter(text: str) -> str:
    """``ok`` (status below 400), ``error`` (400 and above, or no answer) or one status."""
    text = text.strip().lower()
    if text and not _RESULT.match(text):
        raise InvalidArgument(f"invalid result filter {text!r}: ok, error or an HTTP status")
    return text


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to read, newest first: ``since <= time <= until`` (ns; 0 leaves a
    bound open), ``seq < before`` (0: from the newest; the ``seq`` of the last record of a
    page gives the next), at most ``limit``. ``user`` matches a user's name or id,
    ``action`` and ``target`` are prefixes (``target`` of the object named or created),
    ``result`` is ``ok``, ``error`` or a status (:func:`parse_result_filter`)."""

    since: int = 0
    until: int = 0
    before: int = 0
    limit: int = 100
    user: str = ""
    action: str = ""
    target: str = ""
    result: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidArgument(f"invalid limit {self.limit}: 1 to {MAX_LIMIT}")
        if min(self.since, self.until, self.before) < 0:
            raise InvalidArgument("since, until and before cannot be negative")
        if self.until and self.until < self.since:
            raise InvalidArgument("until cannot be before since")
        parse_result_filter(self.result)

    def matches(self, record: AuditRecord) -> bool:
        """Whether ``record`` passes every filter (what a store must select)."""
        if record.time < self.since or (self.until and record.time > self.until):
            return False
        if self.before and record.seq >= self.before:
            return False
        if self.user and self.user not in (record.user, record.user_id):
            return False
        if self.action and not record.action.startswith(self.action):
            return False
        if self.target and not (
            (record.target and record.target.startswith(self.target))
            or (record.created and record.created.startswith(self.target))
        ):
            return False
        result = self.result.lower()
        if result == "ok":
            return record.ok
        if result == "error":
            return not record.ok
        return not result or record.status == int(result)
