"""images.registry_client: challenges and tokens against a fake registry, platform
selection, Docker's progress messages, and layer verification."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from dockyard.core.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from dockyard.images import registry_client
from dockyard.images._manifests import (
    DOCKER_LAYER_GZIP,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
    layer_compression,
    select_platform,
)
from dockyard.images._model import OCI_LAYER, OCI_MANIFEST
from dockyard.images._progress import human_size, layer_update, message, progress_bar
from dockyard.images.content import ContentStore, sha256_digest
from dockyard.images.registry_client import RegistryClient, parse_www_authenticate

T = TypeVar("T")


def test_the_public_surface() -> None:
    assert sorted(registry_client.__all__) == [
        "MAX_CONCURRENT_DOWNLOADS",
        "MAX_CONCURRENT_UPLOADS",
        "Progress",
        "PulledImage",
        "PushedImage",
        "RegistryClient",
        "TokenSource",
        "parse_www_authenticate",
    ]


# ----------------------------------------------------------------- WWW-Authenticate


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/busybox:pull"',
            (
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/busybox:pull",
                },
            ),
        ),
        ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
        (
            'bearer Realm = "http://x/token" , service=reg,error="insufficient_scope"',
            (
                "bearer",
                {"realm": "http://x/token", "service": "reg", "error": "insufficient_scope"},
            ),
        ),
        (
            'Bearer realm="a\\"b\\\\c",scope="repository:a:pull,push repository:b:pull"',
            ("bearer", {"realm": 'a"b\\c', "scope": "repository:a:pull,push repository:b:pull"}),
        ),
        ('Basic realm="one", Bearer realm="two"', ("basic", {"realm": "one"})),
        ("Bearer", ("bearer", {})),
        ("", ("", {})),
        ("realm=x", ("", {})),
    ],
)
def test_parse_www_authenticate(header: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_www_authenticate(header) == expected


# ----------------------------------------------------------------- platforms and layers


def entry(os_: str, arch: str, variant: str = "", media_type: str = OCI_MANIFEST) -> Descriptor:
    platform = {"os": os_, "architecture": arch} | ({"variant": variant} if variant else {})
    digest = sha256_digest(f"{os_}/{arch}/{variant}/{media_type}".encode())
    return Descriptor(media_type, digest, 100, platform=platform)


INDEX = (
    entry("unknown", "unknown"),  # a buildx attestation
    entry("linux", "arm", "v7"),
    entry("linux", "arm64"),
    entry("linux", "arm64", "v8"),
    entry("linux", "amd64"),
    entry("windows", "amd64"),
)


def test_select_platform_takes_the_os_and_architecture_and_prefers_the_variant() -> None:
    assert select_platform(INDEX, ("linux", "amd64")) is INDEX[4]
    assert select_platform(INDEX, ("linux", "arm64"), variant="v8") is INDEX[3]
    assert select_platform(INDEX, ("linux", "arm64")) is INDEX[2]
    assert select_platform(INDEX, ("windows", "amd64")) is INDEX[5]


def test_select_platform_names_what_is_on_offer_when_nothing_matches() -> None:
    with pytest.raises(NotFound) as caught:
        select_platform(INDEX, ("linux", "s390x"))
    assert str(caught.value) == (
        "no matching manifest for linux/s390x in the manifest list entries (available: "
        "linux/amd64, linux/arm/v7, linux/arm64, linux/arm64/v8, windows/amd64)"
    )
    with pytest.raises(NotFound, match=r"entries$"):
        select_platform((), ("linux", "amd64"))


def test_an_entry_that_is_not_an_image_manifest_is_not_selected() -> None:
    nested = entry("linux", "amd64", media_type="application/vnd.oci.image.index.v1+json")
    with pytest.raises(NotFound):
        select_platform((nested,), ("linux", "amd64"))


def test_layer_compression_by_media_type() -> None:
    digest = sha256_digest(b"")
    assert layer_compression(Descriptor(DOCKER_LAYER_GZIP, digest, 1)) == "gzip"
    assert layer_compression(Descriptor(OCI_LAYER_GZIP, digest, 1)) == "gzip"
    assert layer_compression(Descriptor(OCI_LAYER, digest, 1)) == ""
    with pytest.raises(InvalidArgument, match="zstd-compressed layers are not supported"):
        layer_compression(Descriptor(OCI_LAYER_ZSTD, digest, 1))
    with pytest.raises(Unavailable, match="foreign layer"):
        layer_compression(
            Descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", digest, 1)
        )
    with pytest.raises(InvalidArgument, match="unsupported media type"):
        layer_compression(Descriptor("text/plain", digest, 1))


# ----------------------------------------------------------------- progress messages


def test_human_size_is_go_units_human_size() -> None:
    assert [human_size(n) for n in (0, 5, 999, 1000, 32768, 2811478, 999_960, 10**13)] == [
        "0B",
        "5B",
        "999B",
        "1kB",
        "32.77kB",
        "2.811MB",
        "1000kB",
        "10TB",
    ]


def test_progress_bar_is_dockerds_at_its_non_terminal_width() -> None:
    assert progress_bar(32768, 2811478) == "[>" + " " * 50 + "]  32.77kB/2.811MB"
    assert progress_bar(2811478, 2811478) == "[" + "=" * 50 + ">]  2.811MB/2.811MB"
    assert progress_bar(1405739, 2811478) == "[" + "=" * 25 + ">" + " " * 25 + "]  1.406MB/2.811MB"
    assert progress_bar(0, 0) == ""
    assert progress_bar(1234, 0) == " 1.234kB"
    assert progress_bar(2000, 1000) == "[" + "=" * 50 + ">]      2kB"


def test_messages_have_dockerds_shape_and_key_order() -> None:
    assert json.dumps(message("Pulling from library/busybox", "latest")) == (
        '{"status": "Pulling from library/busybox", "id": "latest"}'
    )
    assert message("Digest: sha256:ab") == {"status": "Digest: sha256:ab"}
    assert json.dumps(layer_update("Pulling fs layer", "e2334dd9fee4")) == (
        '{"status": "Pulling fs layer", "progressDetail": {}, "id": "e2334dd9fee4"}'
    )
    update = layer_update("Downloading", "e2334dd9fee4", 32768, 2811478)
    assert list(update) == ["status", "progressDetail", "progress", "id"]
    assert update["progressDetail"] == {"current": 32768, "total": 2811478}


# ----------------------------------------------------------------- layer verification


def test_a_multi_member_gzip_layer_is_inflated_whole(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    tar = b"a" * 3_000_000 + b"b" * 1_000_000
    blob = gzip.compress(tar[:1_000_000]) + gzip.compress(tar[1_000_000:])
    layer = Descriptor(DOCKER_LAYER_GZIP, sha256_digest(blob), len(blob))
    sink = registry_client._LayerSink(store.writer(), layer, sha256_digest(tar))
    for i in range(0, len(blob), 7000):
        sink.write(blob[i : i + 7000])
    sink.commit()
    assert store.read(sha256_digest(tar)) == tar


def test_corrupt_or_truncated_gzip_is_invalid_and_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    blob = gzip.compress(b"x" * 100_000)
    layer = Descriptor(DOCKER_LAYER_GZIP, sha256_digest(blob), len(blob))
    sink = registry_client._LayerSink(store.writer(), layer, sha256_digest(b"x" * 100_000))
    sink.write(blob[: len(blob) // 2])
    with pytest.raises(InvalidArgument, match="truncated gzip"):
        sink.commit()
    sink.abort()
    sink = registry_client._LayerSink(store.writer(), layer, sha256_digest(b"x" * 100_000))
    with pytest.raises(InvalidArgument, match="corrupt gzip"):
        sink.write(b"\x1f\x8b\x08\x00garbage-garbage-garbage")
    sink.abort()
    assert list(store.digests()) == [] and list((tmp_path / "tmp").iterdir()) == []


# ----------------------------------------------------------------- authentication


class FakeRegistry:
    """A registry that wants a bearer token from its own /token realm (or basic auth for
    repositories under ``basic/``), and a ``secret/`` namespace nobody may read."""

    USER, PASSWORD = "alice", "s3cret"

    def __init__(self) -> None:
        self.token_requests: list[dict[str, Any]] = []
        self.url = ""
        app = web.Application()
        app.router.add_get("/token", self.token)
        app.router.add_get("/v2/{repo:.+}/tags/list", self.tags)
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self.manifest)
        app.router.add_put("/v2/{repo:.+}/manifests/{ref}", self.put_manifest)
        self.app = app

    def _challenge(self, scope: str, code: str = "UNAUTHORIZED") -> web.Response:
        body = {"errors": [{"code": code, "message": "authentication required"}]}
        return web.json_response(
            body,
            status=401,
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="{self.url}/token",service="fake",scope="{scope}"'
                )
            },
        )

    def _basic_ok(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests.append(
            {
                "service": request.query.get("service"),
                "scopes": request.query.getall("scope", []),
                "account": request.query.get("account"),
                "basic": "Authorization" in request.headers,
            }
        )
        if "Authorization" in request.headers and not self._basic_ok(request):
            return web.json_response({"details": "incorrect username or password"}, status=401)
        granted = [s for s in request.query.getall("scope", []) if "secret/" not in s]
        return web.json_response({"token": "tok " + " ".join(granted), "expires_in": 300})

    def _bearer_allows(self, request: web.Request, scope: str) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer tok ") and scope in header.split()[2:]

    async def tags(self, request: web.Request) -> web.Response:
        repo = request.match_info["repo"]
        if repo.startswith("basic/"):
            if not self._basic_ok(request):
                return web.json_response(
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    status=401,
                    headers={"WWW-Authenticate": 'Basic realm="fake"'},
                )
        elif not self._bearer_allows(request, f"repository:{repo}:pull"):
            return self._challenge(f"repository:{repo}:pull")
        return web.json_response({"name": repo, "tags": ["a", "b"]})

    async def manifest(self, request: web.Request) -> web.Response:
        repo = request.match_info["repo"]
        return self._challenge(f"repository:{repo}:pull")

    async def put_manifest(self, request: web.Request) -> web.Response:
        if not self._bearer_allows(request, f"repository:{request.match_info['repo']}:pull,push"):
            return self._challenge(f"repository:{request.match_info['repo']}:pull,push")
        body = {
            "errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]
        }
        return web.json_response(body, status=403)


def with_fake(body: Callable[[FakeRegistry, str], Awaitable[T]]) -> T:
    async def main() -> T:
        fake = FakeRegistry()
        runner = web.AppRunner(fake.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        fake.url = f"http://127.0.0.1:{port}"
        try:
            return await body(fake, fake.url)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_a_bearer_challenge_is_answered_with_a_token_from_the_realm_then_cached() -> None:
    async def body(fake: FakeRegistry, url: str) -> None:
        async with RegistryClient(url) as client:
            assert await client.tags("ns/app") == ["a", "b"]
            assert await client.tags("ns/app") == ["a", "b"]
        assert fake.token_requests == [
            {
                "service": "fake",
                "scopes": ["repository:ns/app:pull"],
                "account": None,
                "basic": False,
            }
        ]

    with_fake(body)


def test_credentials_go_to_the_realm_as_basic_auth() -> None:
    async def body(fake: FakeRegistry, url: str) -> None:
        async with RegistryClient(url, credentials=(fake.USER, fake.PASSWORD)) as client:
            assert await client.tags("ns/app") == ["a", "b"]
        assert fake.token_requests[0]["basic"] and fake.token_requests[0]["account"] == "alice"
        async with RegistryClient(url, credentials=(fake.USER, "wrong")) as client:
            with pytest.raises(Unauthenticated, match="incorrect username or password"):
                await client.tags("ns/app")

    with_fake(body)


def test_a_basic_challenge_is_answered_with_the_credentials() -> None:
    async def body(fake: FakeRegistry, url: str) -> None:
        async with RegistryClient(url, credentials=(fake.USER, fake.PASSWORD)) as client:
            assert await client.tags("basic/app") == ["a", "b"]
        async with RegistryClient(url) as client:
            with pytest.raises(Unauthenticated, match=r"^unauthorized: authentication required$"):
                await client.tags("basic/app")

    with_fake(body)


def test_a_refused_pull_reads_as_dockers_pull_access_denied(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)

    async def body(fake: FakeRegistry, url: str) -> None:
        async with RegistryClient(url) as client:
            with pytest.raises(NotFound) as caught:
                await client.pull("secret/app", "latest", store)
        assert str(caught.value) == (
            "pull access denied for secret/app, repository does not exist or may require "
            "'docker login': unauthorized: authentication required"
        )

    with_fake(body)
    assert list(store.digests()) == []


def test_a_denied_write_is_permission_denied_with_the_registrys_message() -> None:
    async def body(fake: FakeRegistry, url: str) -> None:
        async with RegistryClient(url) as client:
            with pytest.raises(
                PermissionDenied, match=r"^denied: requested access to the resource is denied$"
            ):
                await client.put_manifest("ns/app", "v1", OCI_MANIFEST, b"{}")

    with_fake(body)


def test_a_token_source_replaces_challenges() -> None:
    asked: list[list[str]] = []

    async def tokens(scopes: Any) -> str | None:
        asked.append(list(scopes))
        return "tok " + " ".join(scopes)

    async def body(fake: FakeRegistry, url: str) -> None:
        async with RegistryClient(url, tokens=tokens) as client:
            assert await client.tags("ns/app") == ["a", "b"]
        assert fake.token_requests == []

    with_fake(body)
    assert asked == [["repository:ns/app:pull"]]
