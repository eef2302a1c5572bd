"""The Store conformance suite itself: it covers the rules, and a broken store fails it."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from dockyard.core.audit import AuditQuery, AuditRecord
from dockyard.core.errors import DockyardError, InvalidArgument, NotFound, PermissionDenied
from dockyard.core.events import Event
from dockyard.core.models import (
    Container,
    ExecInstance,
    Network,
    PublicIp,
    SecurityGroup,
    Volume,
)
from dockyard.core.namespaces import Namespace
from dockyard.core.tenancy import Tenant
from dockyard.store import ALL_TENANTS, SqlStore, sql
from dockyard.testing import store_conformance
from dockyard.testing.store_conformance import CHECKS, Check, StoreFactory, run_all


def test_every_check_is_exported_and_listed_once() -> None:
    checks = {
        name
        for name, value in vars(store_conformance).items()
        if name.startswith("check_") and inspect.isfunction(value)
    }
    assert checks <= set(store_conformance.__all__)
    assert {c.__name__ for c in CHECKS} == checks
    assert len(CHECKS) == len(checks)
    assert {"CHECKS", "Check", "StoreFactory", "run_all"} <= set(store_conformance.__all__)


def test_every_check_documents_its_rule() -> None:
    for check in CHECKS:
        assert check.__doc__, check.__name__


class LeakyStore(SqlStore):
    """Looks containers up across tenants: the bug tenancy must never have."""

    def get_container(self, *, tenant: str, ref: str) -> Container:
        return super().get_container(tenant=ALL_TENANTS, ref=ref)


class NoPrefixStore(SqlStore):
    """Finds containers only by full id or name."""

    def get_container(self, *, tenant: str, ref: str) -> Container:
        found = super().get_container(tenant=tenant, ref=ref)
        if ref not in (found.id, found.name, f"/{found.name}"):
            raise NotFound(f"No such container: {ref}")
        return found


class AmbiguousAcrossTenantsStore(SqlStore):
    """Counts prefix matches over every tenant, so another tenant's id makes a prefix
    ambiguous (and so tells that it exists)."""

    def get_container(self, *, tenant: str, ref: str) -> Container:
        found = super().get_container(tenant=tenant, ref=ref)
        if ref not in (found.id, found.name):
            everyone = self.list_containers(tenant=ALL_TENANTS)
            if sum(c.id.startswith(ref) for c in everyone) > 1:
                raise InvalidArgument(f"multiple containers found with provided prefix: {ref}")
        return found


class TellingStore(SqlStore):
    """Says when a volume exists in another tenant."""

    def get_volume(self, *, tenant: str, name: str) -> Volume:
        try:
            return super().get_volume(tenant=tenant, name=name)
        except NotFound:
            if any(v.name == name for v in self.list_volumes(tenant=ALL_TENANTS)):
                raise NotFound(f"volume {name} belongs to another tenant") from None
            raise


class ForbiddingStore(SqlStore):
    """Answers PermissionDenied, not NotFound, for another tenant's exec."""

    def get_exec(self, *, tenant: str, exec_id: str) -> ExecInstance:
        try:
            return super().get_exec(tenant=tenant, exec_id=exec_id)
        except NotFound:
            other = "tenant-a" if tenant != "tenant-a" else "tenant-b"
            with contextlib.suppress(NotFound):
                super().get_exec(tenant=other, exec_id=exec_id)
                raise PermissionDenied("that exec is not yours") from None
            raise


class SharedNetworksStore(SqlStore):
    """Shows every tenant every network."""

    def list_networks(self, *, tenant: str) -> list[Network]:
        return super().list_networks(tenant=ALL_TENANTS)


class SameAddressStore(SqlStore):
    """Hands the first host address to everyone."""

    def allocate_address(self, *, network: Network, owner: str) -> str:
        return "10.77.0.2"


class OverlappingTenantsStore(SqlStore):
    """Gives every tenant the same uid range."""

    def ensure_tenant(self, name: str) -> Tenant:
        tenant = super().ensure_tenant(name)
        return Tenant(id=tenant.id, name=tenant.name, uid_base=100_000)


