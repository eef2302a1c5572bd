"""The disk watch (writable layers, volumes, the cap) on real directories, with a stand-in
for the container manager; tenant cgroups read from a cgroup tree laid out in a tmp dir."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.agent.records import AgentRecord
from dockyard.agent.usage import DiskWatch, read_tenant_cgroup
from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import CreateRequest, MountSpec, ProcessSpec, Resources
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.paths import BundlePaths
from dockyard.volumes.local import LocalVolumes

MIB = 1 << 20
TENANT = "a" * 32


class Manager:
    """What DiskWatch uses of ContainerManager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_id: dict[str, AgentRecord] = {}
        self.writable_used: dict[str, int] = {}
        self.killed: list[tuple[str, int]] = []

    def add(self, cid: str, *, status: str, cap: int, volume: str = "") -> AgentRecord:
        mounts = (MountSpec(type="volume", target="/data", source=volume),) if volume else ()
        request = CreateRequest(
            id=cid,
            tenant=TENANT,
            name=cid,
            uid_base=0,
            uid_size=65536,
            layers=("sha256:" + "0" * 64,),
            process=ProcessSpec(args=("true",)),
            hostname=cid,
            resources=Resources(writable=cap),
            mounts=mounts,
        )
        record = AgentRecord(request=request, status=status)
        self.by_id[cid] = record
        self.paths(cid).upper.mkdir(parents=True)
        return record

    def records(self) -> list[AgentRecord]:
        return list(self.by_id.values())

    def paths(self, cid: str) -> BundlePaths:
        return BundlePaths(self.root / cid, self.root / cid, self.root / "exits")

    def tenant_cgroup_path(self, tenant: str) -> str:
        return f"/dyt/{tenant[:16]}"

    async def kill_over_cap(self, cid: str, used: int) -> None:
        self.killed.append((cid, used))
        self.by_id[cid] = replace(self.by_id[cid], status="exited", finished_at=1)


def write(path: Path, size: int) -> None:
    path.write_bytes(os.urandom(size))


def watch_for(tmp_path: Path) -> tuple[Manager, LocalVolumes, DiskWatch]:
    manager = Manager(tmp_path / "containers")
    volumes = LocalVolumes(tmp_path / "volumes")
    watch = DiskWatch(manager=manager, volumes=volumes, interval=0)  # type: ignore[arg-type]
    return manager, volumes, watch


def test_a_running_container_past_its_cap_is_killed(tmp_path: Path) -> None:
    manager, _, watch = watch_for(tmp_path)
    manager.add("big", status="running", cap=MIB)
    manager.add("small", status="running", cap=MIB)
    write(manager.paths("big").upper / "file", 2 * MIB)
    write(manager.paths("small").upper / "file", MIB // 2)
    asyncio.run(watch.measure())
    assert [cid for cid, _ in manager.killed] == ["big"]
    assert manager.killed[0][1] >= 2 * MIB
    assert manager.writable_used["small"] >= MIB // 2
    assert watch.measured > 0


def test_no_cap_means_no_kill_and_stopped_containers_are_measured_once(tmp_path: Path) -> None:
    manager, _, watch = watch_for(tmp_path)
    manager.add("free", status="running", cap=0)
    manager.add("idle", status="created", cap=MIB)
    write(manager.paths("free").upper / "file", 2 * MIB)
    asyncio.run(watch.measure())
    assert manager.killed == []
    assert manager.writable_used["idle"] == 0
    # Nothing runs in it, so it is not walked again: a change is not seen...
    write(manager.paths("idle").upper / "file", 2 * MIB)
    asyncio.run(watch.measure())
    assert manager.writable_used["idle"] == 0
    # ...until something says it changed (docker cp drops the measurement).
    del manager.writable_used["idle"]
    asyncio.run(watch.measure())
    assert manager.writable_used["idle"] >= 2 * MIB
    assert manager.killed == [], "a stopped container is not killed; its next start is refused"


def test_a_container_that_ran_since_the_last_round_is_measured_again(tmp_path: Path) -> None:
    manager, volumes, watch = watch_for(tmp_path)
    volumes.create(tenant=TENANT, name="data", uid_base=os.getuid(), options={})
    record = manager.add("brief", status="created", cap=0, volume="data")
    asyncio.run(watch.measure())
    usage = asyncio.run(watch.tenant_usage(TENANT))
    assert usage.writable == 0 and usage.volumes == 0
    # It ran between two rounds, wrote to its layer and its volume, and exited.
    write(manager.paths("brief").upper / "file", MIB)
    write(volumes.path(tenant=TENANT, name="data") / "blob", 3 * MIB)
    manager.by_id["brief"] = replace(record, status="exited", finished_at=watch.measured + 1)
    asyncio.run(watch.measure())
    usage = asyncio.run(watch.tenant_usage(TENANT))
    assert usage.writable >= MIB and usage.volumes >= 3 * MIB
    assert usage.containers_running == 0


def test_volumes_measured_on_demand_and_forgotten_when_removed(tmp_path: Path) -> None:
    _, volumes, watch = watch_for(tmp_path)
    volumes.create(tenant=TENANT, name="v1", uid_base=os.getuid(), options={})
    write(volumes.path(tenant=TENANT, name="v1") / "blob", MIB)
    other = "b" * 32
    volumes.create(tenant=other, name="v1", uid_base=os.getuid(), options={})
    write(volumes.path(tenant=other, name="v1") / "blob", 5 * MIB)
    assert MIB <= asyncio.run(watch.tenant_usage(TENANT)).volumes < 2 * MIB
    volumes.remove(tenant=TENANT, name="v1")
    asyncio.run(watch.measure())
    assert asyncio.run(watch.tenant_usage(TENANT)).volumes == 0
    assert asyncio.run(watch.tenant_usage(other)).volumes >= 5 * MIB


def test_tenant_ids_that_are_not_names_are_refused(tmp_path: Path) -> None:
    _, _, watch = watch_for(tmp_path)
    for bad in ("..", "a/b", ""):
        with pytest.raises(InvalidArgument, match="invalid tenant id"):
            asyncio.run(watch.tenant_usage(bad))


def test_tenant_cgroup_v1_and_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "memory/dyt/t").mkdir(parents=True)
    (v1 / "cpuacct/dyt/t").mkdir(parents=True)
    (v1 / "memory/dyt/t/memory.usage_in_bytes").write_text("4096\n")
    (v1 / "cpuacct/dyt/t/cpuacct.usage").write_text("123456789\n")
    assert read_tenant_cgroup(Cgroup("/dyt/t", root=v1)) == (4096, 123456789)
    v2 = tmp_path / "v2"
    (v2 / "dyt/t").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("memory cpu\n")
    (v2 / "dyt/t/memory.current").write_text("8192\n")
    (v2 / "dyt/t/cpu.stat").write_text("usage_usec 5\nuser_usec 3\nsystem_usec 2\n")
    assert read_tenant_cgroup(Cgroup("/dyt/t", root=v2)) == (8192, 5000)
    assert read_tenant_cgroup(Cgroup("/dyt/none", root=v1)) == (0, 0)
