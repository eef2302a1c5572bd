"""controller.certs on a real SQLite store and a real CA: issuing client certificates and
telling whose one is, revocation by every route, bounded lifetimes."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.client.certs import make_key_request
from dockyard.controller.certs import CertificateService
from dockyard.controller.identity import IdentityService
from dockyard.controller.pki import CertificateAuthority, ClientSubject, TlsFiles
from dockyard.core.certs import CLIENT_CERT_MAX_TTL
from dockyard.core.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from dockyard.core.identity import Principal
from dockyard.store import SqlStore

NS = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    store: SqlStore
    identity: IdentityService
    certs: CertificateService
    clock: Clock

    def login(self, tenant: str = "acme", *, ttl: int = 0) -> tuple[str, Principal]:
        """A tenant (made if missing) with a token for its admin, and that token's caller."""
        try:
            made = self.identity.tenant(tenant)
            text = self.identity.issue(made.id, "admin", ttl=ttl).text
        except NotFound:
            text = self.identity.create_tenant(tenant).token.text
            if ttl:
                text = self.identity.issue(self.identity.tenant(tenant).id, "admin", ttl=ttl).text
        return text, self.identity.authenticate(text)

    def issue_der(self, principal: Principal, **kwargs: object) -> tuple[bytes, x509.Certificate]:
        issued = self.certs.issue(principal, make_key_request().csr_pem, **kwargs)  # type: ignore[arg-type]
        cert = x509.load_pem_x509_certificate(issued.pem.encode())
        return cert.public_bytes(serialization.Encoding.DER), cert


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
    clock = Clock()
    identity = IdentityService(store, clock=clock)
    certs = CertificateService(
        store,
        tls_dir=tmp_path / "tls",
        ca_name="Dockyard CA (t)",
        max_ttl=CLIENT_CERT_MAX_TTL,
        clock=clock,
    )
    identity.on_forget(certs.forget)
    yield World(store=store, identity=identity, certs=certs, clock=clock)
    store.close()


def _expires(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def test_a_certificate_names_its_user_and_is_recorded(world: World) -> None:
    _, principal = world.login()
    der, cert = world.issue_der(principal)
    cert.verify_directly_issued_by(world.certs.ca.certificate)
    who = world.certs.authenticate(der)
    assert (who.tenant.name, who.user.name) == ("acme", "admin")
    assert who.scopes == principal.scopes
    assert who.token_id == principal.token_id
    assert who.cert_serial == format(cert.serial_number, "x")
    [record] = world.certs.list_certs(principal.tenant.id)
    assert record.serial == who.cert_serial and record.token == principal.token_id
    assert record.expires == int(_expires(cert)) * NS
    assert abs(_expires(cert) - _now() - CLIENT_CERT_MAX_TTL) < 60


def test_lifetime_is_bounded_by_the_ceiling_and_the_token(world: World) -> None:
    _, principal = world.login()
    _, asked = world.issue_der(principal, ttl=600)
    assert abs(_expires(asked) - _now() - 600) < 60
    _, capped = world.issue_der(principal, ttl=10 * CLIENT_CERT_MAX_TTL)
    assert abs(_expires(capped) - _now() - CLIENT_CERT_MAX_TTL) < 60
    _, short = world.login(ttl=120)
    _, bounded = world.issue_der(short, ttl=3600)
    token = world.store.get_token(short.token_id)
    assert _expires(bounded) <= token.expires / NS
    with pytest.raises(InvalidArgument):
        world.issue_der(principal, ttl=-1)


def test_scopes_are_at_most_the_requesters(world: World) -> None:
    _, principal = world.login()
    reader = world.identity.issue(principal.tenant.id, "admin", scopes=("read",))
    read_only = world.identity.authenticate(reader.text)
    with pytest.raises(PermissionDenied):
        world.issue_der(read_only, scopes=("read", "write"))
    der, _ = world.issue_der(principal, scopes=("read",))
    assert world.certs.authenticate(der).scopes == ("read",)


def test_revoking_the_certificate_ends_it_at_once(world: World) -> None:
    _, principal = world.login()
    der, _ = world.issue_der(principal)
    serial = world.certs.authenticate(der).cert_serial  # now cached
    other_text, other = world.login("globex")
    with pytest.raises(NotFound):
        world.certs.revoke(other.tenant.id, serial)
    assert world.certs.revoke(principal.tenant.id, serial.upper()).revoked
    with pytest.raises(Unauthenticated, match="revoked"):
        world.certs.authenticate(der)
    assert other_text  # the other tenant's login is untouched
    world.identity.authenticate(other_text)


def test_revoking_its_token_or_removing_its_user_ends_it(world: World) -> None:
    _, principal = world.login()
    world.identity.add_user(principal.tenant.id, "bob")
    bob = world.identity.authenticate(world.identity.issue(principal.tenant.id, "bob").text)
    der, _ = world.issue_der(principal)
    bobs, _ = world.issue_der(bob)
    world.certs.authenticate(der)
    world.certs.authenticate(bobs)
    world.identity.revoke(principal.tenant.id, principal.token_id)
    with pytest.raises(Unauthenticated, match="token"):
        world.certs.authenticate(der)
    world.identity.remove_user(principal.tenant.id, "bob")
    with pytest.raises(Unauthenticated):
        world.certs.authenticate(bobs)


def test_expired_certificates_are_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _, principal = world.login()
    der, cert = world.issue_der(principal, ttl=60)
    world.certs.authenticate(der)
    import dockyard.controller.certs as module

    monkeypatch.setattr(module, "now_ns", lambda: int(_expires(cert)) * NS + 1)
    world.clock.now += 5  # past the cache
    with pytest.raises(Unauthenticated, match="expired"):
        world.certs.authenticate(der)


def test_certificates_it_has_no_record_of_are_refused(world: World, tmp_path: Path) -> None:
    _, principal = world.login()
    mine, cert = world.issue_der(principal)
    stranger = CertificateAuthority.load_or_create(TlsFiles(tmp_path / "other"), name="x")
    unknown = stranger.sign_client(
        make_key_request().csr_pem,
        subject=ClientSubject(user_id=principal.user.id, user_name="admin", tenant_name="acme"),
        not_after=int(_expires(cert)),
    )
    with pytest.raises(Unauthenticated, match="unknown"):
        world.certs.authenticate(unknown.public_bytes(serialization.Encoding.DER))
    # A certificate with the very serial of a recorded one: the fingerprint pins the
    # record to the bytes our CA signed.
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(Unauthenticated, match="unknown"):
        world.certs.authenticate(forged.public_bytes(serialization.Encoding.DER))
    for garbage in (b"", b"\x30\x03\x02\x01\x01"):
        with pytest.raises(Unauthenticated):
            world.certs.authenticate(garbage)
    world.certs.authenticate(mine)


def test_a_caller_without_a_token_gets_no_certificate(world: World) -> None:
    _, principal = world.login()
    with pytest.raises(PermissionDenied):
        world.certs.issue(replace(principal, token_id=""), make_key_request().csr_pem)
