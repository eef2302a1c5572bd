"""The registry's token service: who may do what, and the signed tokens that say so.

Docker token authentication (ADR 0021): a client asks the controller's ``/token`` for
scopes (``repository:acme/app:pull,push``); :class:`RegistryAuthorizer` decides what of it
the caller gets, :class:`RegistryTokens` signs that into a JWT the registry process
verifies itself (ES256, the controller's key; the registry trusts the certificate at
:attr:`RegistryTokens.cert_path` as its ``rootcertbundle``).

Grants:

- ``<ns>/<repo...>`` where the caller's tenant owns ``ns``: ``pull`` with the ``read``
  scope, ``push`` and ``delete`` with ``write``;
- curated namespaces (``library``, and reserved names no tenant owns): ``pull`` for
  everyone, anonymous callers included; ``push`` and ``delete`` for the operator only;
- anything else (another tenant's namespace, an unclaimed one, a name with no namespace
  part): no actions, so the registry answers as it does for a repository that does not
  exist; ``registry:catalog:*`` is the operator's only (tenants list through the
  controller, filtered).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.controller.identity import IdentityService
from dockyard.controller.namespaces import NamespaceService
from dockyard.core.errors import InvalidArgument, Unauthenticated
from dockyard.core.identity import Principal
from dockyard.core.namespaces import ALWAYS_RESERVED
from dockyard.core.registry import Access

__all__ = [
    "DEFAULT_TTL",
    "RegistryAuthorizer",
    "RegistryTokens",
    "authenticate_basic",
    "libtrust_key_id",
    "subject_of",
]

DEFAULT_TTL = 300
"""Seconds a registry token is good for (Docker's clients ask again when it runs out)."""
_KEY = "key.pem"
_CERT = "cert.pem"
_CERT_DAYS = 3650
_PULL = ("pull",)
_WRITE = ("push", "delete")
_ALL = ("pull", "push", "delete")


def libtrust_key_id(cert: x509.Certificate) -> str:
    """The key id docker/libtrust gives the certificate's public key (what distribution
    matches a token's ``kid`` against): base32 of the first 240 bits of the SHA-256 of the
    DER SubjectPublicKeyInfo, in 12 groups of 4 joined by ``:``."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


class RegistryTokens:
    """Mints registry tokens with the key under ``key_dir`` (an EC P-256 key, 0600, and a
    self-signed certificate for it, made on first use and kept: the registry trusts that
    certificate across controller restarts). ``service``: the token's audience, as the
    registry is configured; ``ttl``: seconds a token is valid."""

    def __init__(
        self,
        key_dir: Path,
        *,
        service: str,
        issuer: str = "dockyard",
        ttl: int = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_dir = key_dir
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self._clock = clock
        self._key, cert = _load_or_make(key_dir, issuer)
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.key_id = libtrust_key_id(cert)

    @property
    def cert_path(self) -> Path:
        """The certificate (PEM) the registry trusts: its ``rootcertbundle``."""
        return self.key_dir / _CERT

    def mint(self, subject: str, access: Sequence[Access]) -> str:
        """A signed token for ``subject`` (who the registry logs as the caller; "" for an
        anonymous one) granting ``access``, valid from now for :attr:`ttl` seconds."""
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now - 1,  # a registry clock a hair behind still takes it
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [a.as_claim() for a in access],
        }
        # distribution 2.8 takes the key from x5c (checked against its rootcertbundle)
        # and falls back to kid (a key of that bundle) when x5c is absent; both are sent.
        headers = {"x5c": self._x5c, "kid": self.key_id}
        return jwt.encode(claims, self._key, algorithm="ES256", headers=headers)


def _load_or_make(
    key_dir: Path, issuer: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = key_dir / _KEY, key_dir / _CERT
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidArgument(f"{key_path} is not an EC key")
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer} registry token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(key_path, pem, 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return key, cert


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode`` from the start (never readable by others
    for a moment), replacing the file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


class RegistryAuthorizer:
    """Decides what of the requested access a caller gets (the module docstring's rules)."""

    def __init__(self, namespaces: NamespaceService) -> None:
        self._namespaces = namespaces

    def grant(
        self,
        principal: Principal | None,
        requested: Sequence[Access],
        *,
        operator: bool = False,
    ) -> list[Access]:
        """One entry per requested access, in order, with the actions granted (possibly
        none). ``principal`` None: an anonymous caller; ``operator``: the operator (the
        daemon side seeding curated images), who gets everything asked for."""
        return [self._grant_one(principal, a, operator=operator) for a in requested]

    def _grant_one(self, principal: Principal | None, access: Access, *, operator: bool) -> Access:
        asked = _expand(access.actions)
        if operator:
            granted = asked if access.type == "repository" else access.actions
            return Access(access.type, access.name, granted)
        if access.type != "repository":
            return Access(access.type, access.name, ())
        allowed = self._allowed(principal, access.name)
        return Access(access.type, access.name, tuple(a for a in asked if a in allowed))

    def _allowed(self, principal: Principal | None, name: str) -> tuple[str, ...]:
        namespace, sep, rest = name.partition("/")
        if not sep or not rest:
            return ()
        if namespace in ALWAYS_RESERVED:  # Docker's familiar names: curated, whoever
            return _PULL
        owner = self._namespaces.owner(namespace)
        if owner is None:
            return _PULL if namespace in self._namespaces.reserved else ()
        if principal is None or owner != principal.tenant.id:
            return ()
        granted: tuple[str, ...] = ()
        if principal.may("read"):
            granted += _PULL
        if principal.may("write"):
            granted += _WRITE
        return granted


def _expand(actions: Sequence[str]) -> tuple[str, ...]:
    """``*`` on a repository is every action."""
    if "*" in actions:
        return _ALL
    return tuple(a for a in actions if a in _ALL)


def authenticate_basic(identity: IdentityService, username: str, password: str) -> Principal:
    """The caller of a registry login: ``password`` is a Dockyard API token and
    ``username`` its user's name. Unauthenticated if the token is not good or names
    another user (saying so without naming whose it is)."""
    principal = identity.authenticate(password)
    if principal.user.name != username:
        raise Unauthenticated("the user name does not match the token")
    return principal


def subject_of(principal: Principal | None) -> str:
    """Who a registry token names (the registry logs it as the caller): ``user@tenant``,
    "" for an anonymous caller."""
    if principal is None:
        return ""
    return f"{principal.user.name}@{principal.tenant.name}"
