"""A client certificate's files, where ``docker --tlsverify`` and docker-py look for them.

The key is made here and never leaves the machine: the server gets a certificate request
(signed with the key, so it proves possession) and answers with the certificate and its
CA's. The three files go where the docker CLI reads them (``$DOCKER_CERT_PATH``, which
defaults to the docker config directory): ``key.pem``, ``cert.pem`` and ``ca.pem``, each
0600. Files that a CA other than Dockyard's issued are never overwritten or removed: a
user's ``~/.docker`` may hold another Docker host's.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.core.errors import FailedPrecondition

__all__ = [
    "CERT_FILES",
    "CertFiles",
    "KeyRequest",
    "context_from_env",
    "dockyard_issued",
    "make_key_request",
    "remove_cert_files",
    "write_cert_files",
]

CERT_FILES = ("ca.pem", "cert.pem", "key.pem")
_ISSUER_ORGANIZATION = "Dockyard"  # the CA's subject: O=Dockyard (controller.pki)


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A new private key (PEM) and a certificate request signed with it (PEM)."""

    key_pem: bytes
    csr_pem: str


@dataclass(frozen=True, slots=True)
class CertFiles:
    """The three files in ``directory``; ``context()`` is a TLS client context for them."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    def present(self) -> bool:
        return all((self.directory / name).is_file() for name in CERT_FILES)

    def expires(self) -> datetime.datetime | None:
        """When ``cert.pem`` expires (None if there is none or it is unreadable)."""
        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (OSError, ValueError):
            return None
        return cert.not_valid_after_utc

    def context(self) -> ssl.SSLContext:
        """Verify the server against ``ca.pem`` and present ``cert.pem``/``key.pem``.
        FailedPrecondition if the files are missing."""
        if not self.present():
            raise FailedPrecondition(
                f"no client certificate in {self.directory} (dockyard login fetches one)"
            )
        context = ssl.create_default_context(cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def make_key_request() -> KeyRequest:
    """A new ECDSA P-256 key and a request for a certificate of it (the server decides
    the subject; the request only proves the key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard client")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyRequest(
        key_pem=key_pem, csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode()
    )


def dockyard_issued(files: CertFiles) -> bool:
    """Whether ``cert.pem`` is missing or was issued by a Dockyard CA (so ours to replace)."""
    try:
        data = files.cert.read_bytes()
    except FileNotFoundError:
        return True
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        return False
    issuer = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return any(attribute.value == _ISSUER_ORGANIZATION for attribute in issuer)


def write_cert_files(files: CertFiles, *, key_pem: bytes, cert_pem: str, ca_pem: str) -> None:
    """Write the three files (0600; the directory made 0700 if new). FailedPrecondition if
    ``cert.pem`` there is another CA's."""
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not dockyard_issued(files):
        raise FailedPrecondition(
            f"{files.cert} was not issued by Dockyard; not overwriting it "
            "(choose another directory with --cert-dir)"
        )
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in ((files.key, key_pem), (files.cert, cert_pem.encode())):
            staged.append((_stage(path, data), path))
        staged.append((_stage(files.ca, ca_pem.encode()), files.ca))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def remove_cert_files(files: CertFiles) -> bool:
    """Remove the three files if Dockyard issued them; whether there were any."""
    if not files.cert.exists() or not dockyard_issued(files):
        return False
    for name in CERT_FILES:
        with contextlib.suppress(FileNotFoundError):
            (files.directory / name).unlink()
    return True


def _stage(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return tmp


def context_from_env(address: str, config_dir: Path) -> ssl.SSLContext | None:
    """The TLS context the docker CLI would use for ``address``: for a ``tcp://`` address
    with ``DOCKER_TLS_VERIFY`` set, the client certificate in ``$DOCKER_CERT_PATH`` (else
    ``config_dir``); None otherwise."""
    if not address.startswith(("tcp://", "https://")) or not os.environ.get("DOCKER_TLS_VERIFY"):
        return None
    return CertFiles(Path(os.environ.get("DOCKER_CERT_PATH") or config_dir)).context()
