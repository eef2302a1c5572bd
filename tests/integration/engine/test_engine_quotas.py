"""Sizes, plans and quotas through the real clients: docker-py, the docker CLI and the
dockyard CLI against a real cloud; cgroups read from the host."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.client.native import NativeClient
from dockyard.testing.cloud import DockerCli, TestCloud

MIB = 1 << 20
GIB = 1 << 30
DOCKYARD = Path(sys.executable).parent / "dockyard"


def dockyard(cloud: TestCloud, *args: str, config: Path | None = None, ok: bool = True) -> str:
    """Run the dockyard CLI (admin commands on the cloud's internal socket, the others
    with the token of ``config``); its stdout, or stderr when ``ok`` is False."""
    layout = cloud.layout
    flags = ["--state-dir", str(layout.state_dir), "--run-dir", str(layout.run_dir)]
    flags += ["--instance", layout.instance]
    env = cloud.env()
    if config is not None:
        env["DOCKER_CONFIG"] = str(config)
    command = [str(DOCKYARD), *args, *(flags if args[0] == "admin" else [])]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert (result.returncode == 0) == ok, (result.returncode, result.stdout, result.stderr)
    return result.stdout if ok else result.stderr


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Tenant:
    """A tenant of its own, made by the operator, with a docker-py client and a login."""

    def __init__(self, cloud: TestCloud, tmp: Path, *, plan: str = "free") -> None:
        self.cloud = cloud
        self.name = f"q{uuid.uuid4().hex[:8]}"
        made = cloud.admin().create_tenant(self.name, user="admin", seed_busybox=True, plan=plan)
        assert made["tenant"]["plan"] == plan
        self.token = made["token"]
        self.client = cloud.client(self.token)
        self.native = NativeClient(cloud.docker_host, self.token)
        self.config = tmp / self.name
        self.config.mkdir()
        (self.config / "config.json").write_text(
            json.dumps({"HttpHeaders": {"X-Dockyard-Token": self.token}})
        )

    def limit(self, **limits: int | str) -> dict[str, Any]:
        return self.cloud.admin().set_quota(self.name, limits=dict(limits))

    def used(self, quota: str) -> int:
        report = self.native.usage()
        return next(q["used"] for q in report["quotas"] if q["quota"] == quota)

    def run(self, **kwargs: Any) -> Any:
        return self.client.containers.run("busybox", ["sleep", "300"], detach=True, **kwargs)

    def close(self) -> None:
        for container in self.client.containers.list(all=True):
            container.remove(force=True, v=True)
        for volume in self.client.volumes.list():
            volume.remove(force=True)
        self.client.close()


@pytest.fixture
def tenant(cloud: TestCloud, tmp_path: Path) -> Iterator[Tenant]:
    made = Tenant(cloud, tmp_path)
    yield made
    made.close()


def refused(action: Callable[[], object]) -> str:
    """``action`` must fail with 403; the message."""
    with pytest.raises(docker.errors.APIError) as info:
        action()
    assert info.value.status_code == 403, info.value
    return str(info.value.explanation)


def memory_cgroup(cloud: TestCloud, container_id: str, controller: str = "memory") -> Path:
    (found,) = Path(f"/sys/fs/cgroup/{controller}{cloud.layout.cgroup_root}").glob(
        f"*/{container_id}"
    )
    return found


# sizes -----------------------------------------------------------------------------------


def test_memory_is_rounded_up_to_the_next_size(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="100m")
    cleanup.append(container.id)
    attrs = client.api.inspect_container(container.id)
    assert attrs["HostConfig"]["Memory"] == 128 * MIB
    assert attrs["HostConfig"]["CpuShares"] == 128
    assert attrs["HostConfig"]["StorageOpt"] == {"size": "2G"}
    assert attrs["Config"]["Labels"]["dockyard.size"] == "nano"
    cgroup = memory_cgroup(cloud, container.id)
    assert int((cgroup / "memory.limit_in_bytes").read_text()) == 128 * MIB
    cpu = memory_cgroup(cloud, container.id, "cpu")
    assert int((cpu / "cpu.shares").read_text()) == 128


def test_a_container_without_a_size_is_micro(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True)
    cleanup.append(container.id)
    attrs = client.api.inspect_container(container.id)
    assert attrs["Config"]["Labels"]["dockyard.size"] == "micro"
    assert attrs["HostConfig"]["Memory"] == 256 * MIB
    cgroup = memory_cgroup(cloud, container.id)
    assert int((cgroup / "memory.limit_in_bytes").read_text()) == 256 * MIB


def test_the_docker_cli_chooses_sizes_by_memory_and_label(cli: DockerCli) -> None:
    name = f"sz{uuid.uuid4().hex[:8]}"
    cli.run("create", "--name", name, "-m", "100m", "busybox", "true")
    labelled = f"{name}l"
    cli.run("create", "--name", labelled, "--label", "dockyard.size=small", "busybox", "true")
    try:
        template = '{{.HostConfig.Memory}} {{index .Config.Labels "dockyard.size"}}'
        assert cli.run("inspect", "-f", template, name).stdout.split() == [str(128 * MIB), "nano"]
        assert cli.run("inspect", "-f", template, labelled).stdout.split() == [str(GIB), "small"]
        listed = cli.run(
            "ps", "-a", "--filter", "label=dockyard.size=small", "--format", "{{.Names}}"
        )
        assert listed.stdout.split() == [labelled]
    finally:
        cli.run("rm", "-f", name, labelled)


def test_sizes_beyond_the_largest_or_unknown_are_refused(
    client: docker.DockerClient, cli: DockerCli
) -> None:
    before = len(client.containers.list(all=True))
    with pytest.raises(docker.errors.APIError) as big:
        client.containers.create("busybox", ["true"], mem_limit="17g")
    assert big.value.status_code == 400
    assert "exceeds the largest container size, 2xlarge (16 GiB)" in str(big.value.explanation)
    with pytest.raises(docker.errors.APIError) as unknown:
        client.containers.create("busybox", ["true"], labels={"dockyard.size": "huge"})
    assert unknown.value.status_code == 400
    assert "unknown container size 'huge'" in str(unknown.value.explanation)
    result = cli.run(
        "run", "--rm", "-m", "2g", "--label", "dockyard.size=small", "busybox", "true", check=False
    )
    assert result.returncode != 0 and "does not fit size small (1 GiB)" in result.stderr
    assert len(client.containers.list(all=True)) == before


def test_update_moves_a_container_to_another_size(
    client: docker.DockerClient, cleanup: list[str], cloud: TestCloud
) -> None:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="64m")
    cleanup.append(container.id)
    container.update(mem_limit="300m")
    attrs = client.api.inspect_container(container.id)
    assert attrs["HostConfig"]["Memory"] == 512 * MIB
    assert attrs["Config"]["Labels"]["dockyard.size"] == "tiny"
    cgroup = memory_cgroup(cloud, container.id)
    assert int((cgroup / "memory.limit_in_bytes").read_text()) == 512 * MIB


# quotas ----------------------------------------------------------------------------------


def test_memory_quota_refuses_with_use_and_limit_and_leaves_nothing(tenant: Tenant) -> None:
    tenant.limit(memory="512m")
    tenant.run()  # micro: 256 MiB
    tenant.run(mem_limit="200m")  # micro again
    message = refused(lambda: tenant.run(volumes={"leftover": {"bind": "/data"}}))
    assert message == (
        "quota exceeded: memory: 512 MiB used of 512 MiB, 256 MiB more asked (plan free)"
    )
    assert len(tenant.client.containers.list(all=True)) == 2
    assert tenant.client.volumes.list() == []
    assert tenant.used("memory") == 512 * MIB and tenant.used("containers") == 2
    # Not even the smallest size (pico, 64 MiB) fits now.
    assert "64 MiB more asked" in refused(lambda: tenant.run(mem_limit="10m"))


def test_stopped_containers_count_and_removing_one_frees_its_memory(tenant: Tenant) -> None:
    tenant.limit(memory="256m")
    first = tenant.run()
    first.stop(timeout=0)
    assert "memory: 256 MiB used of 256 MiB" in refused(tenant.run)
    first.remove()
    tenant.run()


def test_container_count_quota(tenant: Tenant) -> None:
    tenant.limit(containers=2)
    tenant.client.containers.create("busybox", ["true"])
    tenant.client.containers.create("busybox", ["true"])
    message = refused(lambda: tenant.client.containers.create("busybox", ["true"], name="third"))
    assert message == "quota exceeded: containers: 2 used of 2, 1 more asked (plan free)"
    with pytest.raises(docker.errors.NotFound):
        tenant.client.containers.get("third")


def test_the_operator_raising_a_quota_lets_the_next_create_pass(
    tenant: Tenant, cloud: TestCloud
) -> None:
    tenant.limit(containers=1)
    tenant.run()
    assert "containers: 1 used of 1" in refused(tenant.run)
    shown = dockyard(cloud, "admin", "quota", "set", tenant.name, "--containers", "3")
    assert "containers" in shown and "3" in shown
    tenant.run()
    assert tenant.used("containers") == 2
    # Back to the plan's limit (free: 10 containers).
    dockyard(cloud, "admin", "quota", "set", tenant.name, "--reset", "containers")
    limits = {q["quota"]: q["limit"] for q in tenant.native.usage()["quotas"]}
    assert limits["containers"] == 10


def test_volume_count_quota_with_anonymous_volumes_too(tenant: Tenant) -> None:
    tenant.limit(volumes=1)
    tenant.client.volumes.create("one")
    assert refused(lambda: tenant.client.volumes.create("two")) == (
        "quota exceeded: volumes: 1 used of 1, 1 more asked (plan free)"
    )
    # A container whose anonymous volume does not fit is not made either.
    message = refused(
        lambda: tenant.client.containers.create("busybox", ["true"], volumes=["/data"], name="anon")
    )
    assert "volumes: 1 used of 1" in message
    with pytest.raises(docker.errors.NotFound):
        tenant.client.containers.get("anon")
    assert [v.name for v in tenant.client.volumes.list()] == ["one"]
    tenant.client.volumes.get("one").remove()
    tenant.client.volumes.create("two")


def test_volume_storage_counts_what_the_agent_measured(tenant: Tenant) -> None:
    tenant.limit(volume_storage="1m")
    tenant.client.containers.run(
        "busybox",
        ["sh", "-c", "head -c 2097152 /dev/urandom > /data/blob"],
        volumes={"filled": {"bind": "/data"}},
        remove=True,
    )
    wait_for(lambda: tenant.used("volume_storage") >= 2 * MIB, "the volume's measurement")
    message = refused(lambda: tenant.client.volumes.create("more"))
    assert message.startswith("quota exceeded: volume_storage: 2 MiB used of 1 MiB")


def test_creates_racing_for_the_last_slot(tenant: Tenant) -> None:
    tenant.limit(containers=3)
    tenant.client.containers.create("busybox", ["true"])
    tenant.client.containers.create("busybox", ["true"])
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def attempt(index: int) -> None:
        client = tenant.cloud.client(tenant.token)
        try:
            barrier.wait()
            client.containers.create("busybox", ["true"], name=f"racer{index}")
            outcomes.append("made")
        except docker.errors.APIError as exc:
            outcomes.append(f"{exc.status_code} {exc.explanation}")
        finally:
            client.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes.count("made") == 1, outcomes
    assert all(
        o.startswith("403 quota exceeded: containers: 3 used of 3") for o in outcomes if o != "made"
    )
    assert len(tenant.client.containers.list(all=True)) == 3


def test_image_storage_quota_at_import(tenant: Tenant, cloud: TestCloud) -> None:
    tenant.limit(image_storage="1m")  # busybox, seeded by the operator, holds about 1 MiB
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = uuid.uuid4().bytes * 65536  # 1 MiB, unlike any other layer
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blobs = cloud.layout.blobs_dir / "sha256"
    before = set(blobs.iterdir())
    with pytest.raises(docker.errors.APIError) as info_:
        tenant.client.api.import_image_from_data(layer.getvalue(), repository="big", tag="1")
    assert info_.value.status_code == 403
    assert "quota exceeded: image_storage:" in str(info_.value.explanation)
    assert set(blobs.iterdir()) == before, "the refused layer's blob is gone again"
    assert [t for i in tenant.client.images.list() for t in i.tags] == ["busybox:latest"]


def test_dry_run_answers_whether_it_would_fit(tenant: Tenant) -> None:
    tenant.limit(memory="1g", volumes=0)
    fits = tenant.native.check_usage(containers=[{"size": "small"}])
    assert fits["fits"] and fits["refusals"] == [] and fits["containers"][0]["memory"] == GIB
    too_much = tenant.native.check_usage(
        containers=[{"size": "micro"}] * 2 + [{"memory": 700 * MIB}]
    )
    assert not too_much["fits"]
    assert too_much["message"] == (
        "quota exceeded: memory: 0 B used of 1 GiB, 1.5 GiB more asked (plan free)"
    )
    (refusal,) = too_much["refusals"]
    assert (refusal["quota"], refusal["used"], refusal["asked"], refusal["limit"]) == (
        "memory",
        0,
        (256 + 256 + 1024) * MIB,
        GIB,
    )
    assert not tenant.native.check_usage(volumes=1)["fits"]
    assert tenant.client.containers.list(all=True) == [], "a dry run makes nothing"
    out = dockyard(tenant.cloud, "usage", "check", "--size", "small", config=tenant.config)
    assert out.strip() == "fits"
    err = dockyard(
        tenant.cloud,
        "usage",
        "check",
        "--size",
        "micro",
        "--count",
        "5",
        config=tenant.config,
        ok=False,
    )
    assert "memory: 0 B used of 1 GiB, 1.25 GiB more asked" in err


def test_usage_shows_use_against_limits_and_each_hosts_accounting(tenant: Tenant) -> None:
    tenant.limit(containers=5)
    container = tenant.client.containers.run(
        "busybox", ["sh", "-c", "head -c 3000000 /dev/zero > /fill; sleep 300"], detach=True
    )
    report = tenant.native.usage()
    assert report["plan"] == "free" and report["overrides"] == {"containers": 5}
    quotas = {q["quota"]: (q["used"], q["limit"]) for q in report["quotas"]}
    assert quotas["containers"] == (1, 5)
    assert quotas["memory"] == (256 * MIB, 2 * GIB)
    assert quotas["public_ips"] == (0, 2)
    assert 0 < quotas["image_storage"][0] <= 5 * MIB  # busybox's layer
    (host,) = report["hosts"]
    assert host["containers_running"] == 1 and host["error"] == ""
    assert host["memory"] > 0 and host["cpu"] > 0
    wait_for(
        lambda: tenant.native.usage()["hosts"][0]["writable"] >= 3_000_000,
        "the writable layer's measurement",
    )
    table = dockyard(tenant.cloud, "usage", config=tenant.config)
    assert f"tenant {tenant.name}, plan free" in table
    assert "overridden: containers 5" in table
    lines = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}
    assert lines["containers"][:3] == ["1", "5", "20%"]
    assert lines["memory"][:4] == ["256", "MiB", "2", "GiB"]
    info = dockyard(tenant.cloud, "info", config=tenant.config)
    assert f"tenant:   {tenant.name}" in info and "plan:     free" in info
    assert "micro" in info and "default" in info
    container.remove(force=True)


def test_the_operator_sees_plans_and_moves_tenants(tenant: Tenant, cloud: TestCloud) -> None:
    plans = dockyard(cloud, "admin", "plan", "list")
    assert "free (default)" in plans and "unlimited" in plans
    listed = dockyard(cloud, "admin", "tenant", "list")
    assert any(line.split()[0] == tenant.name and "free" in line for line in listed.splitlines())
    dockyard(cloud, "admin", "quota", "set", tenant.name, "--plan", "standard")
    shown = dockyard(cloud, "admin", "quota", "show", tenant.name, "--json")
    assert json.loads(shown)["plan"] == "standard"
    error = dockyard(cloud, "admin", "quota", "set", tenant.name, "--plan", "gold", ok=False)
    assert "unknown plan 'gold'" in error


def test_the_writable_layer_cap_stops_a_container_past_it(tenant: Tenant) -> None:
    container = tenant.client.containers.run(
        "busybox",
        ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=1100 && sync && sleep 300"],
        detach=True,
        mem_limit="64m",  # pico: 1 GiB of writable layer
    )

    def stopped() -> bool:
        container.reload()
        return container.status == "exited"

    wait_for(stopped, "the agent to stop the container", timeout=120)
    state = container.attrs["State"]
    assert "the writable layer held" in state["Error"] and "1 GiB its size allows" in state["Error"]
    assert state["ExitCode"] == 137
    message = refused(container.start)
    assert "more than the 1 GiB its size allows" in message
    container.remove()