class SharedEventsStore(SqlStore):
    """Reads every tenant's events."""

    def list_events(
        self, *, tenant: str, since: int = 0, until: int = 0, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        return super().list_events(
            tenant=ALL_TENANTS, since=since, until=until, after=after, limit=limit
        )


class KeepsEverythingStore(SqlStore):
    """Never prunes its event log."""

    def prune_events(self, *, tenant: str, keep: int, before: int) -> int:
        return 0


class SharedAuditStore(SqlStore):
    """Reads the audit log of whichever tenant the caller's user filter names."""

    def list_audit(self, *, tenant: str, query: AuditQuery) -> list[AuditRecord]:
        if not query.user:
            return super().list_audit(tenant=tenant, query=query)
        found: list[AuditRecord] = []
        for other in self.audit_tenants():
            found += super().list_audit(tenant=other, query=query)
        return sorted(found, key=lambda r: -r.seq)[: query.limit]


class LooseAuditFilterStore(SqlStore):
    """Matches audit prefixes with LIKE (wildcards, and no case on SQLite)."""

    def list_audit(self, *, tenant: str, query: AuditQuery) -> list[AuditRecord]:
        if not query.action:
            return super().list_audit(tenant=tenant, query=query)
        every = super().list_audit(
            tenant=tenant, query=dataclasses.replace(query, action="", limit=10_000)
        )
        pattern = query.action.lower().replace("%", "").replace("_", "")
        return [r for r in every if r.action.lower().replace("_", "").startswith(pattern)][
            : query.limit
        ]


class KeepsAllAuditStore(SqlStore):
    """Never prunes its audit log."""

    def prune_audit(self, *, tenant: str, keep: int, before: int) -> int:
        return 0


class UndyingCertsStore(SqlStore):
    """Keeps a removed user's client certificates."""

    def delete_user(self, *, tenant: str, user_id: str) -> None:
        mine = self.list_certs(tenant=tenant, user=user_id)
        super().delete_user(tenant=tenant, user_id=user_id)
        for cert in mine:
            self.add_cert(cert)


class PerTenantNamespacesStore(SqlStore):
    """Lets a tenant take a name another tenant holds (unique per tenant only)."""

    def add_namespace(self, namespace: Namespace) -> None:
        owner = self.namespace_owner(namespace.name)
        if owner is not None and owner != namespace.tenant:
            return  # silently "claimed"
        super().add_namespace(namespace)


class FreedNamespacesStore(SqlStore):
    """Forgets a deleted tenant's namespaces, so their names can be claimed again."""

    def delete_tenant(self, tenant_id: str) -> None:
        from dockyard.store.sql import namespaces

        super().delete_tenant(tenant_id)
        with self.engine.begin() as conn:
            conn.execute(namespaces.delete().where(namespaces.c.tenant == tenant_id))


class SharedNamespacesStore(SqlStore):
    """Lists every tenant's namespaces to everyone."""

    def list_namespaces(self, *, tenant: str) -> list[Namespace]:
        return [n for n in super().list_namespaces(tenant=ALL_TENANTS) if not n.retired]


class SharedGroupsStore(SqlStore):
    """Finds a security group by name in any tenant when the caller has none of that name."""

    def get_security_group(self, *, tenant: str, ref: str) -> SecurityGroup:
        try:
            return super().get_security_group(tenant=tenant, ref=ref)
        except NotFound:
            for other in ("tenant-a", "tenant-b"):
                with contextlib.suppress(NotFound):
                    return super().get_security_group(tenant=other, ref=ref)
            raise


class CarelessGroupDeleteStore(SqlStore):
    """Deletes a security group whatever is in it."""

    def delete_security_group(self, *, tenant: str, group_id: str) -> None:
        for container in self.list_containers(tenant=tenant):
            if group_id in container.security_groups:
                container.security_groups = []
                self.put_container(container)
        super().delete_security_group(tenant=tenant, group_id=group_id)


class SharedPublicIpsStore(SqlStore):
    """Shows any tenant's public IP to whoever asks for its address."""

    def get_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        for held in self.list_public_ips(tenant=ALL_TENANTS):
            if held.address == address:
                return held
        raise NotFound(f"no such public IP: {address}")


class SamePublicIpStore(SqlStore):
    """Hands the lowest address of the first pool to everyone."""

    def allocate_public_ip(self, *, tenant: str, created: int) -> PublicIp:
        given = super().allocate_public_ip(tenant=tenant, created=created)
        first = self.list_public_ips(tenant=ALL_TENANTS)[0]
        return PublicIp(address=first.address, tenant=given.tenant, created=created)


class HoardingStore(SqlStore):
    """Forgets released public IPs instead of returning them to the pool."""

    def release_public_ip(self, *, tenant: str, address: str) -> PublicIp:
        released = super().release_public_ip(tenant=tenant, address=address)
        super().allocate_public_ip(tenant="nobody", created=0)
        return released


class StickyBindingStore(SqlStore):
    """Leaves a removed container's public IP bound to it."""

    def delete_container(self, *, tenant: str, container_id: str) -> None:
        bound = self.public_ip_of(tenant=tenant, container_id=container_id)
        super().delete_container(tenant=tenant, container_id=container_id)
        if bound:
            with self._tx() as conn:
                conn.execute(
                    sql.public_ips.update()
                    .where(sql.public_ips.c.address == bound)
                    .values(container=container_id)
                )


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[Callable[[type[SqlStore]], StoreFactory]]:
    counter = itertools.count()

    def make(cls: type[SqlStore]) -> StoreFactory:
        return lambda: cls.sqlite(tmp_path / f"db{next(counter)}.db", uid_range_start=100_000)

    yield make


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (LeakyStore, store_conformance.check_containers_of_other_tenants_are_invisible),
        (AmbiguousAcrossTenantsStore, store_conformance.check_prefixes_are_unique_per_tenant),
        (TellingStore, store_conformance.check_other_tenants_objects_read_as_missing),
        (ForbiddingStore, store_conformance.check_other_tenants_objects_read_as_missing),
        (NoPrefixStore, store_conformance.check_container_found_by_unique_prefix),
        (SharedNetworksStore, store_conformance.check_networks),
        (SameAddressStore, store_conformance.check_addresses_are_never_handed_out_twice),
        (OverlappingTenantsStore, store_conformance.check_tenants_get_disjoint_uid_ranges),
        (SharedEventsStore, store_conformance.check_events_of_other_tenants_are_invisible),
        (KeepsEverythingStore, store_conformance.check_event_retention),
        (SharedAuditStore, store_conformance.check_audit_of_other_tenants_are_invisible),
        (LooseAuditFilterStore, store_conformance.check_audit_append_and_filters),
        (KeepsAllAuditStore, store_conformance.check_audit_retention),
        (UndyingCertsStore, store_conformance.check_client_certs),
        (PerTenantNamespacesStore, store_conformance.check_namespaces_are_unique_across_tenants),
        (FreedNamespacesStore, store_conformance.check_namespaces_of_a_deleted_tenant_are_retired),
        (SharedNamespacesStore, store_conformance.check_namespaces_are_unique_across_tenants),
        (
            SharedGroupsStore,
            store_conformance.check_security_groups_of_other_tenants_read_as_missing,
        ),
        (CarelessGroupDeleteStore, store_conformance.check_security_group_delete),
        (SharedPublicIpsStore, store_conformance.check_public_ips_of_other_tenants_are_invisible),
        (SamePublicIpStore, store_conformance.check_public_ips_are_never_handed_out_twice),
        (HoardingStore, store_conformance.check_public_ips_released_return_to_the_pool),
        (StickyBindingStore, store_conformance.check_public_ip_binding),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_a_broken_store_fails_its_check(
    factory: Callable[[type[SqlStore]], StoreFactory], broken: type[SqlStore], check: Check
) -> None:
    with pytest.raises((AssertionError, DockyardError)):
        check(factory(broken))


def test_run_all_stops_at_the_first_broken_rule(
    factory: Callable[[type[SqlStore]], StoreFactory],
) -> None:
    with pytest.raises(AssertionError):
        run_all(factory(LeakyStore))


class TrackingStore(SqlStore):
    """Remembers which stores were opened and closed."""

    opened: ClassVar[list[TrackingStore]] = []
    closed: ClassVar[list[TrackingStore]] = []

    def __init__(self, url: str, *, uid_range_start: int) -> None:
        super().__init__(url, uid_range_start=uid_range_start)
        TrackingStore.opened.append(self)

    def close(self) -> None:
        TrackingStore.closed.append(self)
        super().close()


@pytest.mark.parametrize("check", CHECKS[:3], ids=lambda c: c.__name__)
def test_checks_close_the_stores_they_open(
    factory: Callable[[type[SqlStore]], StoreFactory], check: Check
) -> None:
    TrackingStore.opened.clear()
    TrackingStore.closed.clear()
    check(factory(TrackingStore))
    assert TrackingStore.opened
    assert TrackingStore.closed == TrackingStore.opened
