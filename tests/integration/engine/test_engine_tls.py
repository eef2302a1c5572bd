"""TLS with client certificates through the real clients: ``dockyard login`` fetches a
certificate, ``docker --tlsverify`` and docker-py (``DOCKER_TLS_VERIFY=1``) use it on the
TLS listener and see only their tenant; no certificate or another CA's fails the
handshake; revoked certificates, removed users and revoked tokens get 401; failures are
rate limited."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives import serialization

from dockyard.client.certs import make_key_request
from dockyard.controller.pki import CertificateAuthority, ClientSubject, TlsFiles
from dockyard.testing.cloud import DockerCli, TestCloud

DOCKYARD = Path(sys.executable).parent / "dockyard"


def dockyard(cloud: TestCloud, *args: str, env: dict[str, str] | None = None) -> str:
    layout = cloud.layout
    flags = ["--state-dir", str(layout.state_dir), "--run-dir", str(layout.run_dir)]
    flags += ["--instance", layout.instance]
    local = args[0] in ("admin", "env")
    command = [str(DOCKYARD), *args, *(flags if local else [])]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env or cloud.env(), timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@dataclass
class Login:
    """A user logged in with ``dockyard login`` into ``config`` (token and certificate)."""

    tenant: str
    user: str
    token: str
    config: Path

    def certs_only(self, where: Path) -> Path:
        """A copy of the three certificate files alone (no docker config, so no token)."""
        where.mkdir(parents=True, exist_ok=True)
        for name in ("ca.pem", "cert.pem", "key.pem"):
            shutil.copy2(self.config / name, where / name)
        return where

    def serial(self, cloud: TestCloud) -> str:
        env = {**cloud.env(), "DOCKER_CONFIG": str(self.config)}
        listed = dockyard(cloud, "cert", "list", env=env)
        rows = [line.split()[0] for line in listed.splitlines()[1:] if line.strip()]
        assert len(rows) == 1, listed
        return rows[0]


def login(cloud: TestCloud, tenant: str, user: str, token: str, where: Path) -> Login:
    config = where / f"{tenant}-{user}"
    env = {**cloud.env(), "DOCKER_CONFIG": str(config)}
    said = dockyard(cloud, "login", "--token", token, env=env)
    assert "Client certificate" in said and cloud.tls_host in said, said
    return Login(tenant=tenant, user=user, token=token, config=config)


def tls_docker(
    cloud: TestCloud, cli: DockerCli, cert_path: Path, *args: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker --tlsverify -H tcp://...`` with DOCKER_CERT_PATH; DOCKER_CONFIG is
    ``config`` (by default an empty directory: no token goes along)."""
    if config is None:
        config = cert_path.parent / "empty-config"
        config.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env |= {"DOCKER_CERT_PATH": str(cert_path), "DOCKER_CONFIG": str(config)}
    return subprocess.run(
        [cli.binary, "--tlsverify", "-H", cloud.tls_host, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def tenant(cloud: TestCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    """A second tenant (with busybox) whose admin ``bea`` logged in."""
    name = f"t{uuid.uuid4().hex[:8]}"
    token = dockyard(cloud, "admin", "tenant", "create", name, "--user", "bea", "--seed-busybox")
    yield login(cloud, name, "bea", token.strip(), tmp_path_factory.mktemp("logins"))


@pytest.fixture
def no_ca_bundle_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the CA docker-py gives
    it (psf/requests#3829); some machines set them. A user would unset them too."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def test_login_writes_a_certificate_that_docker_tlsverify_uses(
    cloud: TestCloud, cli: DockerCli, tenant: Login, tmp_path: Path
) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((tenant.config / name).stat().st_mode) == 0o600, name
    assert "HttpHeaders" in json.loads((tenant.config / "config.json").read_text())
    ours = f"ours-{uuid.uuid4().hex[:8]}"
    cli.run("create", "--name", ours, "busybox", "true")  # the first tenant's, on the socket
    theirs = f"theirs-{uuid.uuid4().hex[:8]}"
    certs = tenant.certs_only(tmp_path / "certs")
    try:
        run = tls_docker(cloud, cli, certs, "run", "--name", theirs, "busybox", "echo", "hi-tls")
        assert run.returncode == 0, run.stderr
        assert run.stdout == "hi-tls\n"
        piped = subprocess.run(
            [
                cli.binary,
                "--tlsverify",
                "-H",
                cloud.tls_host,
                "run",
                "-i",
                "--rm",
                "busybox",
                "cat",
            ],
            input="through stdin\n",
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_CERT_PATH": str(certs), "DOCKER_CONFIG": str(certs)},
            timeout=60,
            check=False,
        )
        assert piped.stdout == "through stdin\n", piped.stderr
        listed = tls_docker(cloud, cli, certs, "ps", "-a", "--format", "{{.Names}}")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [theirs]
        assert theirs not in cli.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
        # With the docker config of the same login as well: token and certificate agree.
        both = tls_docker(cloud, cli, certs, "ps", "-aq", config=tenant.config)
        assert both.returncode == 0 and len(both.stdout.split()) == 1, both.stderr
    finally:
        tls_docker(cloud, cli, certs, "rm", "-f", theirs)
        cli.run("rm", "-f", ours)


def test_docker_py_with_tls_verify(
    cloud: TestCloud, tenant: Login, tmp_path: Path, no_ca_bundle_override: None
) -> None:
    certs = tenant.certs_only(tmp_path / "certs")
    environment = {
        "DOCKER_HOST": cloud.tls_host,
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs),
    }
    client = docker.from_env(environment=environment)
    try:
        assert client.ping()
        out = client.containers.run("busybox", ["echo", "from docker-py"], remove=True)
        assert out == b"from docker-py\n"
        name = f"py-{uuid.uuid4().hex[:8]}"
        made = client.containers.create("busybox", "true", name=name)
        try:
            assert [c.name for c in client.containers.list(all=True)] == [name]
        finally:
            made.remove(force=True)
    finally:
        client.close()


def _handshake(cloud: TestCloud, context: ssl.SSLContext) -> bytes:
    """Connect, send a request and return the answer; b"" if the server hung up on the
    handshake (TLS 1.3 clients learn of it only when they read)."""
    answer = b""
    try:
        with (
            socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while chunk := sock.recv(65536):
                answer += chunk
    except (ssl.SSLError, ConnectionError):
        return b""
    return answer


def test_no_certificate_fails_the_handshake(
    cloud: TestCloud, cli: DockerCli, tenant: Login, tmp_path: Path
) -> None:
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    shutil.copy2(tenant.config / "ca.pem", ca_only / "ca.pem")
    context = ssl.create_default_context(cafile=str(ca_only / "ca.pem"))
    assert _handshake(cloud, context) == b""
    refused = tls_docker(cloud, cli, ca_only, "version")
    assert refused.returncode != 0
    assert "tls: certificate required" in refused.stderr, refused.stderr
    # The same client with the certificate gets through: it is the certificate that counts.
    context.load_cert_chain(str(tenant.config / "cert.pem"), str(tenant.config / "key.pem"))
    assert _handshake(cloud, context).startswith(b"HTTP/1.1 200")


def test_a_certificate_from_another_ca_fails_the_handshake(
    cloud: TestCloud, cli: DockerCli, tenant: Login, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.load_or_create(TlsFiles(tmp_path / "ca"), name="Dockyard CA")
    request = make_key_request()
    not_after = int(datetime.datetime.now(datetime.UTC).timestamp()) + 3600
    forged = stranger.sign_client(
        request.csr_pem,
        subject=ClientSubject(user_id="x", user_name="bea", tenant_name=tenant.tenant),
        not_after=not_after,
    )
    certs = tmp_path / "forged"
    certs.mkdir()
    shutil.copy2(tenant.config / "ca.pem", certs / "ca.pem")  # trusts the real server
    (certs / "cert.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    (certs / "key.pem").write_bytes(request.key_pem)
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    assert _handshake(cloud, context) == b""
    refused = tls_docker(cloud, cli, certs, "ps")
    assert refused.returncode != 0
    assert "tls: unknown certificate authority" in refused.stderr, refused.stderr


def test_whoami_and_env_over_tls(cloud: TestCloud, cli: DockerCli, tenant: Login) -> None:
    env = {
        **cloud.env(),
        "DOCKER_HOST": cloud.tls_host,
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CONFIG": str(tenant.config),
    }
    who = dockyard(cloud, "whoami", env=env)
    assert f"tenant: {tenant.tenant}" in who and "cert:" in who
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in dockyard(cloud, "env", "--tls").splitlines()
        if line.startswith("export ")
    )
    assert exports["DOCKER_HOST"] == cloud.tls_host
    assert exports["DOCKER_TLS_VERIFY"] == "1"
    assert exports["DOCKER_CERT_PATH"] == str(cloud.layout.docker_config_dir)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    version = subprocess.run(
        [cli.binary, "info", "--format", "{{.Containers}}"],
        capture_output=True,
        text=True,
        env={**clean, **exports},
        timeout=60,
        check=False,
    )
    assert version.returncode == 0, version.stderr  # the local admin's certificate, over TLS


def _user(cloud: TestCloud, tenant: Login, name: str, where: Path) -> Login:
    dockyard(cloud, "admin", "user", "add", tenant.tenant, name)
    token = dockyard(cloud, "admin", "token", "create", tenant.tenant, name).strip()
    return login(cloud, tenant.tenant, name, token.splitlines()[0], where)


def _refused(cloud: TestCloud, cli: DockerCli, certs: Path, reason: str) -> None:
    denied = tls_docker(cloud, cli, certs, "ps")
    assert denied.returncode != 0
    assert reason in denied.stderr, denied.stderr


def test_revoked_certificates_removed_users_and_revoked_tokens_get_401(
    cloud: TestCloud, cli: DockerCli, tenant: Login, tmp_path: Path
) -> None:
    cat = _user(cloud, tenant, "cat", tmp_path)
    certs = cat.certs_only(tmp_path / "cat")
    assert tls_docker(cloud, cli, certs, "ps").returncode == 0
    env = {**cloud.env(), "DOCKER_CONFIG": str(cat.config)}
    dockyard(cloud, "cert", "revoke", cat.serial(cloud), env=env)
    _refused(cloud, cli, certs, "client certificate revoked")

    dan = _user(cloud, tenant, "dan", tmp_path)
    certs = dan.certs_only(tmp_path / "dan")
    assert tls_docker(cloud, cli, certs, "ps").returncode == 0
    dockyard(cloud, "admin", "user", "rm", tenant.tenant, "dan")
    _refused(cloud, cli, certs, "unknown client certificate")

    eve = _user(cloud, tenant, "eve", tmp_path)
    certs = eve.certs_only(tmp_path / "eve")
    assert tls_docker(cloud, cli, certs, "ps").returncode == 0
    token_id = eve.token.split("_")[1]
    dockyard(cloud, "admin", "token", "revoke", tenant.tenant, token_id)
    _refused(cloud, cli, certs, "token this certificate was obtained with is revoked")


def test_token_and_certificate_of_different_users_get_401(
    cloud: TestCloud, cli: DockerCli, tenant: Login, tmp_path: Path
) -> None:
    fay = _user(cloud, tenant, "fay", tmp_path)
    mixed = tls_docker(cloud, cli, fay.certs_only(tmp_path / "fay"), "ps", config=tenant.config)
    assert mixed.returncode != 0
    assert "name different users" in mixed.stderr


def test_repeated_failures_over_tls_are_rate_limited(
    cloud: TestCloud, cli: DockerCli, tenant: Login, tmp_path: Path
) -> None:
    """Last in this module: it blocks 127.0.0.1 on the TLS listener for a minute."""
    gus = _user(cloud, tenant, "gus", tmp_path)
    revoked = gus.certs_only(tmp_path / "gus")
    env = {**cloud.env(), "DOCKER_CONFIG": str(gus.config)}
    dockyard(cloud, "cert", "revoke", gus.serial(cloud), env=env)
    good = tenant.certs_only(tmp_path / "good")
    statuses = []
    for _ in range(12):
        statuses.append(tls_docker(cloud, cli, revoked, "ps").stderr)
    assert any("try again" in s for s in statuses[-3:]), statuses
    blocked = tls_docker(cloud, cli, good, "ps")
    assert blocked.returncode != 0 and "too many failed authentications" in blocked.stderr
    # The unix socket is another source: the first tenant goes on working.
    assert cli.run("ps").returncode == 0
