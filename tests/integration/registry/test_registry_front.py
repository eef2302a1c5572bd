"""The registry through its front, as a Docker client sees it: the 401 challenge, the
token dance with a tenant's name and Dockyard token, push and pull of blobs and an OCI
manifest (monolithic and chunked uploads, big blobs streamed), another tenant and
anonymous callers refused exactly as for a repository that does not exist, anonymous
pulls of curated images, bad uploads rejected by the registry, the OAuth2 form of the
token endpoint, rate limiting, and the registry surviving its own death and the
controller's."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from dockyard.controller.registry import registry_pids
from dockyard.controller.registry_auth import RegistryTokens
from dockyard.core.registry import REGISTRY_SERVICE, Access
from dockyard.testing.cloud import TestCloud

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Tenant:
    name: str
    user: str
    token: str  # the user's Dockyard token: the registry password


def make_tenant(cloud: TestCloud, namespace: str = "") -> Tenant:
    operator = cloud.admin()
    name = f"t{uuid.uuid4().hex[:8]}"
    made = operator.create_tenant(name, user="ann")
    if namespace:
        operator.assign_namespace(name, namespace)
    return Tenant(name=name, user="ann", token=made["token"])


@pytest.fixture(scope="module")
def acme(cloud: TestCloud) -> Tenant:
    """Tenant A: owns ``acmeco``, claimed through the native API with its admin's token."""
    from dockyard.client.native import NativeClient

    tenant = make_tenant(cloud)
    NativeClient(cloud.docker_host, tenant.token).claim_namespace("acmeco")
    return tenant


@pytest.fixture(scope="module")
def globex(cloud: TestCloud) -> Tenant:
    """Tenant B: owns ``globexco``."""
    return make_tenant(cloud, "globexco")


def url(cloud: TestCloud, path: str) -> str:
    return f"http://{cloud.registry}{path}"


def token(cloud: TestCloud, *scopes: str, auth: tuple[str, str] | None = None) -> requests.Response:
    params = [("service", REGISTRY_SERVICE), *(("scope", s) for s in scopes)]
    return requests.get(url(cloud, "/token"), params=params, auth=auth, timeout=30)


