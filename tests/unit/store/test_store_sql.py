"""SqlStore on a SQLite file: the Store conformance suite, and what is SQL-specific."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.core.errors import AlreadyExists, NotFound
from dockyard.core.events import Event
from dockyard.core.models import (
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
    Image,
    SecurityGroup,
    Status,
    Volume,
)
from dockyard.core.quotas import TenantQuota
from dockyard.store import ALL_TENANTS, SqlStore, Store
from dockyard.testing.store_conformance import CHECKS, Check, StoreFactory

UID_START = 200_000


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[StoreFactory]:
    counter = itertools.count()
    opened: list[SqlStore] = []

    def make() -> Store:
        store = SqlStore.sqlite(
            tmp_path / f"db{next(counter)}" / "dockyard.db", uid_range_start=UID_START
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_sql_store_conforms(make_store: StoreFactory, check: Check) -> None:
    check(make_store)


def test_public_surface() -> None:
    import dockyard.store

    assert set(dockyard.store.__all__) == {"ALL_TENANTS", "SqlStore", "Store"}
    assert ALL_TENANTS == "*"


def test_first_tenant_starts_at_the_configured_uid(tmp_path: Path) -> None:
    store = SqlStore.sqlite(tmp_path / "s.db", uid_range_start=UID_START)
    try:
        assert store.ensure_tenant("a").uid_base == UID_START
        assert store.ensure_tenant("b").uid_base == UID_START + 65536
    finally:
        store.close()


def test_records_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "dockyard.db"
    store = SqlStore.sqlite(path, uid_range_start=UID_START)
    tenant = store.ensure_tenant("acme")
    container = Container(
        id="a" * 64,
        tenant=tenant.id,
        name="web",
        created=1,
        image="busybox",
        image_id="sha256:" + "b" * 64,
        config=ContainerConfig(image="busybox", cmd=("true",), labels={"x": "y"}),
        host_config=HostConfig(memory=1 << 26),
        host="h1",
    )
    store.add_container(container)
    image = Image(
        id="sha256:" + "c" * 64,
        tenant=tenant.id,
        layers=("sha256:" + "d" * 64,),
        size=1,
        created=2,
        repo_tags=("busybox:latest",),
    )
    store.put_image(image)
    store.add_volume(Volume(name="data", tenant=tenant.id, created=3, host="h1"))
    event = Event(
        seq=41,
        tenant=tenant.id,
        time=4,
        type="container",
        action="die",
        actor_id=container.id,
        attributes={"exitCode": "3", "name": "web"},
    )
    store.append_events([event])
    store.close()

    reopened = SqlStore.sqlite(path, uid_range_start=UID_START)
    try:
        assert reopened.ensure_tenant("acme") == tenant
        assert reopened.get_container(tenant=tenant.id, ref="/web") == container
        assert reopened.image_by_tag(tenant=tenant.id, tag="busybox:latest") == image
        assert reopened.layer_referenced("sha256:" + "d" * 64)
        assert reopened.get_volume(tenant=tenant.id, name="data").created == 3
        assert reopened.list_events(tenant=tenant.id) == [event]
        assert reopened.last_event_seq() == 41
    finally:
        reopened.close()


def test_prefix_lookup_treats_like_wildcards_literally(make_store: StoreFactory) -> None:
    # A ref is matched as a prefix with LIKE; "%" or "_" must not act as wildcards.
    store = make_store()
    store.add_container(
        Container(
            id="ab" + "0" * 62,
            tenant="t",
            name="one",
            created=1,
            image="busybox",
            image_id="",
            config=ContainerConfig(image="busybox"),
            host_config=HostConfig(),
            host="h",
        )
    )
    for ref in ("%", "a%", "_b", "a_"):
        with pytest.raises(NotFound):
            store.get_container(tenant="t", ref=ref)
    assert store.find_images(tenant="t", id_prefix="%") == []


def test_cached_groups_and_quotas_follow_every_write(tmp_path: Path) -> None:
    """The store keeps security groups and quota settings it has read: each read after a
    write of this store sees the write, and a caller changing a record it got changes
    nothing stored."""
    store = SqlStore.sqlite(tmp_path / "s.db", uid_range_start=UID_START)
    try:
        tenant = store.ensure_tenant("acme").id
        web = SecurityGroup(id="a1" * 32, tenant=tenant, name="web", created=1, labels={"k": "v"})
        store.add_security_group(web)
        assert store.get_security_group(tenant=tenant, ref="web") == web
        with pytest.raises(NotFound):
            store.get_security_group(tenant=tenant, ref="db")
        db = SecurityGroup(id="b1" * 32, tenant=tenant, name="db", created=1)
        store.add_security_group(db)
        assert store.get_security_group(tenant=tenant, ref="db") == db
        store.get_security_group(tenant=tenant, ref="web").labels["k"] = "changed"
        assert store.get_security_group(tenant=tenant, ref=web.id).labels == {"k": "v"}
        with pytest.raises(AlreadyExists):
            store.put_security_group(replace(web, name="db"))
        assert store.get_security_group(tenant=tenant, ref="db") == db
        renamed = replace(web, name="front", description="renamed")
        store.put_security_group(renamed)
        assert store.get_security_group(tenant=tenant, ref="a1") == renamed
        with pytest.raises(NotFound):
            store.get_security_group(tenant=tenant, ref="web")
        store.delete_security_group(tenant=tenant, group_id=db.id)
        with pytest.raises(NotFound):
            store.get_security_group(tenant=tenant, ref=db.id)

        assert store.get_tenant_quota(tenant) == TenantQuota(tenant=tenant)
        store.put_tenant_quota(TenantQuota(tenant=tenant, plan="free", overrides={"volumes": 3}))
        got = store.get_tenant_quota(tenant)
        assert got == TenantQuota(tenant=tenant, plan="free", overrides={"volumes": 3})
        got.overrides["volumes"] = 99
        assert store.get_tenant_quota(tenant).overrides == {"volumes": 3}

        store.delete_tenant(tenant)
        with pytest.raises(NotFound):
            store.get_security_group(tenant=tenant, ref=renamed.id)
        with pytest.raises(NotFound):
            store.get_tenant_quota(tenant)
    finally:
        store.close()


def test_reservations_and_totals_count_what_they_should(tmp_path: Path) -> None:
    """Placement's reservations: memory and count of running, paused and restarting
    containers per host, every tenant's; a tenant's totals count all its records."""
    store = SqlStore.sqlite(tmp_path / "s.db", uid_range_start=UID_START)
    try:
        states = {
            "a": ("h1", Status.RUNNING, "t1"),
            "b": ("h1", Status.PAUSED, "t2"),
            "c": ("h1", Status.RESTARTING, "t1"),
            "d": ("h2", Status.RUNNING, "t1"),
            "e": ("h2", Status.EXITED, "t1"),
            "f": ("h3", Status.CREATED, "t2"),
            "g": ("h3", Status.DEAD, "t1"),
        }
        for number, (name, (host, status, tenant)) in enumerate(states.items(), start=1):
            store.add_container(
                Container(
                    id=name * 64,
                    tenant=tenant,
                    name=name,
                    created=1,
                    image="busybox",
                    image_id="sha256:" + "b" * 64,
                    config=ContainerConfig(image="busybox"),
                    host_config=HostConfig(),
                    host=host,
                    memory=number << 20,
                    state=ContainerState(status=status),
                )
            )
        mib = 1 << 20
        assert store.reservations() == {"h1": (6 * mib, 3), "h2": (4 * mib, 1)}
        assert store.container_totals(tenant="t1") == (20 * mib, 5)
        assert store.container_totals(tenant="t2") == (8 * mib, 2)
        assert store.container_totals(tenant="t3") == (0, 0)
    finally:
        store.close()
