"""api.audit: the recorder on a small app served by aiohttp, with the real auth middleware,
identity service, audit log and SQLite store: who, what, target, result, what is not
recorded, streams recorded when they begin, and the read endpoint's query."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

import dockyard.wire  # noqa: F401  (before aiohttp)
from dockyard.api.audit import (
    REQUEST_ID_HEADER,
    AuditRecorder,
    audit_query,
    audit_response,
    note,
    operator_caller,
    tenant_caller,
)
from dockyard.api.auth import FailureLimiter, auth_middleware
from dockyard.api.docker.context import principal_of
from dockyard.api.errors import docker_errors, json_response
from dockyard.controller.audit import AuditLog
from dockyard.controller.identity import IdentityService
from dockyard.core.audit import OPERATOR, OPERATOR_LOG, AuditQuery, AuditRecord
from dockyard.core.errors import AlreadyExists, InvalidArgument, NotModified, PermissionDenied
from dockyard.core.identity import TOKEN_HEADER, Role
from dockyard.store import SqlStore
from dockyard.wire.hijack import hijack

T = TypeVar("T")
NEW_ID = "3f" * 32
SECRET_ENV = "PASSWORD=hunter2-in-the-body"


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout=20)

    return asyncio.run(bounded())


# the app under test ------------------------------------------------------------------------

routes = web.RouteTableDef()
stream_open = "stream-open"
handler_cancelled = "handler-cancelled"


@routes.post("/containers/create")
async def container_create(request: web.Request) -> web.Response:
    body = await request.json()
    if body.get("HostConfig", {}).get("Privileged"):
        raise PermissionDenied("--privileged is not allowed")
    if request.query.get("name") == "taken":
        raise AlreadyExists('Conflict. The container name "/taken" is already in use')
    return json_response({"Id": NEW_ID, "Warnings": []}, status=201)


@routes.post("/containers/{id}/stop")
async def container_stop(request: web.Request) -> web.Response:
    if request.match_info["id"] == "stopped":
        raise NotModified("already stopped")
    return web.Response(status=204)


@routes.post("/containers/{id}/wait")
async def container_wait(request: web.Request) -> web.Response:
    return json_response({"StatusCode": 0})


@routes.get("/containers/json")
async def container_list(request: web.Request) -> web.Response:
    return json_response([])


@routes.delete("/volumes/{name}")
async def volume_delete(request: web.Request) -> web.Response:
    return web.Response(status=204)


@routes.post("/images/{name}/tag")
async def image_tag(request: web.Request) -> web.Response:
    return web.Response(status=201)


@routes.post("/containers/{id}/attach")
async def container_attach(request: web.Request) -> web.StreamResponse:
    client = await hijack(request, content_type="application/vnd.docker.raw-stream")
    opened: asyncio.Event = request.app[STATE]["opened"]
    opened.set()
    await client.write(b"hello\n")
    await client.read()  # until the client closes its side
    return client.finish()


@routes.post("/slow")
async def slow_call(request: web.Request) -> web.Response:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        request.app[STATE]["cancelled"].set()
        raise
    return web.Response(status=204)  # pragma: no cover


@routes.post("/v1/tokens")
async def create_token(request: web.Request) -> web.Response:
    assert principal_of(request).user.name == "bob"
    return json_response({"token": "dyk_" + "1" * 16 + "_" + "s" * 43, "id": "1" * 16}, status=201)


@routes.get("/v1/audit")
async def audit_log(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return await audit_response(request, request.app[STATE]["audit"], principal.tenant.id)


STATE = web.AppKey("state", dict)


@dataclass
class World:
    client: TestClient[web.Request, web.Application]
    audit: AuditLog
    store: SqlStore
    identity: IdentityService
    tokens: dict[str, str]
    tenant: str
    other_tenant: str
    state: dict[str, Any]

    def headers(self, who: str) -> dict[str, str]:
        return {TOKEN_HEADER: self.tokens[who]}

    async def records(self, tenant: str | None = None, **query: Any) -> list[AuditRecord]:
        return await self.audit.read(self.tenant if tenant is None else tenant, AuditQuery(**query))


@asynccontextmanager
async def world(tmp_path: Path, *, handler_cancellation: bool = False) -> AsyncIterator[World]:
    store = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
    identity = IdentityService(store)
    audit = AuditLog(store, keep=1000, max_age=0, flush_delay=0.01)
    acme = identity.create_tenant("acme", user="ann")
    bob = identity.add_user(acme.tenant.id, "bob", role=Role.MEMBER)
    reader = identity.issue(acme.tenant.id, bob.id, scopes=("read",))
    writer = identity.issue(acme.tenant.id, bob.id, scopes=("read", "write"))
    other = identity.create_tenant("globex", user="gil")
    recorder = AuditRecorder(audit, caller=tenant_caller)
    app = web.Application(
        middlewares=[
            recorder.middleware,
            docker_errors,
            auth_middleware(identity, FailureLimiter(max_failures=3)),
        ]
    )
    recorder.install(app)
    state: dict[str, Any] = {
        "audit": audit,
        "opened": asyncio.Event(),
        "cancelled": asyncio.Event(),
    }
    app[STATE] = state
    app.add_routes(routes)
    server = TestServer(app, handler_cancellation=handler_cancellation)
    client = TestClient(server)
    await client.start_server()
    try:
        yield World(
            client=client,
            audit=audit,
            store=store,
            identity=identity,
            tokens={
                "ann": acme.token.text,
                "bob-read": reader.text,
                "bob": writer.text,
                "gil": other.token.text,
            },
            tenant=acme.tenant.id,
            other_tenant=other.tenant.id,
            state=state,
        )
    finally:
        await client.close()
        await audit.close()
        store.close()


# who, what, target, result ------------------------------------------------------------------


def test_a_create_is_recorded_with_user_target_new_id_and_no_body(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            response = await w.client.post(
                "/containers/create?name=web&env=x",
                json={"Image": "busybox", "Env": [SECRET_ENV]},
                headers=w.headers("ann"),
            )
            assert response.status == 201
            request_id = response.headers[REQUEST_ID_HEADER]
            [record] = await w.records()
            ann_token = w.tokens["ann"].split("_")[1]
            assert record.tenant == w.tenant
            assert (record.user, record.token) == ("ann", ann_token)
            assert record.user_id == w.identity.user(w.tenant, "ann").id
            assert (record.action, record.method) == ("container_create", "POST")
            assert record.path == "/containers/create"  # no query string
            assert (record.target, record.created) == ("web", NEW_ID)
            assert (record.status, record.error) == (201, "")
            assert record.request_id == request_id
            assert record.source.startswith("ip:")
            assert record.seq > 0 and record.time > 0
            stored = json.dumps(record.__repr__())
            assert "hunter2" not in stored and "env=x" not in stored

    run(scenario)


def test_refusals_are_recorded_with_status_and_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            bob = w.headers("bob")
            privileged = {"Image": "busybox", "HostConfig": {"Privileged": True}}
            assert (
                await w.client.post("/containers/create", json=privileged, headers=bob)
            ).status == 403
            assert (
                await w.client.post("/containers/create?name=taken", json={}, headers=bob)
            ).status == 409
            assert (await w.client.post("/containers/stopped/stop", headers=bob)).status == 304
            # a read-only token may not write: recorded as its user's refusal
            reader = w.headers("bob-read")
            assert (await w.client.delete("/volumes/data", headers=reader)).status == 403
            assert (await w.client.post("/nowhere", headers=bob)).status == 404
            got = [(r.user, r.action, r.target, r.status, r.error) for r in await w.records()]
            assert got == [
                ("bob", "", "", 404, "page not found: POST /nowhere"),
                ("bob", "volume_delete", "data", 403, "this token lacks the 'write' scope"),
                ("bob", "container_stop", "stopped", 304, ""),
                (
                    "bob",
                    "container_create",
                    "taken",
                    409,
                    'Conflict. The container name "/taken" is already in use',
                ),
                ("bob", "container_create", "", 403, "--privileged is not allowed"),
            ]
            assert all(r.created == "" for r in await w.records())
            assert [r.status for r in await w.records(result="error")] == [404, 403, 409, 403]
            assert [r.status for r in await w.records(result="ok")] == [304]

    run(scenario)


def test_reads_and_waits_are_not_recorded_and_tags_are(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            ann = w.headers("ann")
            listed = await w.client.get("/containers/json", headers=ann)
            assert listed.status == 200 and REQUEST_ID_HEADER not in listed.headers
            assert (await w.client.head("/containers/json", headers=ann)).status == 200
            assert (await w.client.post("/containers/c1/wait", headers=ann)).status == 200
            assert (await w.client.get("/v1/audit", headers=ann)).status == 200
            assert await w.records() == []
            assert (
                await w.client.post("/images/busybox/tag?repo=acme/app&tag=v1", headers=ann)
            ).status == 201
            [tagged] = await w.records()
            assert (tagged.action, tagged.target, tagged.created) == (
                "image_tag",
                "busybox",
                "acme/app:v1",
            )

    run(scenario)


def test_a_token_made_is_recorded_by_id_never_by_its_text(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            made = await w.client.post("/v1/tokens", json={}, headers=w.headers("bob"))
            assert made.status == 201
            [record] = await w.records()
            assert record.created == "1" * 16
            assert "s" * 43 not in repr(record)

    run(scenario)


# failed authentications ---------------------------------------------------------------------


def test_failed_authentications_go_to_the_operator_log_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            ann_id = w.tokens["ann"].split("_")[1]
            forged = f"dyk_{ann_id}_" + "x" * 43
            assert (await w.client.get("/containers/json")).status == 401
            assert (
                await w.client.post("/containers/c1/stop", headers={TOKEN_HEADER: forged})
            ).status == 401
            bearer = {"Authorization": "Bearer not-a-token"}
            assert (await w.client.delete("/volumes/v", headers=bearer)).status == 401
            assert (await w.client.get("/info", headers=bearer)).status == 401
            # three failures from this source: blocked, even with a good token
            assert (await w.client.get("/containers/json", headers=w.headers("ann"))).status == 429
            assert await w.records() == [], "nothing reaches the tenant whose token id was named"
            got = [
                (r.user, r.token, r.action, r.method, r.status, r.error)
                for r in await w.records(OPERATOR_LOG)
            ]
            assert got == [
                ("", ann_id, "container_list", "GET", 429, got[0][5]),
                ("", "", "", "GET", 401, "invalid token"),
                ("", "", "volume_delete", "DELETE", 401, "invalid token"),
                ("", ann_id, "container_stop", "POST", 401, "invalid token"),
                ("", "", "container_list", "GET", 401, got[4][5]),
            ]
            assert "too many failed authentications" in got[0][5]
            assert "authentication required" in got[4][5]
            assert all("x" * 43 not in repr(r) for r in await w.records(OPERATOR_LOG))

    run(scenario)


# streams and interrupted calls --------------------------------------------------------------


def test_a_hijacked_stream_is_recorded_when_it_begins(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            host, port = w.client.server.host, w.client.server.port
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                b"POST /containers/c1/attach?stream=1 HTTP/1.1\r\nHost: x\r\n"
                b"Upgrade: tcp\r\nConnection: Upgrade\r\n"
                + f"{TOKEN_HEADER}: {w.tokens['bob']}\r\n".encode()
                + b"Content-Length: 0\r\n\r\n"
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            assert REQUEST_ID_HEADER.lower().encode() in head.lower()
            await w.state["opened"].wait()
            # the stream is still open: the call is in the log already
            [record] = await w.records()
            assert (record.user, record.action, record.target, record.status) == (
                "bob",
                "container_attach",
                "c1",
                101,
            )
            assert await reader.readline() == b"hello\n"
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)
            assert len(await w.records()) == 1, "recorded once, at the start"

    run(scenario)


def test_a_call_cancelled_before_its_answer_is_recorded_without_status(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, handler_cancellation=True) as w:
            with pytest.raises(asyncio.TimeoutError):
                await w.client.post(
                    "/slow",
                    headers=w.headers("ann"),
                    timeout=aiohttp.ClientTimeout(total=0.3),
                )
            await asyncio.wait_for(w.state["cancelled"].wait(), 10)
            [record] = await w.records()
            assert (record.action, record.status) == ("slow_call", 0)
            assert "interrupted" in record.error
            assert not record.ok

    run(scenario)


# the operator's socket ----------------------------------------------------------------------


def test_operator_calls_go_to_the_log_of_the_tenant_they_touch(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
        identity = IdentityService(store)
        audit = AuditLog(store, keep=100, max_age=0)
        acme = identity.create_tenant("acme", user="ann")
        admin_routes = web.RouteTableDef()

        @admin_routes.post("/admin/v1/tenants")
        async def create_tenant(request: web.Request) -> web.Response:
            made = identity.create_tenant("globex", user="gil")
            note(request, tenant=made.tenant.id, created=made.tenant.id)
            return json_response({"token": made.token.text}, status=201)

        @admin_routes.post("/admin/v1/tenants/{tenant}/users")
        async def add_user(request: web.Request) -> web.Response:
            user = identity.add_user(identity.tenant(request.match_info["tenant"]).id, "cy")
            return json_response({"id": user.id, "name": user.name}, status=201)

        @admin_routes.delete("/admin/v1/tenants/{tenant}")
        async def delete_tenant(request: web.Request) -> web.Response:
            raise InvalidArgument("no such tenant here")

        def tenant_id(name: str) -> str:
            try:
                return identity.tenant(name).id
            except Exception:
                return ""

        recorder = AuditRecorder(audit, caller=operator_caller(tenant_id))
        app = web.Application(middlewares=[recorder.middleware, docker_errors])
        recorder.install(app)
        app.add_routes(admin_routes)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            assert (await client.post("/admin/v1/tenants/acme/users", json={})).status == 201
            assert (await client.post("/admin/v1/tenants", json={})).status == 201
            assert (await client.delete("/admin/v1/tenants/initech")).status == 400
        finally:
            await client.close()
        globex = identity.tenant("globex").id
        [added] = await audit.read(acme.tenant.id, AuditQuery())
        assert (added.user, added.action, added.target) == (OPERATOR, "add_user", "acme")
        assert added.created == identity.user(acme.tenant.id, "cy").id
        [made] = await audit.read(globex, AuditQuery())
        assert (made.user, made.action, made.created) == (OPERATOR, "create_tenant", globex)
        [refused] = await audit.read(OPERATOR_LOG, AuditQuery())
        assert (refused.action, refused.target, refused.status) == ("delete_tenant", "initech", 400)
        await audit.close()
        store.close()

    run(scenario)


# reading ------------------------------------------------------------------------------------


def test_the_read_endpoint_filters_and_pages(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            for name in ("a", "b", "c"):
                await w.client.post(f"/containers/{name}/stop", headers=w.headers("ann"))
            await w.client.post("/containers/b/stop", headers=w.headers("bob"))
            ann = w.headers("ann")

            async def read(query: str) -> list[dict[str, Any]]:
                response = await w.client.get(f"/v1/audit?{query}", headers=ann)
                assert response.status == 200, await response.text()
                assert response.headers["Content-Type"] == "application/json"
                result: list[dict[str, Any]] = await response.json()
                return result

            every = await read("")
            assert [(r["user"], r["target"]) for r in every] == [
                ("bob", "b"),
                ("ann", "c"),
                ("ann", "b"),
                ("ann", "a"),
            ]
            assert set(every[0]) == {
                "seq", "time", "tenant", "user", "user_id", "token", "cert", "source", "action",
                "method", "path", "target", "created", "status", "error", "request_id",
            }  # fmt: skip
            assert [r["target"] for r in await read("user=ann&limit=2")] == ["c", "b"]
            page = await read(f"limit=2&before={every[1]['seq']}")
            assert [r["target"] for r in page] == ["b", "a"]
            assert [r["user"] for r in await read("target=b")] == ["bob", "ann"]
            assert len(await read("action=container_st&result=204")) == 4
            assert await read("result=error") == []
            assert len(await read("since=1h")) == 4
            assert await read(f"until={every[-1]['time'] // 10**9 - 60}") == []
            for bad in ("limit=0", "limit=10001", "result=maybe", "since=yesterday", "before=x"):
                response = await w.client.get(f"/v1/audit?{bad}", headers=ann)
                assert response.status == 400, bad
            # tenant B's admin reads its own, empty log
            theirs = await w.client.get("/v1/audit", headers=w.headers("gil"))
            assert await theirs.json() == []

    run(scenario)


def test_audit_query_reads_docker_style_times() -> None:
    async def scenario() -> AuditQuery:
        request = make_mocked_request(
            "GET", "/v1/audit?since=1700000000.5&until=2023-11-14T22:13:21Z&limit=7"
        )
        return audit_query(request)

    query = run(scenario)
    assert query.since == 1_700_000_000_500_000_000
    assert query.until == 1_700_000_001_000_000_000
    assert query.limit == 7
