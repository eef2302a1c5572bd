"""controller.registry_auth on a real SQLite store: what each caller is granted of the
scopes it asks for, the registry tokens' claims and headers, and basic credentials."""

from __future__ import annotations

import base64
import hashlib
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dockyard.controller import registry_auth
from dockyard.controller.identity import IdentityService
from dockyard.controller.namespaces import NamespaceService
from dockyard.controller.registry_auth import (
    RegistryAuthorizer,
    RegistryTokens,
    authenticate_basic,
    libtrust_key_id,
    subject_of,
)
from dockyard.core.errors import Unauthenticated
from dockyard.core.identity import Principal, Role
from dockyard.core.registry import CATALOG, REGISTRY_SERVICE, Access, parse_scope
from dockyard.store import SqlStore


def test_public_surface() -> None:
    assert set(registry_auth.__all__) == {
        "DEFAULT_TTL",
        "RegistryAuthorizer",
        "RegistryTokens",
        "authenticate_basic",
        "libtrust_key_id",
        "subject_of",
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
    yield opened
    opened.close()


@dataclass
class World:
    authorizer: RegistryAuthorizer
    identity: IdentityService
    callers: dict[str, Principal | None]


@pytest.fixture
def world(store: SqlStore) -> World:
    """acme owns ``acmeco``, globex ``globex``; ``curated`` is reserved and unowned,
    ``assigned`` reserved and assigned to globex by the operator."""
    identity = IdentityService(store)
    namespaces = NamespaceService(store, reserved=("curated", "assigned"))
    acme = identity.create_tenant("acme", user="ann")
    globex = identity.create_tenant("globex", user="gil")
    namespaces.claim(acme.tenant.id, "acmeco", user=acme.user.id)
    namespaces.claim(globex.tenant.id, "globex", user=globex.user.id)
    namespaces.assign(globex.tenant.id, "assigned")
    ann = identity.authenticate(acme.token.text)
    member = identity.add_user(acme.tenant.id, "bob", role=Role.MEMBER)
    reader = identity.issue(acme.tenant.id, member.id, scopes=("read",))
    return World(
        authorizer=RegistryAuthorizer(namespaces),
        identity=identity,
        callers={
            "ann": ann,  # acme's admin: read, write, admin
            "reader": identity.authenticate(reader.text),  # acme, read only
            "writer": replace(ann, scopes=("write",)),  # acme, write without read
            "gil": identity.authenticate(globex.token.text),
            "anonymous": None,
        },
    )


ALL = "pull,push,delete"

# (caller, scope asked, actions granted)
CASES = [
    # a tenant's own namespace: pull with read, push and delete with write
    ("ann", f"repository:acmeco/app:{ALL}", ("pull", "push", "delete")),
    ("ann", "repository:acmeco/app:pull", ("pull",)),
    ("ann", "repository:acmeco/deep/er/app:push", ("push",)),
    ("ann", "repository:acmeco/app:*", ("pull", "push", "delete")),
    ("reader", f"repository:acmeco/app:{ALL}", ("pull",)),
    ("writer", f"repository:acmeco/app:{ALL}", ("push", "delete")),
    # another tenant's namespace, an unclaimed one: nothing, the same way
    ("gil", f"repository:acmeco/app:{ALL}", ()),
    ("gil", f"repository:nobody/app:{ALL}", ()),
    ("ann", f"repository:globex/app:{ALL}", ()),
    ("anonymous", f"repository:acmeco/app:{ALL}", ()),
    # curated: library and reserved names nobody owns, pull for everyone
    ("ann", f"repository:library/busybox:{ALL}", ("pull",)),
    ("gil", "repository:library/busybox:*", ("pull",)),
    ("anonymous", f"repository:library/busybox:{ALL}", ("pull",)),
    ("anonymous", f"repository:curated/tool:{ALL}", ("pull",)),
    ("reader", "repository:curated/tool:pull", ("pull",)),
    # a reserved name the operator assigned to a tenant is that tenant's
    ("gil", f"repository:assigned/app:{ALL}", ("pull", "push", "delete")),
    ("ann", f"repository:assigned/app:{ALL}", ()),
    ("anonymous", f"repository:assigned/app:{ALL}", ()),
    # a name with no namespace part, or one that is only a namespace
    ("ann", f"repository:acmeco:{ALL}", ()),
    ("ann", f"repository:acmeco/:{ALL}", ()),
    ("anonymous", "repository:busybox:pull", ()),
    # a host in the name is not a namespace
    ("ann", "repository:localhost:5000/acmeco/app:pull", ()),
    # catalog and unknown types: never for tenants
    ("ann", "registry:catalog:*", ()),
    ("anonymous", "registry:catalog:*", ()),
    ("ann", "repository(plugin):acmeco/app:pull", ()),
    # unknown actions are dropped
    ("ann", "repository:acmeco/app:pull,frobnicate", ("pull",)),
]


@pytest.mark.parametrize(("caller", "scope", "granted"), CASES)
def test_grants(world: World, caller: str, scope: str, granted: tuple[str, ...]) -> None:
    asked = parse_scope(scope)
    assert world.authorizer.grant(world.callers[caller], [asked]) == [
        Access(asked.type, asked.name, granted)
    ]


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        (f"repository:library/busybox:{ALL}", ("pull", "push", "delete")),
        ("repository:acmeco/app:*", ("pull", "push", "delete")),
        ("repository:busybox:pull", ("pull",)),
        ("registry:catalog:*", ("*",)),
    ],
)
def test_the_operator_gets_everything(world: World, scope: str, granted: tuple[str, ...]) -> None:
    asked = parse_scope(scope)
    assert world.authorizer.grant(None, [asked], operator=True) == [
        Access(asked.type, asked.name, granted)
    ]


