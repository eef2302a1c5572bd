"""controller.namespaces on a real SQLite store: claims, reserved names, the limit, the
operator's assignments, owners, and what a deleted tenant leaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.controller.identity import IdentityService
from dockyard.controller.namespaces import NamespaceService
from dockyard.core.audit import OPERATOR
from dockyard.core.errors import AlreadyExists, InvalidArgument, PermissionDenied, QuotaExceeded
from dockyard.store import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "db.sqlite", uid_range_start=1_000_000)
    yield opened
    opened.close()


@pytest.fixture
def identity(store: SqlStore) -> IdentityService:
    return IdentityService(store)


def test_a_claim_is_the_tenants_and_nobody_elses(
    store: SqlStore, identity: IdentityService
) -> None:
    service = NamespaceService(store)
    acme = identity.create_tenant("acme", user="ann")
    globex = identity.create_tenant("globex", user="gil")
    made = service.claim(acme.tenant.id, "webshop", user=acme.user.id)
    assert (made.name, made.tenant, made.created_by) == ("webshop", acme.tenant.id, acme.user.id)
    assert service.list_namespaces(acme.tenant.id) == [made]
    assert service.list_namespaces(globex.tenant.id) == []
    assert service.owner("webshop") == acme.tenant.id
    assert service.owner("nobody") is None
    with pytest.raises(AlreadyExists, match="already taken") as taken:
        service.claim(globex.tenant.id, "webshop", user=globex.user.id)
    assert "acme" not in taken.value.message, "never says whose"
    with pytest.raises(AlreadyExists, match="already yours"):
        service.claim(acme.tenant.id, "webshop", user=acme.user.id)
    second = service.claim(acme.tenant.id, "acme_api", user=acme.user.id)
    assert [n.name for n in service.list_namespaces(acme.tenant.id)] == ["acme_api", "webshop"]
    assert second in service.list_all()


@pytest.mark.parametrize("name", ["abc", "Acme", "_acme", "ac-me", ""])
def test_invalid_names_are_refused(store: SqlStore, identity: IdentityService, name: str) -> None:
    acme = identity.create_tenant("acme", user="ann")
    service = NamespaceService(store)
    with pytest.raises(InvalidArgument, match="4 to 30"):
        service.claim(acme.tenant.id, name, user=acme.user.id)
    with pytest.raises(InvalidArgument, match="4 to 30"):
        service.assign(acme.tenant.id, name)
    assert service.list_all() == []


def test_reserved_names_are_the_operators(store: SqlStore, identity: IdentityService) -> None:
    service = NamespaceService(store, reserved=("curated",))
    acme = identity.create_tenant("acme", user="ann")
    for name in ("library", "curated"):
        with pytest.raises(PermissionDenied, match="reserved"):
            service.claim(acme.tenant.id, name, user=acme.user.id)
    assert service.list_all() == []
    given = service.assign(acme.tenant.id, "library")
    assert (given.tenant, given.created_by) == (acme.tenant.id, OPERATOR)
    with pytest.raises(AlreadyExists):
        service.assign(acme.tenant.id, "library")


def test_a_reserved_name_must_be_a_name(store: SqlStore) -> None:
    with pytest.raises(InvalidArgument):
        NamespaceService(store, reserved=("no",))


def test_a_tenant_claims_at_most_the_limit_the_operator_more(
    store: SqlStore, identity: IdentityService
) -> None:
    service = NamespaceService(store, limit=2)
    acme = identity.create_tenant("acme", user="ann")
    for name in ("acme_one", "acme_two"):
        service.claim(acme.tenant.id, name, user=acme.user.id)
    with pytest.raises(QuotaExceeded, match="at most 2"):
        service.claim(acme.tenant.id, "acme_three", user=acme.user.id)
    service.assign(acme.tenant.id, "acme_three")
    assert len(service.list_namespaces(acme.tenant.id)) == 3
    assert len(NamespaceService(store, limit=0).list_namespaces(acme.tenant.id)) == 3


def test_a_deleted_tenants_names_are_retired_for_good(
    store: SqlStore, identity: IdentityService
) -> None:
    service = NamespaceService(store)
    acme = identity.create_tenant("acme", user="ann")
    service.claim(acme.tenant.id, "acme", user=acme.user.id)
    identity.delete_tenant("acme", owns=lambda _tenant: "")
    assert service.owner("acme") is None
    [retired] = service.list_all()
    assert retired.tenant == acme.tenant.id and retired.retired
    again = identity.create_tenant("acme", user="ann")
    with pytest.raises(AlreadyExists):
        service.claim(again.tenant.id, "acme", user=again.user.id)
    with pytest.raises(AlreadyExists):
        service.assign(again.tenant.id, "acme")
