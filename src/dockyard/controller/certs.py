"""Client certificates: issuing them to users who proved who they are, and telling whose a
certificate presented on the TLS listener is.

A user asks with a certificate request (the private key never leaves the client) and gets
a certificate from Dockyard's CA (``dockyard.controller.pki``), recorded in the store with
the scopes and the token of the credential that asked. Its lifetime is bounded by the
controller's ceiling (30 days by default) and never passes that token's expiry.

A certificate authenticates only while its record says so: removing the user or the
tenant, revoking the certificate, or revoking the token it descends from makes it fail
with 401. As with tokens, a verified certificate is remembered for a couple of seconds;
changes made through this controller forget it at once (``IdentityService.on_forget``).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from dockyard.controller.pki import (
    CertificateAuthority,
    ClientSubject,
    TlsFiles,
    fingerprint,
    serial_of,
)
from dockyard.core.certs import ClientCert, parse_serial
from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from dockyard.core.identity import Principal, scopes_for, validate_scopes
from dockyard.store.base import Store

__all__ = ["CertificateService", "IssuedCert"]

_CACHE_SECONDS = 2.0
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """A new certificate: its record and its PEM text."""

    record: ClientCert
    pem: str


class CertificateService:
    """``tls_dir`` holds the CA (made on first use); ``max_ttl`` is the longest lifetime of
    a client certificate, in seconds."""

    def __init__(
        self,
        store: Store,
        *,
        tls_dir: Path,
        ca_name: str,
        max_ttl: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.files = TlsFiles(tls_dir)
        self._ca_name = ca_name
        self._max_ttl = max_ttl
        self._clock = clock
        self._ca: CertificateAuthority | None = None
        self._ca_lock = threading.Lock()
        self._verified: dict[str, tuple[float, Principal]] = {}

    @property
    def ca(self) -> CertificateAuthority:
        with self._ca_lock:
            if self._ca is None:
                self._ca = CertificateAuthority.load_or_create(self.files, name=self._ca_name)
            return self._ca

    def prepare_listener(self, names: tuple[str, ...]) -> None:
        """Make the CA if missing and a fresh certificate for the TLS listener."""
        self.ca.issue_server(self.files, names=names)

    # issuing -----------------------------------------------------------------------------

    def issue(
        self,
        principal: Principal,
        csr_pem: str,
        *,
        ttl: int = 0,
        scopes: tuple[str, ...] | None = None,
    ) -> IssuedCert:
        """A certificate for the caller's own key (``csr_pem``), with ``scopes`` within the
        caller's (default: all of them) and ``ttl`` seconds of life at most (0: the
        ceiling), never beyond the expiry of the caller's token."""
        wanted = principal.scopes if scopes is None else validate_scopes(scopes)
        beyond = [s for s in wanted if not principal.may(s)]
        if beyond:
            raise PermissionDenied(
                f"a certificate cannot grant more than its requester holds: {beyond[0]!r}"
            )
        if ttl < 0:
            raise InvalidArgument("a certificate's lifetime cannot be negative")
        if not principal.token_id:
            raise PermissionDenied("a certificate is obtained with a token")
        try:
            token = self._store.get_token(principal.token_id)
        except NotFound:
            raise Unauthenticated("invalid token") from None
        now = now_ns()
        expires = now + min(ttl or self._max_ttl, self._max_ttl) * _NS
        if token.expires:
            expires = min(expires, token.expires)
        not_after = expires // _NS  # certificates count whole seconds
        if not_after * _NS <= now:
            raise Unauthenticated("token expired")
        subject = ClientSubject(
            user_id=principal.user.id,
            user_name=principal.user.name,
            tenant_name=principal.tenant.name,
        )
        cert = self.ca.sign_client(csr_pem, subject=subject, not_after=not_after)
        der = cert.public_bytes(serialization.Encoding.DER)
        record = ClientCert(
            serial=format(cert.serial_number, "x"),
            tenant=principal.tenant.id,
            user=principal.user.id,
            fingerprint=fingerprint(der),
            scopes=wanted,
            token=token.id,
            created=now,
            expires=not_after * _NS,
        )
        self._store.add_cert(record)
        return IssuedCert(record=record, pem=cert.public_bytes(serialization.Encoding.PEM).decode())

    def list_certs(self, tenant: str, user: str | None = None) -> list[ClientCert]:
        """The tenant's certificates (one user's, by id, with ``user``)."""
        return self._store.list_certs(tenant=tenant, user=user)

    def revoke(self, tenant: str, serial: str) -> ClientCert:
        """Revoke the tenant's certificate; the next call made with it is 401."""
        cert = self._store.revoke_cert(tenant=tenant, serial=parse_serial(serial), when=now_ns())
        self.forget(lambda p: p.cert_serial == cert.serial)
        return cert

    # authentication ----------------------------------------------------------------------

    def authenticate(self, der: bytes) -> Principal:
        """The caller a certificate (DER, already verified against the CA by the TLS
        handshake) names; Unauthenticated (saying why, never whose) if it is unknown,
        revoked or expired, its token is revoked, or its user or tenant is gone."""
        now = self._clock()
        key = fingerprint(der)
        cached = self._verified.get(key)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        try:
            record = self._store.get_cert(serial_of(der))
        except (InvalidArgument, NotFound):
            raise Unauthenticated("unknown client certificate") from None
        if not hmac.compare_digest(record.fingerprint, key):
            raise Unauthenticated("unknown client certificate")
        if record.revoked:
            raise Unauthenticated("client certificate revoked")
        if not record.usable(now_ns()):
            raise Unauthenticated("client certificate expired")
        try:
            token = self._store.get_token(record.token)
            tenant = self._store.get_tenant(record.tenant)
            user = self._store.get_user(tenant=record.tenant, ref=record.user)
        except NotFound:
            raise Unauthenticated("unknown client certificate") from None
        if token.revoked:
            raise Unauthenticated("the token this certificate was obtained with is revoked")
        allowed = scopes_for(user.role)
        principal = Principal(
            tenant=tenant,
            user=user,
            scopes=tuple(s for s in record.scopes if s in allowed),
            token_id=token.id,
            cert_serial=record.serial,
        )
        if len(self._verified) > 4096:
            self._verified.clear()
        self._verified[key] = (now, principal)
        return principal

    def forget(self, matches: Callable[[Principal], bool]) -> None:
        """Drop remembered principals that ``matches`` (see IdentityService.on_forget)."""
        for key, (_, principal) in list(self._verified.items()):
            if matches(principal):
                del self._verified[key]
