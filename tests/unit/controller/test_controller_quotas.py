"""QuotaService on a real SQLite store and content store (no agents connected)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.controller.hosts import HostRegistry
from dockyard.controller.plans import builtin_plans
from dockyard.controller.quotas import QuotaService
from dockyard.core.errors import InvalidArgument, QuotaExceeded
from dockyard.core.models import Container, ContainerConfig, HostConfig, Image, Volume
from dockyard.core.quotas import UNLIMITED, TenantQuota, Usage
from dockyard.images.content import ContentStore
from dockyard.store import SqlStore

MIB = 1 << 20
GIB = 1 << 30


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore.sqlite(tmp_path / "db" / "dockyard.db", uid_range_start=100_000)
    yield opened
    opened.close()


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "blobs")


@pytest.fixture
def quotas(store: SqlStore, content: ContentStore) -> QuotaService:
    return QuotaService(
        store=store, plans=builtin_plans(), content=content, hosts=HostRegistry(store)
    )


def _container(tenant: str, index: int, memory: int) -> Container:
    return Container(
        id=f"{index:064x}",
        tenant=tenant,
        name=f"c{index}",
        created=1,
        image="busybox",
        image_id="sha256:" + "b" * 64,
        config=ContainerConfig(image="busybox"),
        host_config=HostConfig(),
        host="h",
        memory=memory,
    )


def _layer(content: ContentStore, size: int, seed: bytes) -> str:
    return content.ingest(io.BytesIO(seed * (size // len(seed)))).digest


def test_an_unknown_default_plan_is_refused(store: SqlStore, content: ContentStore) -> None:
    with pytest.raises(InvalidArgument, match="default plan 'gold'"):
        QuotaService(
            store=store,
            plans=builtin_plans(),
            default_plan="gold",
            content=content,
            hosts=HostRegistry(store),
        )


def test_plans_limits_and_overrides(quotas: QuotaService, store: SqlStore) -> None:
    tenant = store.ensure_tenant("acme").id
    plan, limits = quotas.limits(tenant)
    assert plan.name == "free" and limits.memory == 2 * GIB  # never chosen: the default
    quotas.update(tenant, plan="standard", limits={"containers": 3})
    plan, limits = quotas.limits(tenant)
    assert (plan.name, limits.containers, limits.memory) == ("standard", 3, 16 * GIB)
    quotas.update(tenant, limits={"memory": UNLIMITED})
    assert quotas.settings(tenant).overrides == {"containers": 3, "memory": UNLIMITED}
    quotas.update(tenant, reset=["containers"])
    assert quotas.settings(tenant).overrides == {"memory": UNLIMITED}
    quotas.update(tenant, reset=["all"])
    assert quotas.settings(tenant) == TenantQuota(tenant=tenant, plan="standard")
    with pytest.raises(InvalidArgument, match="unknown plan 'gold'"):
        quotas.update(tenant, plan="gold")
    with pytest.raises(InvalidArgument, match="unknown quota 'cpus'"):
        quotas.update(tenant, reset=["cpus"])
    assert quotas.settings(tenant).plan == "standard"


def test_a_plan_no_longer_offered_falls_back_to_the_default(
    quotas: QuotaService, store: SqlStore
) -> None:
    tenant = store.ensure_tenant("acme").id
    store.put_tenant_quota(TenantQuota(tenant=tenant, plan="withdrawn"))
    assert quotas.limits(tenant)[0].name == "free"


def test_container_checks_count_every_record(quotas: QuotaService, store: SqlStore) -> None:
    tenant = store.ensure_tenant("acme").id
    other = store.ensure_tenant("globex").id
    quotas.update(tenant, limits={"memory": GIB, "containers": 3})
    store.add_container(_container(tenant, 1, 512 * MIB))
    store.add_container(_container(tenant, 2, 256 * MIB))
    store.add_container(_container(other, 3, 16 * GIB))  # another tenant's count nothing
    quotas.check_container(tenant, memory=256 * MIB)
    with pytest.raises(QuotaExceeded) as info:
        quotas.check_container(tenant, memory=512 * MIB)
    assert info.value.message == (
        "quota exceeded: memory: 768 MiB used of 1 GiB, 512 MiB more asked (plan free)"
    )
    store.add_container(_container(tenant, 4, 64 * MIB))
    with pytest.raises(QuotaExceeded, match="containers: 3 used of 3, 1 more asked"):
        quotas.check_container(tenant, memory=64 * MIB)
    quotas.check_memory_growth(tenant, more=-512 * MIB)  # shrinking is always allowed
    quotas.check_memory_growth(tenant, more=192 * MIB)
    with pytest.raises(QuotaExceeded, match="memory: 832 MiB used of 1 GiB, 256 MiB more"):
        quotas.check_memory_growth(tenant, more=256 * MIB)


def test_volume_checks(quotas: QuotaService, store: SqlStore) -> None:
    tenant = store.ensure_tenant("acme").id
    quotas.update(tenant, limits={"volumes": 1})
    asyncio.run(quotas.check_volume(tenant))
    store.add_volume(Volume(name="data", tenant=tenant, created=1, host="h"))
    with pytest.raises(QuotaExceeded, match="volumes: 1 used of 1, 1 more asked"):
        asyncio.run(quotas.check_volume(tenant))


def test_image_storage_counts_each_distinct_layer_once(
    quotas: QuotaService, store: SqlStore, content: ContentStore
) -> None:
    tenant = store.ensure_tenant("acme").id
    other = store.ensure_tenant("globex").id
    base, app = _layer(content, MIB, b"base"), _layer(content, 2 * MIB, b"app!")
    for index, layers in enumerate([(base,), (base, app)]):
        store.put_image(
            Image(id=f"sha256:{index:064x}", tenant=tenant, layers=layers, size=0, created=1)
        )
    store.put_image(Image(id="sha256:" + "f" * 64, tenant=other, layers=(base,), size=0, created=1))
    assert quotas.image_storage(tenant) == 3 * MIB
    assert quotas.image_storage(other) == MIB  # a shared layer counts for each holder
    quotas.update(tenant, limits={"image_storage": 4 * MIB})
    quotas.check_image_layers(tenant, {base: MIB, app: 2 * MIB})  # nothing new
    quotas.check_image_layers(tenant, {base: MIB, "sha256:" + "1" * 64: MIB})
    with pytest.raises(QuotaExceeded) as info:
        quotas.check_image_layers(tenant, {"sha256:" + "2" * 64: MIB + 1})
    assert info.value.message == (
        "quota exceeded: image_storage: 3 MiB used of 4 MiB, 1 MiB more asked (plan free)"
    )


def test_public_ips_are_counted_by_the_registered_service(
    quotas: QuotaService, store: SqlStore
) -> None:
    tenant = store.ensure_tenant("acme").id
    quotas.check_public_ips(tenant, 2)  # free: 2, none held
    held = {tenant: 2}
    quotas.count_public_ips = lambda t: held.get(t, 0)
    with pytest.raises(QuotaExceeded, match="public_ips: 2 used of 2, 1 more asked"):
        quotas.check_public_ips(tenant)


def test_dry_run_and_report(quotas: QuotaService, store: SqlStore) -> None:
    tenant = store.ensure_tenant("acme").id
    store.add_container(_container(tenant, 1, GIB))
    report, refused = asyncio.run(quotas.dry_run(tenant, Usage(memory=GIB, containers=1)))
    assert refused == []
    assert report.used == Usage(memory=GIB, containers=1)
    assert report.plan.name == "free" and report.hosts == []
    _, refused = asyncio.run(quotas.dry_run(tenant, Usage(memory=GIB + 1, containers=1)))
    assert [r.quota for r in refused] == ["memory"]
    assert store.container_totals(tenant=tenant) == (GIB, 1)  # a dry run makes nothing


def test_one_lock_per_tenant(quotas: QuotaService) -> None:
    assert quotas.lock("a") is quotas.lock("a")
    assert quotas.lock("a") is not quotas.lock("b")
