"""controller.pki: the CA made once and kept, the listener's certificate, signing requests."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.client.certs import make_key_request
from dockyard.controller.pki import (
    CertificateAuthority,
    ClientSubject,
    TlsFiles,
    fingerprint,
    serial_of,
    server_context,
)
from dockyard.core.errors import InvalidArgument

SUBJECT = ClientSubject(user_id="u" * 64, user_name="bea", tenant_name="acme")


def _in(seconds: int) -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp()) + seconds


def _verify(ca: CertificateAuthority, cert: x509.Certificate) -> None:
    """Raise unless ``cert`` was signed by ``ca``'s key."""
    cert.verify_directly_issued_by(ca.certificate)


def test_the_ca_is_made_once_private_and_kept(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    ca = CertificateAuthority.load_or_create(files, name="Dockyard CA (t)")
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.critical
    again = CertificateAuthority.load_or_create(files, name="Dockyard CA (t)")
    assert again.cert_pem == ca.cert_pem
    issued = ca.sign_client(make_key_request().csr_pem, subject=SUBJECT, not_after=_in(60))
    _verify(again, issued)


def test_a_lost_ca_certificate_is_made_again_for_the_same_key(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    ca = CertificateAuthority.load_or_create(files, name="Dockyard CA (t)")
    issued = ca.sign_client(make_key_request().csr_pem, subject=SUBJECT, not_after=_in(60))
    files.ca_cert.unlink()
    remade = CertificateAuthority.load_or_create(files, name="Dockyard CA (t)")
    assert files.ca_cert.exists()
    _verify(remade, issued)  # what the old certificate signed is still good


def test_a_client_certificate_takes_only_the_key_from_the_request(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(TlsFiles(tmp_path), name="Dockyard CA (t)")
    key = ec.generate_private_key(ec.SECP256R1())
    sneaky = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = sneaky.public_bytes(serialization.Encoding.PEM).decode()
    not_after = _in(3600)
    cert = ca.sign_client(pem, subject=SUBJECT, not_after=not_after)
    _verify(ca, cert)
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bea"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    assert cert.subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == SUBJECT.user_id
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert int(cert.not_valid_after_utc.timestamp()) == not_after
    assert cert.not_valid_before_utc < datetime.datetime.now(datetime.UTC)
    other = ca.sign_client(pem, subject=SUBJECT, not_after=not_after)
    assert other.serial_number != cert.serial_number


def test_serial_and_fingerprint_of_der(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(TlsFiles(tmp_path), name="Dockyard CA (t)")
    cert = ca.sign_client(make_key_request().csr_pem, subject=SUBJECT, not_after=_in(60))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert serial_of(der) == format(cert.serial_number, "x")
    assert len(fingerprint(der)) == 64
    with pytest.raises(InvalidArgument):
        serial_of(b"not a certificate")


def _csr(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("request_pem", "message"),
    [
        ("hello", "not a PEM certificate request"),
        ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "csr"),
        ("x" * 20_000, "larger than"),
    ],
)
def test_malformed_requests_are_refused(tmp_path: Path, request_pem: str, message: str) -> None:
    ca = CertificateAuthority.load_or_create(TlsFiles(tmp_path), name="Dockyard CA (t)")
    with pytest.raises(InvalidArgument, match=message):
        ca.sign_client(request_pem, subject=SUBJECT, not_after=_in(60))


def test_weak_keys_and_tampered_requests_are_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(TlsFiles(tmp_path), name="Dockyard CA (t)")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidArgument, match="at least 2048"):
        ca.sign_client(_csr(weak), subject=SUBJECT, not_after=_in(60))
    strong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert ca.sign_client(_csr(strong), subject=SUBJECT, not_after=_in(60))
    # A request for someone else's public key, signed by another key: no proof of possession.
    key = ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(_csr(key).encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(InvalidArgument, match="signature"):
        ca.sign_client(tampered.decode(), subject=SUBJECT, not_after=_in(60))


def test_the_listener_certificate_names_and_context(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    ca = CertificateAuthority.load_or_create(files, name="Dockyard CA (t)")
    ca.issue_server(files, names=("localhost", "127.0.0.1", "::1", "Host.Example"))
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    _verify(ca, cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "host.example"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    context = server_context(files)
    assert context.verify_mode.name == "CERT_REQUIRED"
    with pytest.raises(InvalidArgument, match="invalid TLS name"):
        ca.issue_server(files, names=("bad name!",))