def test_several_scopes_are_granted_one_by_one_in_order(world: World) -> None:
    asked = [
        parse_scope("repository:acmeco/app:pull,push"),
        parse_scope("repository:library/busybox:pull"),
        parse_scope("repository:globex/app:pull"),
    ]
    assert world.authorizer.grant(world.callers["ann"], asked) == [
        Access("repository", "acmeco/app", ("pull", "push")),
        Access("repository", "library/busybox", ("pull",)),
        Access("repository", "globex/app", ()),
    ]


# tokens ------------------------------------------------------------------------------------


def test_tokens_claims_and_headers(tmp_path: Path) -> None:
    tokens = RegistryTokens(tmp_path / "keys", service=REGISTRY_SERVICE, clock=lambda: 1_000_000)
    text = tokens.mint("ann@acme", [Access("repository", "acmeco/app", ("pull", "push"))])
    header = jwt.get_unverified_header(text)
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    cert = x509.load_pem_x509_certificate(tokens.cert_path.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert header["x5c"] == [base64.b64encode(der).decode()]
    assert header["kid"] == tokens.key_id == libtrust_key_id(cert)
    claims = jwt.decode(
        text,
        cert.public_key(),  # type: ignore[arg-type]
        algorithms=["ES256"],
        audience=REGISTRY_SERVICE,
        issuer="dockyard",
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert claims["sub"] == "ann@acme"
    assert claims["iat"] == 1_000_000
    assert claims["exp"] == 1_000_000 + tokens.ttl == 1_000_300
    assert claims["nbf"] <= claims["iat"]
    assert claims["access"] == [
        {"type": "repository", "name": "acmeco/app", "actions": ["pull", "push"]}
    ]
    again = jwt.decode(
        tokens.mint("ann@acme", []),
        options={"verify_signature": False},
    )
    assert again["jti"] != claims["jti"]
    assert again["access"] == []


def test_the_key_id_is_libtrusts(tmp_path: Path) -> None:
    """libtrust: base32 of the first 240 bits of SHA-256(DER SubjectPublicKeyInfo), in
    groups of 4 (that the real registry takes it: test_controller_registry)."""
    tokens = RegistryTokens(tmp_path, service="s")
    cert = x509.load_pem_x509_certificate(tokens.cert_path.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    kid = libtrust_key_id(cert)
    assert len(kid) == 48 + 11
    assert kid.split(":") == [raw[i : i + 4] for i in range(0, 48, 4)]


def test_the_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    first = RegistryTokens(tmp_path / "keys", service="s")
    key = tmp_path / "keys" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert first.cert_path == tmp_path / "keys" / "cert.pem"
    before = key.read_bytes(), first.cert_path.read_bytes()
    second = RegistryTokens(tmp_path / "keys", service="s")
    assert (key.read_bytes(), second.cert_path.read_bytes()) == before
    assert second.key_id == first.key_id
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    text = second.mint("x", [CATALOG])
    jwt.decode(text, cert.public_key(), algorithms=["ES256"], audience="s")  # type: ignore[arg-type]


# basic credentials ---------------------------------------------------------------------------


def test_basic_credentials_are_a_user_name_and_its_token(world: World) -> None:
    identity = world.identity
    ann = world.callers["ann"]
    assert ann is not None
    token = identity.issue(ann.tenant.id, "ann")
    assert authenticate_basic(identity, "ann", token.text).user.name == "ann"
    with pytest.raises(Unauthenticated, match="does not match"):
        authenticate_basic(identity, "bob", token.text)
    with pytest.raises(Unauthenticated):
        authenticate_basic(identity, "ann", "dyk_0000000000000000_" + "x" * 43)
    with pytest.raises(Unauthenticated):
        authenticate_basic(identity, "ann", "hunter2")
    identity.revoke(ann.tenant.id, token.token.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticate_basic(identity, "ann", token.text)


def test_a_tokens_subject_names_the_user_and_tenant(world: World) -> None:
    assert subject_of(world.callers["ann"]) == "ann@acme"
    assert subject_of(None) == ""