def bearer(cloud: TestCloud, *scopes: str, tenant: Tenant | None = None) -> dict[str, str]:
    response = token(cloud, *scopes, auth=(tenant.user, tenant.token) if tenant else None)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(cloud: TestCloud, repo: str, data: bytes, headers: dict[str, str]) -> str:
    """Monolithic upload: POST a session, PUT the bytes with ``?digest=``."""
    started = requests.post(url(cloud, f"/v2/{repo}/blobs/uploads/"), headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location.startswith("/v2/"), "the registry writes relative locations"
    sep = "&" if "?" in location else "?"
    done = requests.put(
        url(cloud, f"{location}{sep}digest={digest(data)}"),
        data=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest(data)
    return digest(data)


def image(layer: bytes) -> tuple[bytes, bytes]:
    """(config, manifest) of a one-layer OCI image."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
            "config": {},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest(layer), "size": len(layer)}],
        }
    ).encode()
    return config, manifest


def push_image(
    cloud: TestCloud, repo: str, tag: str, layer: bytes, headers: dict[str, str]
) -> bytes:
    config, manifest = image(layer)
    push_blob(cloud, repo, layer, headers)
    push_blob(cloud, repo, config, headers)
    put = requests.put(
        url(cloud, f"/v2/{repo}/manifests/{tag}"),
        data=manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest(manifest)
    return manifest


def error_codes(response: requests.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


@pytest.fixture(scope="module")
def pushed(cloud: TestCloud, acme: Tenant) -> Iterator[tuple[bytes, bytes]]:
    """acmeco/app:v1, pushed by acme: (layer, manifest)."""
    headers = bearer(cloud, "repository:acmeco/app:pull,push", tenant=acme)
    layer = os.urandom(200_000)
    yield layer, push_image(cloud, "acmeco/app", "v1", layer, headers)


# the challenge and the token service ---------------------------------------------------------


def test_dockyard_env_prints_the_registry(cloud: TestCloud) -> None:
    layout = cloud.layout
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dockyard"),
            "env",
            *("--state-dir", str(layout.state_dir), "--run-dir", str(layout.run_dir)),
            *("--instance", layout.instance),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"export DOCKYARD_REGISTRY={cloud.registry}" in result.stdout.splitlines()


def test_v2_answers_with_the_bearer_challenge(cloud: TestCloud) -> None:
    response = requests.get(url(cloud, "/v2/"), timeout=30)
    assert response.status_code == 401
    assert response.headers["Www-Authenticate"] == (
        f'Bearer realm="http://{cloud.registry}/token",service="{REGISTRY_SERVICE}"'
    )
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert error_codes(response) == ["UNAUTHORIZED"]
    assert (cloud.layout.registry_endpoint_file.read_text().strip()) == cloud.registry


def test_a_login_gets_a_token_that_opens_v2(cloud: TestCloud, acme: Tenant) -> None:
    """``docker login``: GET /v2/, then /token with basic auth and no scope."""
    response = token(cloud, auth=(acme.user, acme.token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    opened = requests.get(
        url(cloud, "/v2/"), headers={"Authorization": f"Bearer {body['token']}"}, timeout=30
    )
    assert opened.status_code == 200


@pytest.mark.parametrize(
    "auth",
    [
        ("ann", "dyk_0000000000000000_" + "x" * 43),  # no such token
        ("bob", None),  # a good token, another user's name
        ("ann", "hunter2"),
    ],
)
def test_wrong_credentials_get_401_in_the_registry_form(
    cloud: TestCloud, acme: Tenant, auth: tuple[str, str | None]
) -> None:
    user, password = auth
    response = token(cloud, "repository:acmeco/app:pull", auth=(user, password or acme.token))
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]


def test_the_oauth2_form(cloud: TestCloud, acme: Tenant) -> None:
    form = {
        "grant_type": "password",
        "username": acme.user,
        "password": acme.token,
        "service": REGISTRY_SERVICE,
        "scope": "repository:acmeco/app:pull repository:globexco/app:pull",
        "client_id": "test",
    }
    response = requests.post(url(cloud, "/token"), data=form, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "repository:acmeco/app:pull"  # globexco's: not granted
    wrong = requests.post(url(cloud, "/token"), data={**form, "password": "nope"}, timeout=30)
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_grant")
    refresh = requests.post(
        url(cloud, "/token"),
        data={"grant_type": "refresh_token", "refresh_token": "x", "service": REGISTRY_SERVICE},
        timeout=30,
    )
    assert (refresh.status_code, refresh.json()["error"]) == (400, "unsupported_grant_type")


# push and pull -------------------------------------------------------------------------------


def test_a_tenant_pushes_and_pulls_its_own_repository(
    cloud: TestCloud, acme: Tenant, pushed: tuple[bytes, bytes]
) -> None:
    layer, manifest = pushed
    headers = bearer(cloud, "repository:acmeco/app:pull", tenant=acme)
    got = requests.get(
        url(cloud, "/v2/acmeco/app/manifests/v1"),
        headers={**headers, "Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert got.status_code == 200, got.text
    assert got.content == manifest
    assert got.headers["Content-Type"] == OCI_MANIFEST
    assert got.headers["Docker-Content-Digest"] == digest(manifest)
    head = requests.head(url(cloud, f"/v2/acmeco/app/blobs/{digest(layer)}"), headers=headers)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(layer))
    assert head.headers["Docker-Content-Digest"] == digest(layer)
    blob = requests.get(url(cloud, f"/v2/acmeco/app/blobs/{digest(layer)}"), headers=headers)
    assert blob.content == layer
    tags = requests.get(url(cloud, "/v2/acmeco/app/tags/list"), headers=headers, timeout=30)
    assert tags.json() == {"name": "acmeco/app", "tags": ["v1"]}


def test_a_big_blob_streams_through_chunked_both_ways(cloud: TestCloud, acme: Tenant) -> None:
    """A 48 MiB blob sent chunked (no Content-Length) in a PATCH, then read back."""
    headers = bearer(cloud, "repository:acmeco/big:pull,push", tenant=acme)
    piece = os.urandom(1 << 20)
    pieces = 48
    whole = hashlib.sha256()
    for _ in range(pieces):
        whole.update(piece)
    expected = "sha256:" + whole.hexdigest()
    started = requests.post(url(cloud, "/v2/acmeco/big/blobs/uploads/"), headers=headers)
    assert started.status_code == 202
    patched = requests.patch(
        url(cloud, started.headers["Location"]),
        data=(piece for _ in range(pieces)),  # a generator: Transfer-Encoding: chunked
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=300,
    )
    assert patched.status_code == 202, patched.text
    assert patched.headers["Range"] == f"0-{pieces * len(piece) - 1}"
    location = patched.headers["Location"]
    done = requests.put(url(cloud, f"{location}&digest={expected}"), headers=headers, timeout=60)
    assert done.status_code == 201, done.text
    with requests.get(
        url(cloud, f"/v2/acmeco/big/blobs/{expected}"), headers=headers, stream=True, timeout=300
    ) as pulled:
        assert pulled.status_code == 200
        back = hashlib.sha256()
        size = 0
        for chunk in pulled.iter_content(1 << 20):
            back.update(chunk)
            size += len(chunk)
    assert (size, "sha256:" + back.hexdigest()) == (pieces * len(piece), expected)


def test_an_upload_is_cancelled_and_forgotten(cloud: TestCloud, acme: Tenant) -> None:
    # (distribution asks for delete to cancel an upload)
    headers = bearer(cloud, "repository:acmeco/app:pull,push,delete", tenant=acme)
    started = requests.post(url(cloud, "/v2/acmeco/app/blobs/uploads/"), headers=headers)
    assert started.status_code == 202
    location = url(cloud, started.headers["Location"])
    status = requests.get(location, headers=headers, timeout=30)
    assert (status.status_code, status.headers["Range"]) == (204, "0-0")
    cancelled = requests.delete(location, headers=headers, timeout=30)
    assert (cancelled.status_code, cancelled.content) == (204, b"")
    gone = requests.get(location, headers=headers, timeout=30)
    assert gone.status_code == 404
    assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]


def test_a_blob_with_a_wrong_digest_is_rejected(cloud: TestCloud, acme: Tenant) -> None:
    headers = bearer(cloud, "repository:acmeco/bad:pull,push", tenant=acme)
    started = requests.post(url(cloud, "/v2/acmeco/bad/blobs/uploads/"), headers=headers)
    assert started.status_code == 202
    location = started.headers["Location"]
    wrong = requests.put(
        url(cloud, f"{location}&digest={digest(b'something else')}"),
        data=b"the bytes",
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert wrong.status_code == 400
    assert error_codes(wrong) == ["DIGEST_INVALID"]
    missing = requests.head(
        url(cloud, f"/v2/acmeco/bad/blobs/{digest(b'the bytes')}"), headers=headers
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}}).encode(),
    ],
)
def test_a_malformed_manifest_is_rejected(cloud: TestCloud, acme: Tenant, body: bytes) -> None:
    headers = bearer(cloud, "repository:acmeco/bad:pull,push", tenant=acme)
    put = requests.put(
        url(cloud, "/v2/acmeco/bad/manifests/v1"),
        data=body,
        headers={**headers, "Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert put.status_code == 400, put.text
    # distribution names what is wrong: not JSON; a config without a valid digest
    assert set(error_codes(put)) & {"MANIFEST_INVALID", "DIGEST_INVALID"}


def test_a_manifest_naming_missing_blobs_is_rejected(cloud: TestCloud, acme: Tenant) -> None:
    headers = bearer(cloud, "repository:acmeco/bad:pull,push", tenant=acme)
    _, manifest = image(b"never pushed")
    put = requests.put(
        url(cloud, "/v2/acmeco/bad/manifests/v1"),
        data=manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert put.status_code == 400
    assert "MANIFEST_BLOB_UNKNOWN" in error_codes(put)


# isolation ---------------------------------------------------------------------------------


def _attempts(cloud: TestCloud, repo: str, headers: dict[str, str], layer: bytes) -> list[object]:
    """What pull, tag listing, blob reads and a push of ``repo`` answer (status, codes)."""
    answers: list[object] = []
    for method, path in (
        ("GET", f"/v2/{repo}/manifests/v1"),
        ("HEAD", f"/v2/{repo}/manifests/v1"),
        ("GET", f"/v2/{repo}/tags/list"),
        ("GET", f"/v2/{repo}/blobs/{digest(layer)}"),
        ("POST", f"/v2/{repo}/blobs/uploads/"),
        ("DELETE", f"/v2/{repo}/manifests/v1"),
    ):
        response = requests.request(method, url(cloud, path), headers=headers, timeout=30)
        challenge = response.headers.get("Www-Authenticate", "").replace(repo, "<repo>")
        # the registry lists a challenge's actions in no fixed order (a Go map)
        challenge = re.sub(
            r'(scope="[^"]*:)([a-z,]+)"',
            lambda m: m[1] + ",".join(sorted(m[2].split(","))) + '"',
            challenge,
        )
        body = error_codes(response) if response.content else []
        answers.append(
            (method, path.replace(repo, "<repo>"), response.status_code, body, challenge)
        )
    return answers


def test_another_tenant_sees_the_repository_as_missing(
    cloud: TestCloud, globex: Tenant, pushed: tuple[bytes, bytes]
) -> None:
    layer, _ = pushed
    asked = "repository:acmeco/app:pull,push,delete"
    granted = token(cloud, asked, auth=(globex.user, globex.token))
    assert granted.status_code == 200
    headers = {"Authorization": f"Bearer {granted.json()['token']}"}
    theirs = _attempts(cloud, "acmeco/app", headers, layer)
    nowhere_headers = bearer(cloud, "repository:nobodyns/app:pull,push,delete", tenant=globex)
    nowhere = _attempts(cloud, "nobodyns/app", nowhere_headers, layer)
    assert theirs == nowhere
    assert {status for _, _, status, _, _ in theirs} == {401}  # type: ignore[misc]


def test_anonymous_callers_cannot_touch_a_tenants_repository(
    cloud: TestCloud, pushed: tuple[bytes, bytes]
) -> None:
    layer, _ = pushed
    headers = bearer(cloud, "repository:acmeco/app:pull,push")
    assert _attempts(cloud, "acmeco/app", headers, layer) == _attempts(
        cloud, "nobodyns/app", bearer(cloud, "repository:nobodyns/app:pull,push"), layer
    )
    no_token = requests.get(url(cloud, "/v2/acmeco/app/tags/list"), timeout=30)
    assert no_token.status_code == 401


def test_anonymous_callers_pull_curated_images_but_cannot_push(
    cloud: TestCloud, acme: Tenant
) -> None:
    # The operator publishes (what `dockyard images seed` will do), with a token the
    # controller's key signs.
    operator = RegistryTokens(cloud.layout.registry_token_dir, service=REGISTRY_SERVICE)
    scope = Access("repository", "library/tool", ("pull", "push"))
    op_headers = {"Authorization": f"Bearer {operator.mint('operator', [scope])}"}
    layer = os.urandom(10_000)
    manifest = push_image(cloud, "library/tool", "latest", layer, op_headers)

    anonymous = bearer(cloud, "repository:library/tool:pull,push")
    got = requests.get(
        url(cloud, "/v2/library/tool/manifests/latest"),
        headers={**anonymous, "Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert (got.status_code, got.content) == (200, manifest)
    assert (
        requests.get(
            url(cloud, f"/v2/library/tool/blobs/{digest(layer)}"), headers=anonymous
        ).content
        == layer
    )
    push = requests.post(url(cloud, "/v2/library/tool/blobs/uploads/"), headers=anonymous)
    assert push.status_code == 401
    tenant_headers = bearer(cloud, "repository:library/tool:pull,push,delete", tenant=acme)
    assert (
        requests.post(
            url(cloud, "/v2/library/tool/blobs/uploads/"), headers=tenant_headers
        ).status_code
        == 401
    )
    delete = requests.delete(
        url(cloud, "/v2/library/tool/manifests/latest"), headers=tenant_headers
    )
    assert delete.status_code == 401


def test_nobody_lists_the_catalog(cloud: TestCloud, acme: Tenant) -> None:
    headers = bearer(cloud, "registry:catalog:*", tenant=acme)
    assert requests.get(url(cloud, "/v2/_catalog"), headers=headers, timeout=30).status_code == 401


# failures of the registry and the controller ---------------------------------------------------


def _wait_answering(cloud: TestCloud, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url(cloud, "/v2/"), timeout=5).status_code == 401:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("the registry front did not answer")


def test_a_killed_registry_is_restarted(
    cloud: TestCloud, acme: Tenant, pushed: tuple[bytes, bytes]
) -> None:
    _, manifest = pushed
    [pid] = registry_pids(cloud.layout.registry_config)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (
        registry_pids(cloud.layout.registry_config) in ([], [pid]) and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    _wait_answering(cloud)
    assert len(registry_pids(cloud.layout.registry_config)) == 1
    headers = bearer(cloud, "repository:acmeco/app:pull", tenant=acme)
    deadline = time.monotonic() + 30
    while True:  # the front answers 503 until the new registry does
        got = requests.get(
            url(cloud, "/v2/acmeco/app/manifests/v1"),
            headers={**headers, "Accept": OCI_MANIFEST},
            timeout=30,
        )
        if got.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (got.status_code, got.content) == (200, manifest)


def test_registry_data_survives_the_controller_killed_and_restarted(
    cloud: TestCloud, acme: Tenant, pushed: tuple[bytes, bytes]
) -> None:
    _, manifest = pushed
    [before] = registry_pids(cloud.layout.registry_config)
    earlier = bearer(cloud, "repository:acmeco/app:pull", tenant=acme)
    cloud.kill("controller")
    assert registry_pids(cloud.layout.registry_config) == [before], "SIGKILL leaves it running"
    cloud.start()
    _wait_answering(cloud)
    [after] = registry_pids(cloud.layout.registry_config)
    assert after != before, "the orphan was replaced"
    headers = bearer(cloud, "repository:acmeco/app:pull", tenant=acme)
    got = requests.get(
        url(cloud, "/v2/acmeco/app/manifests/v1"),
        headers={**headers, "Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert (got.status_code, got.content) == (200, manifest)
    # the same signing key: a token minted before the restart still works
    tags = requests.get(url(cloud, "/v2/acmeco/app/tags/list"), headers=earlier, timeout=30)
    assert tags.status_code == 200


def test_failed_logins_are_rate_limited(cloud: TestCloud, acme: Tenant) -> None:
    """Last: it blocks 127.0.0.1 for a minute."""
    statuses = [
        token(cloud, auth=(acme.user, "dyk_0000000000000000_" + "y" * 43)).status_code
        for _ in range(12)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429
    blocked = token(cloud, auth=(acme.user, acme.token))
    assert blocked.status_code == 429
    assert error_codes(blocked) == ["TOOMANYREQUESTS"]
