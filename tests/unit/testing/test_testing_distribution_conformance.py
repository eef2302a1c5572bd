"""distribution_conformance: Docker token auth, the check recorder and compare(), against a
stub registry (the workflows themselves run against a real one in
tests/integration/registry)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dockyard.testing import distribution_conformance
from dockyard.testing._distribution_checks import Failed, Recorder, Skip
from dockyard.testing._distribution_http import AuthError, Session
from dockyard.testing.distribution_conformance import CheckResult, compare, run_conformance

_BASIC = "Basic " + base64.b64encode(b"alice:secret").decode()


@dataclass
class Stub:
    """A registry that wants ``Bearer tok`` and a realm that gives it to alice."""

    url: str = ""
    token_queries: list[dict[str, list[str]]] = field(default_factory=list)
    token_auth: list[str | None] = field(default_factory=list)
    challenges: int = 0
    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            auth = self.headers.get("Authorization")
            if parts.path == "/token":
                state.token_queries.append(urllib.parse.parse_qs(parts.query))
                state.token_auth.append(auth)
                if auth not in (None, _BASIC):
                    self._send(401, b'{"details":"bad credentials"}', {})
                    return
                self._send(200, json.dumps({"token": "tok"}).encode(), {})
                return
            state.seen.append((self.path, auth or ""))
            if auth != "Bearer tok":
                state.challenges += 1
                challenge = (
                    f'Bearer realm="{state.url}/token",service="stub",scope="repository:other:pull"'
                )
                self._send(
                    401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge}
                )
                return
            self._send(200, b"{}", {"Location": "uploads/next?_state=a%2Bb"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_public_surface() -> None:
    assert set(distribution_conformance.__all__) == {
        "WORKFLOWS",
        "CheckResult",
        "compare",
        "run_conformance",
    }


def test_bearer_challenge_gets_a_token_and_retries(stub: Stub) -> None:
    session = Session(
        stub.url, credentials=("alice", "secret"), scopes=["repository:app:pull,push,delete"]
    )
    assert session.request("GET", "/v2/").status == 200
    (query,) = stub.token_queries
    assert query == {
        "service": ["stub"],
        "scope": ["repository:other:pull", "repository:app:pull,push,delete"],
        "account": ["alice"],
    }
    assert stub.token_auth == [_BASIC]
    # The token is sent up front from then on: no second challenge, no second token.
    assert session.request("GET", "/v2/app/tags/list").status == 200
    assert stub.challenges == 1 and len(stub.token_queries) == 1
    assert stub.seen[-1] == ("/v2/app/tags/list", "Bearer tok")


def test_anonymous_token(stub: Stub) -> None:
    assert Session(stub.url).request("GET", "/v2/").status == 200
    assert stub.token_auth == [None]
    assert "account" not in stub.token_queries[0]


def test_refused_token_is_a_failed_check(stub: Stub) -> None:
    session = Session(stub.url, credentials=("alice", "wrong"))
    with pytest.raises(AuthError, match="401"):
        session.request("GET", "/v2/")
    recorder = Recorder(session, "app", "pull")
    with recorder.check("base"):
        session.request("GET", "/v2/")
    (result,) = recorder.results
    assert not result.passed and result.detail.startswith("AuthError: token realm answered")


def test_location_is_made_absolute_and_queries_merge(stub: Stub) -> None:
    session = Session(stub.url)
    answer = session.request("GET", "/v2/app/blobs/uploads/x", query=[("digest", "sha256:1")])
    assert answer.location == f"{stub.url}/v2/app/blobs/uploads/uploads/next?_state=a%2Bb"
    session.request("GET", answer.location, query=[("digest", "sha256:2")])
    path, _ = stub.seen[-1]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) == {
        "_state": ["a+b"],
        "digest": ["sha256:2"],
    }


def test_recorder_records_passes_failures_and_skips_nothing() -> None:
    recorder = Recorder(Session("http://127.0.0.1:1"), "app", "push")
    with recorder.check("ok"):
        pass
    with recorder.check("bad"):
        raise Failed("PUT -> 500")
    with recorder.check("not applicable"):
        raise Skip
    with recorder.check("refused"):
        recorder.get("/v2/")  # nothing listens on port 1
    with recorder.check("html"):
        json.loads(b"<html>")
    assert [(r.name, r.passed) for r in recorder.results] == [
        ("ok", True),
        ("bad", False),
        ("refused", False),
        ("html", False),
    ]
    assert recorder.results[1].detail == "PUT -> 500"
    assert recorder.results[2].detail.startswith("ConnectionRefusedError")
    assert recorder.results[3].detail.startswith("malformed answer: JSONDecodeError")


def test_compare_lists_what_passes_on_bare_only() -> None:
    bare = [
        CheckResult("pull", "a", passed=True),
        CheckResult("pull", "b", passed=True),
        CheckResult("push", "c", passed=False),
        CheckResult("push", "d", passed=True),
    ]
    ours = [
        CheckResult("pull", "a", passed=True),
        CheckResult("pull", "b", passed=False, detail="404"),
        CheckResult("push", "c", passed=True),
    ]
    assert compare(bare, ours) == ["pull: b", "push: d"]
    assert compare(bare, bare) == []


def test_unknown_workflow() -> None:
    with pytest.raises(ValueError, match="unknown workflows"):
        run_conformance("http://127.0.0.1:1", "app", workflows=("pull", "gc"))
