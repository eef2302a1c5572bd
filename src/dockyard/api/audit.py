"""Recording API calls in the audit log, and reading it back (``/v1/audit``).

:class:`AuditRecorder` records a call when its answer's head is about to go out
(aiohttp's ``on_response_prepare``): for an ordinary call that is after the handler finished,
so the status is final; for a stream or a hijacked connection (attach, exec start, image
load) it is when the stream begins, not hours later when it ends. A call cancelled before
any answer (the controller stopping) is recorded by :attr:`AuditRecorder.middleware` with
status 0. Every audited answer carries its record's id in ``X-Dockyard-Request-Id``.

What is recorded: every call whose method is not GET, HEAD or OPTIONS, refused ones
included, except :data:`NOT_AUDITED` (calls that only watch); and every failed
authentication (401, 429), whatever its method. Who made the call comes from the auth
middleware (``request[PRINCIPAL_KEY]``, set as soon as the token is known, so a call
refused for its scope is still the user's); a call refused before that goes to the operator
log (:data:`dockyard.core.audit.OPERATOR_LOG`), never to a tenant's, since a token id proves
nothing.

The target is the path's id (or name, user, token, serial, tenant), else the ``name`` a
create asks for or the ``container`` a commit names (query parameters).

What a create made (``created``): what a handler noted with :func:`note`, else the ``Id``,
``id``, ``Name`` or ``serial`` of a 201 answer's JSON, else, for a tag or an import, the
new tag. The error message is the ``message`` of Docker's error body. Bodies and query
strings are never stored: they carry environment values, build arguments and token texts.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from dockyard.api.auth import source_of
from dockyard.api.docker.context import PRINCIPAL_KEY
from dockyard.api.errors import json_response
from dockyard.controller.audit import AuditLog
from dockyard.core.audit import (
    OPERATOR,
    OPERATOR_LOG,
    AuditQuery,
    AuditRecord,
)
from dockyard.core.clock import parse_time_filter
from dockyard.core.errors import InvalidArgument
from dockyard.core.identity import TOKEN_HEADER, Principal, parse_token
from dockyard.wire.query import query_int

__all__ = [
    "NOT_AUDITED",
    "REQUEST_ID_HEADER",
    "AuditRecorder",
    "Caller",
    "audit_query",
    "audit_response",
    "note",
    "operator_caller",
    "record_json",
    "tenant_caller",
]

REQUEST_ID_HEADER: Final = "X-Dockyard-Request-Id"
NOT_AUDITED: Final = frozenset({"container_wait"})
"""Operations with a mutating method that only watch (``docker run`` waits on every run)."""

_READS: Final = ("GET", "HEAD", "OPTIONS")
_AUTH_FAILURES: Final = (401, 429)
_DONE: Final = web.RequestKey("dockyard_audit_done", bool)
_NOTE: Final = web.RequestKey("dockyard_audit_note", tuple[str, str])
_NOTE_TARGET: Final = web.RequestKey("dockyard_audit_target", str)
_TARGET_PARAMS: Final = ("id", "name", "user", "token", "serial", "tenant", "address", "cidr")
_CREATED_KEYS: Final = ("Id", "id", "Name", "serial")
_TAGGING: Final = ("image_tag", "image_create")
_MAX_TEXT: Final = 1024
_MAX_NAME: Final = 512

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Whose call it was: the log it goes to, and the user as recorded."""

    tenant: str
    user_id: str = ""
    user: str = ""
    token: str = ""
    cert: str = ""


def note(request: web.Request, *, tenant: str = "", created: str = "", target: str = "") -> None:
    """Tell the recorder what the generic rules cannot see: the tenant a call on the
    operator's socket made (its record goes to that tenant's log), what a create made, or
    the object a call named in its body (note it before anything can refuse the call)."""
    if tenant or created:
        request[_NOTE] = (tenant, created)
    if target:
        request[_NOTE_TARGET] = target


def tenant_caller(request: web.Request) -> Caller:
    """The caller on the tenants' endpoint: the authenticated principal, else (refused
    before its token was accepted) the operator log with the token id it named, if any."""
    principal = request.get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return Caller(
            tenant=principal.tenant.id,
            user_id=principal.user.id,
            user=principal.user.name,
            token=principal.token_id,
            cert=principal.cert_serial,
        )
    return Caller(tenant=OPERATOR_LOG, token=_presented_token_id(request))


def operator_caller(tenant_id: Callable[[str], str]) -> Callable[[web.Request], Caller]:
    """The caller on the operator's socket: :data:`OPERATOR`, in the log of the tenant the
    call noted or named in its path (``tenant_id`` maps a name to an id, "" if there is no
    such tenant any more), else in the operator log."""

    def caller(request: web.Request) -> Caller:
        noted = request.get(_NOTE)
        tenant = noted[0] if noted and noted[0] else ""
        named = request.match_info.get("tenant", "")
        if not tenant and named:
            tenant = tenant_id(named)
        return Caller(tenant=tenant or OPERATOR_LOG, user=OPERATOR)

    return caller


