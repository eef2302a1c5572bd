"""Docker Engine API: ``GET /events`` (SystemEvents).

The stream is newline-delimited JSON in Docker's EventMessage shape. ``since`` and
``until`` replay the tenant's stored events (inclusive bounds; the docker CLI converts
dates and durations to Unix seconds, and RFC 3339 is accepted too); an ``until`` in the
past ends the stream after the replay, one in the future when it comes. The tenant's scope
is applied before any filter, so filters only ever narrow what the caller may see.

Filters follow Docker's events filter (``daemon/events/filter.go``): each key given must
match; ``container``, ``volume`` and ``network`` match the actor's id or ``name`` attribute
exactly or as a prefix; ``image`` matches an image event's id or name, or a container
event's image, with or without the tag; ``label`` matches ``key`` or ``key=value``
against the attributes (all must match); ``event`` matches the action (as a prefix for
``exec_create``, ``exec_start`` and ``health_status``, whose actions carry a suffix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from dockyard.api.docker.context import ApiContext, tenant_of
from dockyard.api.docker.filters import Filters, parse_filters
from dockyard.controller.events import EventStream
from dockyard.core.clock import parse_time_filter
from dockyard.core.errors import InvalidArgument
from dockyard.core.events import Event
from dockyard.core.reference import parse_reference

__all__ = ["EVENT_FILTERS", "event_json", "event_matcher", "routes"]

routes = web.RouteTableDef()

_NS = 1_000_000_000
EVENT_FILTERS: Final = (
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
)
_BY_NAME = ("config", "container", "daemon", "network", "node", "plugin", "secret", "service")
_SUFFIXED = frozenset({"exec_create", "exec_start", "health_status"})
_DISCONNECT_POLL = 1.0  # seconds between checks that an idle stream's client is still there


def event_json(event: Event) -> dict[str, Any]:
    """Docker's EventMessage, with the legacy ``status``/``id``/``from`` fields Docker
    still fills for container and image events."""
    out: dict[str, Any] = {}
    if event.type in ("container", "image"):
        out["status"] = event.action
        out["id"] = event.actor_id
        if event.type == "container" and event.attributes.get("image"):
            out["from"] = event.attributes["image"]
    out["Type"] = event.type
    out["Action"] = event.action
    out["Actor"] = {"ID": event.actor_id, "Attributes": dict(event.attributes)}
    out["scope"] = "local"
    out["time"] = event.time // _NS
    out["timeNano"] = event.time
    return out


def _strip_tag(name: str) -> str:
    """``busybox:1`` -> ``busybox`` (Docker's familiar name, without tag or digest)."""
    try:
        return parse_reference(name, default_tag=False).repository
    except InvalidArgument:
        return name


def _fuzzy(values: list[str], source: str) -> bool:
    return any(source == v or source.startswith(v) for v in values)


def _by_name(wanted: list[str]) -> Callable[[Event], bool]:
    return lambda e: _fuzzy(wanted, e.actor_id) or _fuzzy(wanted, e.attributes.get("name", ""))


def event_matcher(f: Filters) -> Callable[[Event], bool]:
    """Docker's events filters as one predicate (see the module docstring)."""
    checks: list[Callable[[Event], bool]] = []
    if f.has("event"):
        actions = f.get("event")
        if _SUFFIXED & set(actions):
            checks.append(lambda e: _fuzzy(actions, e.action))
        else:
            checks.append(lambda e: e.action in actions)
    if f.has("type"):
        types = set(f.get("type"))
        checks.append(lambda e: e.type in types)
    if f.has("scope"):
        scopes = set(f.get("scope"))
        checks.append(lambda e: "local" in scopes)
    for key in (*_BY_NAME, "volume"):
        if f.has(key):
            checks.append(_by_name(f.get(key)))
    if f.has("image"):
        images = set(f.get("image"))

        def image_matches(e: Event) -> bool:
            name = e.attributes.get("name" if e.type == "image" else "image", "")
            return bool(images & {e.actor_id, name, _strip_tag(e.actor_id), _strip_tag(name)})

        checks.append(image_matches)
    if f.has("label"):
        labels = [item.partition("=") for item in f.get("label")]
        checks.append(
            lambda e: all(
                key in e.attributes and (not sep or e.attributes[key] == value)
                for key, sep, value in labels
            )
        )
    return lambda e: all(check(e) for check in checks)


def _time(request: web.Request, key: str) -> tuple[str, int]:
    raw = request.query.get(key, "")
    return raw, parse_time_filter(raw) if raw else 0


async def _client_gone(request: web.Request) -> None:
    """Return once the client has closed the connection (aiohttp does not cancel the
    handler then, and an idle stream would never notice by writing)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(_DISCONNECT_POLL)


@routes.get("/events")
async def system_events(request: web.Request) -> web.StreamResponse:
    ctx = ApiContext.of(request)
    tenant = tenant_of(request).id
    since_raw, since = _time(request, "since")
    until_raw, until = _time(request, "until")
    if until_raw and until < since:
        raise InvalidArgument(
            f"`since` time ({since_raw}) cannot be after `until` time ({until_raw})"
        )
    match = event_matcher(parse_filters(request.query.get("filters", ""), EVENT_FILTERS))
    stream = ctx.controller.events.follow(
        tenant=tenant, since=since, until=until, replay=bool(since_raw or until_raw)
    )
    try:
        return await _send(request, stream, match)
    finally:
        await stream.aclose()


async def _send(
    request: web.Request, stream: EventStream, match: Callable[[Event], bool]
) -> web.StreamResponse:
    # Headers go out at once (the stream is subscribed already): clients wait for them.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)

    async def pump() -> None:
        async for event in stream:
            if match(event):
                await response.write(json.dumps(event_json(event)).encode() + b"\n")

    sending = asyncio.create_task(pump())
    gone = asyncio.create_task(_client_gone(request))
    try:
        await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, gone):
            task.cancel()
        for task in (sending, gone):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response
