"""controller.registry with the real ``docker-registry``: it starts on a root-only
socket with token auth, takes the tokens RegistryTokens mints (with x5c, or with only the
libtrust kid), is restarted when it dies, replaces one a killed controller left running,
and a missing binary leaves it unavailable without failing."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dockyard.controller import registry
from dockyard.controller.config import ControllerConfig
from dockyard.controller.registry import RegistryProcess, registry_pids
from dockyard.controller.registry_auth import RegistryTokens
from dockyard.core.layout import Layout
from dockyard.core.registry import REGISTRY_SERVICE, Access

pytestmark = pytest.mark.skipif(
    shutil.which("docker-registry") is None, reason="docker-registry is not installed"
)
REALM = "http://127.0.0.1:5999/token"


def test_public_surface() -> None:
    assert set(registry.__all__) == {"NO_REALM", "RegistryProcess", "registry_pids"}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("registry", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self._path))


def get(path: Path, url: str, token: str = "") -> tuple[int, dict[str, str], bytes]:
    conn = _UnixConnection(path)
    try:
        conn.request("GET", url, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    made = Layout(state_dir=tmp_path / "s", run_dir=tmp_path / "r", instance="dyt1")
    yield made
    for pid in registry_pids(made.registry_config):  # whatever a failed test left
        os.kill(pid, signal.SIGKILL)


def tokens_for(layout: Layout) -> RegistryTokens:
    return RegistryTokens(layout.registry_token_dir, service=REGISTRY_SERVICE)


def test_it_serves_token_auth_on_a_root_only_socket(layout: Layout) -> None:
    tokens = tokens_for(layout)

    async def scenario() -> None:
        process = RegistryProcess(layout, tokens, realm=REALM)
        assert not process.available
        await process.start()
        try:
            assert process.available
            assert process.socket == layout.registry_socket
            mode = layout.registry_socket.stat().st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
            assert stat.S_IMODE(layout.registry_config.stat().st_mode) == 0o600
            config = layout.registry_config.read_text()
            assert "cache" not in config, "no blob descriptor cache"
            status, headers, _ = await asyncio.to_thread(get, layout.registry_socket, "/v2/")
            assert status == 401
            assert headers["Www-Authenticate"] == (
                f'Bearer realm="{REALM}",service="{REGISTRY_SERVICE}"'
            )
            pull = [Access("repository", "acmeco/app", ("pull",))]
            minted = tokens.mint("ann@acme", pull)
            claims = jwt.decode(minted, options={"verify_signature": False})
            # the same claims signed with the same key, with each header on its own
            key = serialization.load_pem_private_key(
                layout.registry_token_key.read_bytes(), password=None
            )
            x5c = jwt.get_unverified_header(minted)["x5c"]
            x5c_only = jwt.encode(claims, key, "ES256", headers={"x5c": x5c})  # type: ignore[arg-type]
            kid_only = jwt.encode(claims, key, "ES256", headers={"kid": tokens.key_id})  # type: ignore[arg-type]
            neither = jwt.encode(claims, key, "ES256")  # type: ignore[arg-type]
            url = "/v2/acmeco/app/tags/list"
            for token in (minted, x5c_only, kid_only):
                status, _, body = await asyncio.to_thread(get, layout.registry_socket, url, token)
                assert (status, b"NAME_UNKNOWN" in body) == (404, True), body
            status, _, _ = await asyncio.to_thread(get, layout.registry_socket, url, neither)
            assert status == 401
            nothing = tokens.mint("ann@acme", [])
            status, headers, _ = await asyncio.to_thread(get, layout.registry_socket, url, nothing)
            assert status == 401
            assert 'error="insufficient_scope"' in headers["Www-Authenticate"]
        finally:
            await process.stop()
        assert not process.available
        assert registry_pids(layout.registry_config) == []

    asyncio.run(scenario())


def test_a_registry_that_dies_is_started_again(layout: Layout) -> None:
    async def scenario() -> None:
        process = RegistryProcess(layout, tokens_for(layout))
        await process.start()
        try:
            first = process.pid
            assert first
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while (not process.available or process.pid == first) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert process.available
            assert process.pid not in (0, first)
            assert registry_pids(layout.registry_config) == [process.pid]
            status, _, _ = await asyncio.to_thread(get, layout.registry_socket, "/v2/")
            assert status == 401
        finally:
            await process.stop()

    asyncio.run(scenario())


def test_the_http_secret_is_kept_across_starts(layout: Layout) -> None:
    async def scenario() -> str:
        process = RegistryProcess(layout, tokens_for(layout))
        await process.start()
        await process.stop()
        return layout.registry_config.read_text()

    first = asyncio.run(scenario())
    assert asyncio.run(scenario()) == first
    assert "secret:" in first


def test_a_registry_left_by_a_killed_controller_is_replaced(layout: Layout) -> None:
    async def scenario() -> None:
        first = RegistryProcess(layout, tokens_for(layout))
        await first.start()  # writes the config
        await first.stop()
        assert not layout.registry_socket.exists()
        # What SIGKILL of the controller leaves: the registry, with no supervisor.
        orphan = subprocess.Popen(
            ["docker-registry", "serve", str(layout.registry_config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10  # its /proc cmdline shows after a moment
            while not registry_pids(layout.registry_config) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert registry_pids(layout.registry_config) == [orphan.pid]
            again = RegistryProcess(layout, tokens_for(layout))
            await again.start()
            try:
                assert again.available
                assert await asyncio.to_thread(orphan.wait, 10) == -signal.SIGKILL
                assert registry_pids(layout.registry_config) == [again.pid]
            finally:
                await again.stop()
        finally:
            if orphan.poll() is None:
                orphan.kill()
                orphan.wait()

    asyncio.run(scenario())


def test_a_missing_binary_leaves_the_registry_unavailable(
    layout: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        process = RegistryProcess(layout, tokens_for(layout), binary="no-such-registry-binary")
        with caplog.at_level(logging.ERROR, logger="dockyard.controller.registry"):
            await process.start()
        assert not process.available
        assert "no-such-registry-binary not found" in caplog.text
        await process.stop()

    asyncio.run(scenario())


def test_registry_pids_matches_the_config_path_only(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    other = tmp_path / "other.yml"
    (tmp_path / "serve").write_text("import time; time.sleep(30)\n")
    # argv: python serve <other>, as a registry serving another config would have
    with subprocess.Popen([sys.executable, "serve", str(other)], cwd=tmp_path) as unrelated:
        try:
            deadline = time.monotonic() + 10
            while unrelated.pid not in registry_pids(other) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert unrelated.pid in registry_pids(other)
            assert registry_pids(config) == []
        finally:
            unrelated.kill()


def test_the_front_is_advertised_by_host_name_when_it_listens_everywhere(tmp_path: Path) -> None:
    layout = Layout(state_dir=tmp_path / "s", run_dir=tmp_path / "r", instance="dyt1")
    assert ControllerConfig(layout=layout).registry_endpoint == ""
    local = ControllerConfig(layout=layout, registry_address="127.0.0.1:5000")
    assert local.registry_endpoint == "127.0.0.1:5000"
    anywhere = ControllerConfig(layout=layout, registry_address="0.0.0.0:5000")
    assert anywhere.registry_endpoint == f"{socket.gethostname()}:5000"
    assert ControllerConfig(layout=layout, registry_address="[::1]:5000").registry_endpoint == (
        "[::1]:5000"
    )
