"""client.certs: a key made here, files written where docker looks, others' files kept."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.client.certs import (
    CertFiles,
    context_from_env,
    dockyard_issued,
    make_key_request,
    remove_cert_files,
    write_cert_files,
)
from dockyard.controller.pki import CertificateAuthority, ClientSubject, TlsFiles
from dockyard.core.errors import FailedPrecondition


def _issue(tmp_path: Path) -> tuple[bytes, str, str]:
    ca = CertificateAuthority.load_or_create(TlsFiles(tmp_path / "ca"), name="Dockyard CA (t)")
    request = make_key_request()
    not_after = int(datetime.datetime.now(datetime.UTC).timestamp()) + 3600
    cert = ca.sign_client(
        request.csr_pem,
        subject=ClientSubject(user_id="u", user_name="bea", tenant_name="acme"),
        not_after=not_after,
    )
    return request.key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), ca.cert_pem


def _foreign_cert() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Somebody else")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_files_are_private_and_make_a_working_context(tmp_path: Path) -> None:
    key_pem, cert_pem, ca_pem = _issue(tmp_path)
    files = CertFiles(tmp_path / "cfg")
    assert not files.present() and files.expires() is None
    write_cert_files(files, key_pem=key_pem, cert_pem=cert_pem, ca_pem=ca_pem)
    assert files.present()
    for path in (files.ca, files.cert, files.key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in files.directory.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    expires = files.expires()
    assert expires is not None and expires > datetime.datetime.now(datetime.UTC)
    assert isinstance(files.context(), ssl.SSLContext)
    assert dockyard_issued(files)
    # A second login replaces them.
    key2, cert2, ca2 = _issue(tmp_path / "again")
    write_cert_files(files, key_pem=key2, cert_pem=cert2, ca_pem=ca2)
    assert files.key.read_bytes() == key2
    assert remove_cert_files(files)
    assert not any(files.directory.iterdir())
    assert not remove_cert_files(files)
    with pytest.raises(FailedPrecondition, match="dockyard login"):
        files.context()


def test_another_cas_files_are_never_overwritten_or_removed(tmp_path: Path) -> None:
    files = CertFiles(tmp_path / "dotdocker")
    files.directory.mkdir()
    foreign = _foreign_cert()
    files.cert.write_text(foreign)
    files.key.write_text("their key")
    assert not dockyard_issued(files)
    key_pem, cert_pem, ca_pem = _issue(tmp_path)
    with pytest.raises(FailedPrecondition, match="not issued by Dockyard"):
        write_cert_files(files, key_pem=key_pem, cert_pem=cert_pem, ca_pem=ca_pem)
    assert not remove_cert_files(files)
    assert files.cert.read_text() == foreign and files.key.read_text() == "their key"
    assert not files.ca.exists()


def test_the_request_proves_the_key_and_says_nothing_else(tmp_path: Path) -> None:
    request = make_key_request()
    csr = x509.load_pem_x509_csr(request.csr_pem.encode())
    assert csr.is_signature_valid
    key = serialization.load_pem_private_key(request.key_pem, password=None)
    assert csr.public_key() == key.public_key()
    assert make_key_request().key_pem != request.key_pem


def test_tls_is_used_as_the_docker_cli_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_pem, cert_pem, ca_pem = _issue(tmp_path)
    config = tmp_path / "cfg"
    write_cert_files(CertFiles(config), key_pem=key_pem, cert_pem=cert_pem, ca_pem=ca_pem)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    assert context_from_env("tcp://127.0.0.1:2376", config) is None
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    assert context_from_env("unix:///run/dockyard/docker.sock", config) is None
    assert context_from_env("tcp://127.0.0.1:2376", config) is not None
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "elsewhere"))
    with pytest.raises(FailedPrecondition):
        context_from_env("tcp://127.0.0.1:2376", config)