class AuditRecorder:
    """Records one application's audited calls into ``audit``; ``caller`` says whose each
    was. Put :attr:`middleware` first (outermost) and call :meth:`install`."""

    def __init__(self, audit: AuditLog, *, caller: Callable[[web.Request], Caller]) -> None:
        self._audit = audit
        self._caller = caller

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            except asyncio.CancelledError:
                action = _action(request)
                if _audited(request, action, None):
                    self._record(
                        request, action, status=0, error="no answer: the call was interrupted"
                    )
                raise

        self.middleware = middleware

    def install(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._on_prepare)

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        status = response.status
        if request.method in _READS and status not in _AUTH_FAILURES:
            return  # the common case, decided first
        action = _action(request)
        if not _audited(request, action, status):
            return
        error = _error_message(response) if status >= 400 else ""
        request_id = self._record(
            request, action, status=status, error=error, answer=_answer(response)
        )
        response.headers[REQUEST_ID_HEADER] = request_id

    def _record(
        self, request: web.Request, action: str, *, status: int, error: str, answer: Any = None
    ) -> str:
        request[_DONE] = True
        caller = self._caller(request)
        request_id = secrets.token_hex(8)
        self._audit.record(
            AuditRecord(
                tenant=caller.tenant,
                time=self._audit.now(),
                user_id=caller.user_id,
                user=caller.user,
                token=caller.token,
                cert=caller.cert,
                source=source_of(request)[:128],
                action=action,
                method=request.method,
                path=request.path[:_MAX_TEXT],
                target=_target(request)[:_MAX_NAME],
                created=_created(request, action, status, answer)[:_MAX_NAME],
                status=status,
                error=error[:_MAX_TEXT],
                request_id=request_id,
            )
        )
        return request_id


def _audited(request: web.Request, action: str, status: int | None) -> bool:
    if request.get(_DONE):
        return False
    if status in _AUTH_FAILURES:
        return True
    return request.method not in _READS and action not in NOT_AUDITED


def _action(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return ""  # no route: 404 or 405
    return str(getattr(info.handler, "__name__", ""))[:64]


def _target(request: web.Request) -> str:
    noted = str(request.get(_NOTE_TARGET, ""))
    if noted:
        return noted
    info = request.match_info
    for key in _TARGET_PARAMS:
        value = info.get(key)
        if value:
            return value
    # A create names what it makes in ``name``; a commit names its container in
    # ``container`` (Docker's query parameters).
    return request.query.get("name", "") or request.query.get("container", "")


def _answer(response: web.StreamResponse) -> Any:
    """A small JSON answer's content (creates answer with the new object's id)."""
    if response.status != 201 or not isinstance(response, web.Response):
        return None
    body = response.body
    if not isinstance(body, bytes) or not body or len(body) > 65536:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _created(request: web.Request, action: str, status: int, answer: Any) -> str:
    noted = request.get(_NOTE)
    if noted and noted[1]:
        return str(noted[1])
    if not 200 <= status < 300:
        return ""
    if isinstance(answer, dict):
        for key in _CREATED_KEYS:
            value = answer.get(key)
            if isinstance(value, str) and value:
                return value
    if action in _TAGGING:
        repo, tag = request.query.get("repo", ""), request.query.get("tag", "")
        return f"{repo}:{tag}" if repo and tag else repo
    return ""


def _error_message(response: web.StreamResponse) -> str:
    if not isinstance(response, web.Response):
        return ""
    body = response.body
    if not isinstance(body, bytes) or not body:
        return response.reason or ""
    try:
        decoded = json.loads(body[:65536])
    except ValueError:
        return body[:_MAX_TEXT].decode(errors="replace")
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return str(decoded["message"])
    return ""


def _presented_token_id(request: web.Request) -> str:
    """The id part of the token the call presented ("" if none or malformed); the secret
    part is never kept."""
    text = request.headers.get(TOKEN_HEADER, "")
    if not text:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            text = value
    try:
        token_id, _secret = parse_token(text)
    except InvalidArgument:
        return ""
    return token_id


# reading --------------------------------------------------------------------------------


def audit_query(request: web.Request) -> AuditQuery:
    """The query of a read: ``since``, ``until`` (Unix seconds, RFC 3339, or a Go duration
    before now), ``before`` (a seq), ``limit``, ``user``, ``action``, ``target``,
    ``result``."""
    q = request.query

    def when(name: str) -> int:
        value = q.get(name, "")
        return parse_time_filter(value) if value else 0

    return AuditQuery(
        since=when("since"),
        until=when("until"),
        before=query_int(request, "before"),
        limit=query_int(request, "limit", 100),
        user=q.get("user", ""),
        action=q.get("action", ""),
        target=q.get("target", ""),
        result=q.get("result", ""),
    )


def record_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "time": record.time,
        "tenant": record.tenant,
        "user": record.user,
        "user_id": record.user_id,
        "token": record.token,
        "cert": record.cert,
        "source": record.source,
        "action": record.action,
        "method": record.method,
        "path": record.path,
        "target": record.target,
        "created": record.created,
        "status": record.status,
        "error": record.error,
        "request_id": record.request_id,
    }


async def audit_response(request: web.Request, audit: AuditLog, tenant: str) -> web.Response:
    """The tenant's records that the request's query selects, as a JSON array, newest
    first."""
    records = await audit.read(tenant, audit_query(request))
    return json_response([record_json(r) for r in records])
