"""Dockyard's certificate authority: its key, the TLS listener's certificate, and signing
users' certificate requests.

The CA is made once per controller state dir (``<state>/controller/tls``: ``ca.pem``,
``ca-key.pem``; the key and the directory readable by root only) and kept: every client
certificate it signed stays valid across restarts. The listener's certificate is made
again at every start, so a change of names takes effect with a restart.

Keys are ECDSA P-256: what Go's crypto/tls (the docker CLI) and OpenSSL (docker-py) both
handle, and cheap to make. A signed client certificate takes nothing from the request but
its public key: subject, lifetime and extensions are the CA's to decide.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.core.errors import InvalidArgument

__all__ = [
    "CA_TTL",
    "MAX_CSR_BYTES",
    "SERVER_TTL",
    "CertificateAuthority",
    "ClientSubject",
    "TlsFiles",
    "fingerprint",
    "serial_of",
    "server_context",
]

CA_TTL = 10 * 365 * 24 * 3600
SERVER_TTL = 397 * 24 * 3600  # the longest lifetime browsers accept; made anew at each start
MAX_CSR_BYTES = 16 * 1024
_BACKDATE = datetime.timedelta(minutes=5)  # clients whose clock is a little behind ours
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*$")
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MIN_RSA_BITS = 2048
_ClientKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the CA and the listener's key pair live (all PEM)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"


@dataclass(frozen=True, slots=True)
class ClientSubject:
    """Whom a client certificate names (for people reading it: the store's record, found
    by serial, is what authenticates)."""

    user_id: str
    user_name: str
    tenant_name: str


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER bytes, hex."""
    return hashlib.sha256(der).hexdigest()


def serial_of(der: bytes) -> str:
    """The serial of a DER certificate, as records spell it (lowercase hex);
    InvalidArgument if the bytes are not a certificate."""
    try:
        return format(x509.load_der_x509_certificate(der).serial_number, "x")
    except ValueError as exc:
        raise InvalidArgument("not a certificate") from exc


class CertificateAuthority:
    """The CA's key and certificate. Construct with :meth:`load_or_create`."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self.certificate = cert

    @classmethod
    def load_or_create(cls, files: TlsFiles, *, name: str) -> CertificateAuthority:
        """The CA kept in ``files``; made (key 0600 in a 0700 directory) when missing. A
        kept key whose certificate is missing gets a new certificate, so what it signed
        stays valid."""
        files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(files.directory, 0o700)
        try:
            key = _load_key(files.ca_key.read_bytes())
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            _write(files.ca_key, _key_pem(key), mode=0o600)
        cert = None
        with contextlib.suppress(FileNotFoundError):
            cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        if cert is None or cert.public_key() != key.public_key():
            cert = _self_signed_ca(key, name)
            _write(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return cls(key, cert)

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue_server(self, files: TlsFiles, *, names: Sequence[str]) -> None:
        """A new certificate for the TLS listener, valid for ``names`` (host names and IP
        addresses), written with a new key into ``files``."""
        if not names:
            raise InvalidArgument("the TLS listener needs at least one name")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(seconds=SERVER_TTL))
            .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        cert = self._sign(builder, key.public_key())
        _write(files.server_key, _key_pem(key), mode=0o600)
        _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)

    def sign_client(
        self, csr_pem: str, *, subject: ClientSubject, not_after: int
    ) -> x509.Certificate:
        """A client certificate for the public key of ``csr_pem`` (whose signature must
        hold: the requester has the private key), naming ``subject`` and valid until
        ``not_after`` (whole seconds since the epoch). InvalidArgument for a malformed
        request or a weak or unknown kind of key."""
        if len(csr_pem.encode()) > MAX_CSR_BYTES:
            raise InvalidArgument(f"certificate request larger than {MAX_CSR_BYTES} bytes")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as exc:
            raise InvalidArgument("csr: not a PEM certificate request") from exc
        try:
            valid = csr.is_signature_valid
        except (ValueError, InvalidSignature, NotImplementedError):  # an unknown algorithm
            valid = False
        if not valid:
            raise InvalidArgument("csr: its signature does not match its key")
        public = _client_key(csr.public_key())
        now = _now()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject.tenant_name),
                x509.NameAttribute(NameOID.COMMON_NAME, subject.user_name),
                x509.NameAttribute(NameOID.USER_ID, subject.user_id),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        return self._sign(builder, public)

    def _sign(self, builder: x509.CertificateBuilder, public: _ClientKey) -> x509.Certificate:
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        builder = builder.add_extension(ski, critical=False).add_extension(aki, critical=False)
        return builder.sign(self._key, hashes.SHA256())


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The listener's TLS settings: TLS 1.2 or later, its own key pair, and a client
    certificate signed by the CA required in the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(files.ca_cert))
    context.load_cert_chain(str(files.server_cert), str(files.server_key))
    return context


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _self_signed_ca(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(seconds=CA_TTL))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def _client_key(public: object) -> _ClientKey:
    """``public`` if it is a kind and size of key we sign; InvalidArgument otherwise."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, _EC_CURVES):
            raise InvalidArgument(f"csr: unsupported curve {public.curve.name}")
    elif isinstance(public, rsa.RSAPublicKey):
        if public.key_size < _MIN_RSA_BITS:
            raise InvalidArgument(f"csr: an RSA key needs at least {_MIN_RSA_BITS} bits")
    elif not isinstance(public, ed25519.Ed25519PublicKey):
        raise InvalidArgument("csr: the key must be ECDSA (P-256/384/521), RSA or Ed25519")
    return public


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not _HOSTNAME.match(name):
                raise InvalidArgument(f"invalid TLS name {name!r}: a host name or an IP") from None
            found.append(x509.DNSName(name.lower()))
    return found


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument("the CA key is not an ECDSA key")
    return key


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` whole (a crash leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
