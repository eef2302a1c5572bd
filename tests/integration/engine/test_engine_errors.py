"""Malformed and hostile requests: a 4xx with a Docker-style message, and nothing left behind."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from dockyard.core.identity import TOKEN_HEADER
from dockyard.testing.cloud import TestCloud


class Raw(http.client.HTTPConnection):
    """Plain HTTP over the cloud's unix socket, to send what no client library would."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@pytest.fixture
def call(cloud: TestCloud):  # type: ignore[no-untyped-def]
    def request(
        method: str, path: str, body: bytes | str | None = None, **headers: str
    ) -> tuple[int, Any, dict[str, str]]:
        conn = Raw(str(cloud.layout.docker_socket))
        try:
            payload = body.encode() if isinstance(body, str) else body
            hdrs = {"Content-Type": "application/json", TOKEN_HEADER: cloud.token, **headers}
            conn.request(method, path, body=payload, headers=hdrs)
            response = conn.getresponse()
            raw = response.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw.decode(errors="replace")
            return response.status, data, dict(response.getheaders())
        finally:
            conn.close()

    return request


def containers_and_bundles(call, cloud: TestCloud) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    status, listed, _ = call("GET", "/v1.41/containers/json?all=1")
    assert status == 200
    layout = cloud.layout
    kept = {p.name for p in layout.containers_dir.iterdir()}
    return len(listed), len(kept | {p.name for p in layout.bundles_dir.iterdir()})


CREATE_CASES = [
    ("not json", b"{not json", "invalid JSON"),
    ("not an object", b"[1, 2]", "must be an object"),
    ("empty body", b"", "empty"),
    ("no image", b'{"Cmd": ["true"]}', "Image"),
    ("cmd wrong type", b'{"Image": "busybox", "Cmd": 5}', "Cmd"),
    ("env wrong type", b'{"Image": "busybox", "Env": "A=b"}', "Env"),
    ("labels wrong type", b'{"Image": "busybox", "Labels": ["a"]}', "Labels"),
    ("memory negative", b'{"Image": "busybox", "HostConfig": {"Memory": -5}}', "negative"),
    ("memory too small", b'{"Image": "busybox", "HostConfig": {"Memory": 1024}}', "6MB"),
    ("memory absurd", b'{"Image": "busybox", "HostConfig": {"Memory": 1e30}}', "Memory"),
    (
        "memory huge",
        b'{"Image": "busybox", "HostConfig": {"Memory": 9000000000000000000}}',
        "exceeds",
    ),
    (
        "cpus absurd",
        b'{"Image": "busybox", "HostConfig": {"NanoCpus": 999999000000000}}',
        "Range of CPUs",
    ),
    ("cpu shares negative", b'{"Image": "busybox", "HostConfig": {"CpuShares": -1}}', "negative"),
    (
        "restart policy bogus",
        b'{"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}',
        "restart policy",
    ),
    (
        "autoremove with restart",
        b'{"Image": "busybox", "HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": '
        b'"always"}}}',
        "AutoRemove",
    ),
    (
        "bad port",
        b'{"Image": "busybox", "HostConfig": {"PortBindings": {"99999/tcp": [{}]}}}',
        "port",
    ),
    (
        "bad host port",
        b'{"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}}}',
        "host port",
    ),
    (
        "bad protocol",
        b'{"Image": "busybox", "HostConfig": {"PortBindings": {"80/sctp": [{}]}}}',
        "protocol",
    ),
    ("relative workdir", b'{"Image": "busybox", "WorkingDir": "rel/dir"}', "absolute"),
    ("relative volume", b'{"Image": "busybox", "HostConfig": {"Binds": ["v:rel"]}}', "absolute"),
    ("bad volume name", b'{"Image": "busybox", "HostConfig": {"Binds": ["a b:/x"]}}', "volume"),
    (
        "bad tmpfs option",
        b'{"Image": "busybox", "HostConfig": {"Tmpfs": {"/t": "exec,bogus"}}}',
        "tmpfs",
    ),
    (
        "unknown capability",
        b'{"Image": "busybox", "HostConfig": {"CapAdd": ["CAP_FOO"]}}',
        "capability",
    ),
    (
        "bad log driver",
        b'{"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "splunk"}}}',
        "logging",
    ),
    ("bad stop timeout type", b'{"Image": "busybox", "StopTimeout": "ten"}', "StopTimeout"),
    ("bad healthcheck", b'{"Image": "busybox", "Healthcheck": {"Test": 3}}', "Test"),
]


@pytest.mark.parametrize(("case", "body", "needle"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES])
def test_bad_create_is_400_and_leaves_nothing(
    call,
    cloud: TestCloud,
    case: str,
    body: bytes,
    needle: str,  # type: ignore[no-untyped-def]
) -> None:
    before = containers_and_bundles(call, cloud)
    status, data, headers = call("POST", "/v1.41/containers/create", body)
    assert status == 400, (case, data)
    assert isinstance(data, dict) and needle.lower() in data["message"].lower(), data
    assert headers["Content-Type"] == "application/json"
    assert containers_and_bundles(call, cloud) == before


