"""controller.identity on a real SQLite store: tenants, users, tokens, authentication."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.controller.identity import IdentityService
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from dockyard.core.identity import Role
from dockyard.store import SqlStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity(tmp_path: Path, clock: Clock) -> IdentityService:
    store = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
    return IdentityService(store, clock=clock)


def test_create_tenant_gives_an_admin_and_a_working_token(identity: IdentityService) -> None:
    made = identity.create_tenant("acme", user="ann")
    assert made.user.role == Role.ADMIN
    who = identity.authenticate(made.token.text)
    assert (who.tenant.name, who.user.name, who.scopes) == (
        "acme",
        "ann",
        ("read", "write", "admin"),
    )
    with pytest.raises(AlreadyExists):
        identity.create_tenant("acme", user="bob")
    with pytest.raises(InvalidArgument):
        identity.create_tenant("Not A Name")


def test_bootstrap_is_idempotent_and_issues_a_new_token(identity: IdentityService) -> None:
    first = identity.bootstrap("default", user="admin")
    second = identity.bootstrap("default", user="admin")
    assert first.tenant == second.tenant and first.user == second.user
    assert first.token.text != second.token.text
    assert (
        identity.authenticate(first.token.text).user
        == identity.authenticate(second.token.text).user
    )


def test_bad_tokens_are_unauthenticated_and_never_say_whose(identity: IdentityService) -> None:
    made = identity.create_tenant("acme")
    token_id = made.token.token.id
    for text in ("", "garbage", f"dyk_{token_id}_" + "x" * 43, "dyk_" + "0" * 16 + "_" + "y" * 43):
        with pytest.raises(Unauthenticated) as refused:
            identity.authenticate(text)
        assert "acme" not in refused.value.message


def test_revocation_takes_effect_at_once(identity: IdentityService) -> None:
    made = identity.create_tenant("acme")
    identity.authenticate(made.token.text)  # now cached
    identity.revoke(made.tenant.id, made.token.token.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(made.token.text)
    other = identity.create_tenant("globex")
    with pytest.raises(NotFound):
        identity.revoke(other.tenant.id, made.token.token.id)


def test_expiry(identity: IdentityService, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    made = identity.create_tenant("acme")
    short = identity.issue(made.tenant.id, "admin", ttl=10)
    assert short.token.expires == short.token.created + 10 * 1_000_000_000
    identity.authenticate(short.text)
    import dockyard.controller.identity as module

    monkeypatch.setattr(module, "now_ns", lambda: short.token.expires + 1)
    clock.now += 5  # past the cache
    with pytest.raises(Unauthenticated, match="expired"):
        identity.authenticate(short.text)
    with pytest.raises(InvalidArgument):
        identity.issue(made.tenant.id, "admin", ttl=-1)


def test_scopes_are_bounded_by_the_role(identity: IdentityService) -> None:
    made = identity.create_tenant("acme")
    identity.add_user(made.tenant.id, "bob")
    with pytest.raises(PermissionDenied):
        identity.issue(made.tenant.id, "bob", scopes=("read", "admin"))
    reader = identity.issue(made.tenant.id, "bob", scopes=("read",))
    assert identity.authenticate(reader.text).scopes == ("read",)
    assert identity.issue(made.tenant.id, "bob").token.scopes == ("read", "write")


def test_removing_a_user_ends_its_tokens(identity: IdentityService) -> None:
    made = identity.create_tenant("acme")
    identity.add_user(made.tenant.id, "bob")
    token = identity.issue(made.tenant.id, "bob")
    identity.authenticate(token.text)
    identity.remove_user(made.tenant.id, "bob")
    with pytest.raises(Unauthenticated):
        identity.authenticate(token.text)


def test_a_tenant_is_removed_only_empty(identity: IdentityService) -> None:
    made = identity.create_tenant("acme")
    with pytest.raises(Conflict, match="2 containers"):
        identity.delete_tenant("acme", owns=lambda _t: "2 containers")
    identity.delete_tenant("acme", owns=lambda _t: "")
    with pytest.raises(Unauthenticated):
        identity.authenticate(made.token.text)
    with pytest.raises(NotFound):
        identity.tenant("acme")