def test_unknown_image_is_404(call, cloud: TestCloud) -> None:  # type: ignore[no-untyped-def]
    before = containers_and_bundles(call, cloud)
    status, data, _ = call(
        "POST", "/v1.41/containers/create", '{"Image": "nosuchimage:1", "Cmd": ["true"]}'
    )
    assert status == 404 and "No such image: nosuchimage:1" in data["message"]
    assert containers_and_bundles(call, cloud) == before


@pytest.mark.parametrize("name", ["bad name", "-dash", "a/b", "x" * 300, "ümlaut"])
def test_invalid_names_are_400(call, cloud: TestCloud, name: str) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    before = containers_and_bundles(call, cloud)
    status, data, _ = call(
        "POST",
        f"/v1.41/containers/create?name={quote(name)}",
        '{"Image": "busybox", "Cmd": ["true"]}',
    )
    assert status == 400 and "Invalid container name" in data["message"]
    assert containers_and_bundles(call, cloud) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1.41/containers/nope/json"),
        ("POST", "/v1.41/containers/nope/start"),
        ("POST", "/v1.41/containers/nope/stop"),
        ("POST", "/v1.41/containers/nope/kill"),
        ("POST", "/v1.41/containers/nope/wait"),
        ("DELETE", "/v1.41/containers/nope"),
        ("GET", "/v1.41/containers/nope/logs?stdout=1"),
        ("GET", "/v1.41/containers/nope/top"),
        ("POST", "/v1.41/containers/nope/attach?stream=1&stdout=1"),
        ("GET", "/v1.41/images/nope:1/json"),
        ("DELETE", "/v1.41/images/nope:1"),
        ("GET", "/v1.41/volumes/nope"),
        ("DELETE", "/v1.41/volumes/nope"),
        ("GET", "/v1.41/networks/nope"),
    ],
)
def test_missing_objects_are_404(call, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    status, data, headers = call(method, path)
    assert status == 404, data
    assert data["message"]
    assert headers["Content-Type"] == "application/json"


def test_kill_with_bad_signal(call) -> None:  # type: ignore[no-untyped-def]
    status, data, _ = call(
        "POST", "/v1.41/containers/create", '{"Image": "busybox", "Cmd": ["sleep", "30"]}'
    )
    cid = data["Id"]
    try:
        assert call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        status, data, _ = call("POST", f"/v1.41/containers/{cid}/kill?signal=SIGBOGUS")
        assert status == 400 and "signal" in data["message"].lower()
        status, data, _ = call("POST", f"/v1.41/containers/{cid}/kill?signal=99")
        assert status == 400
    finally:
        call("DELETE", f"/v1.41/containers/{cid}?force=1")


def test_bad_query_values(call) -> None:  # type: ignore[no-untyped-def]
    assert call("GET", "/v1.41/containers/json?filters={bad")[0] == 400
    assert call("GET", '/v1.41/containers/json?filters={"status":["sleepy"]}')[0] == 400
    assert call("GET", "/v1.41/containers/json?limit=abc")[0] == 400
    assert call("GET", '/v1.41/images/json?filters={"nope":["x"]}')[0] == 400
    assert call("POST", "/v1.41/containers/x/wait?condition=whenever")[0] in (400, 404)


def test_versions_and_unknown_paths(call) -> None:  # type: ignore[no-untyped-def]
    status, data, _ = call("GET", "/v1.12/version")
    assert status == 400 and "too old" in data["message"]
    status, data, _ = call("GET", "/v9.99/version")
    assert status == 400 and "too new" in data["message"]
    status, data, _ = call("GET", "/v1.41/no/such/endpoint")
    assert status == 404 and data["message"]
    status, data, _ = call("DELETE", "/v1.41/info")
    assert status == 405 and data["message"]
    status, _, headers = call("GET", "/_ping")
    assert status == 200 and headers["API-Version"] == "1.41"
    assert call("GET", "/v1.41/version")[0] == 200 and call("GET", "/version")[0] == 200


def test_bad_volume_create(call) -> None:  # type: ignore[no-untyped-def]
    assert call("POST", "/v1.41/volumes/create", '{"Name": "bad name"}')[0] == 400
    assert call("POST", "/v1.41/volumes/create", '{"Name": "v", "Driver": "nfs"}')[0] == 400
    assert call("POST", "/v1.41/volumes/create", '{"Name": 5}')[0] == 400
    _, data, _ = call("GET", "/v1.41/volumes")
    assert all(v["Name"] != "bad name" for v in data["Volumes"] or [])
