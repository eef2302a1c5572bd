"""Container lifecycle through docker-py against a real Dockyard (crun, conmon, kernel)."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
from docker.types import Mount

from dockyard.testing.cloud import TestCloud

MIB = 1024 * 1024


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_run_prints_output_and_exit_code(client: docker.DockerClient) -> None:
    out = client.containers.run(
        "busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True, stderr=True
    )
    assert out == b"out\nerr\n"


def test_nonzero_exit_is_reported(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    assert info.value.exit_status == 3


def test_create_overrides(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.create(
        "busybox",
        ["sh", "-c", "id -u; id -g; pwd; hostname; echo $FOO; cat /etc/hostname"],
        name="overrides",
        environment={"FOO": "bar"},
        working_dir="/srv/app",
        user="1000:1000",
        hostname="myhost",
        labels={"team": "core"},
    )
    cleanup.append(container.id)
    container.start()
    assert container.wait()["StatusCode"] == 0
    lines = container.logs().decode().split()
    assert lines == ["1000", "1000", "/srv/app", "myhost", "bar", "myhost"]
    container.reload()
    assert container.name == "overrides"
    assert container.labels == {"team": "core", "dockyard.size": "micro"}
    assert "FOO=bar" in container.attrs["Config"]["Env"]
    assert any(e.startswith("PATH=") for e in container.attrs["Config"]["Env"])


def test_entrypoint_override_drops_image_cmd(client: docker.DockerClient) -> None:
    out = client.containers.run("busybox", entrypoint=["echo", "from-entrypoint"], remove=True)
    assert out == b"from-entrypoint\n"


def test_inspect_shape(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run("busybox", ["sleep", "30"], detach=True)
    cleanup.append(container.id)
    container.reload()
    attrs = container.attrs
    state = attrs["State"]
    assert state["Status"] == "running" and state["Running"] is True
    assert state["Pid"] > 0 and state["ExitCode"] == 0 and state["OOMKilled"] is False
    assert state["StartedAt"].endswith("Z") and state["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert attrs["Path"] == "sleep" and attrs["Args"] == ["30"]
    assert attrs["Config"]["Image"] == "busybox"
    assert attrs["Image"].startswith("sha256:")
    assert attrs["HostConfig"]["NetworkMode"] in ("default", "bridge")
    net = attrs["NetworkSettings"]
    assert net["IPAddress"] and net["Networks"]["default"]["IPAddress"] == net["IPAddress"]
    assert attrs["Name"] == f"/{container.name}"
    container.kill()
    assert container.wait()["StatusCode"] == 137
    container.reload()
    assert container.attrs["State"]["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert container.attrs["State"]["ExitCode"] == 137


def test_stop_kill_restart_pause(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"],
        detach=True,
    )
    cleanup.append(container.id)
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.reload()
    assert container.status == "running"
    container.stop(timeout=5)
    container.reload()
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 7
    first_pid = None
    container.start()
    container.reload()
    first_pid = container.attrs["State"]["Pid"]
    container.restart(timeout=5)
    container.reload()
    assert container.status == "running"
    assert container.attrs["State"]["Pid"] != first_pid
    container.kill(signal="SIGKILL")
    assert container.wait()["StatusCode"] == 137


def test_stop_twice_is_not_modified(api: docker.APIClient, cleanup: list[str]) -> None:
    cid = api.create_container("busybox", ["true"])["Id"]
    cleanup.append(cid)
    api.start(cid)
    api.wait(cid)
    response = api._post(api._url("/containers/{0}/stop", cid))
    assert response.status_code == 304
    response = api._post(api._url("/containers/{0}/start", cid))
    assert response.status_code == 204
    api.wait(cid)


def test_start_running_container_is_304(api: docker.APIClient, cleanup: list[str]) -> None:
    cid = api.create_container("busybox", ["sleep", "30"])["Id"]
    cleanup.append(cid)
    api.start(cid)
    response = api._post(api._url("/containers/{0}/start", cid))
    assert response.status_code == 304


def test_wait_conditions(api: docker.APIClient, cleanup: list[str]) -> None:
    cid = api.create_container("busybox", ["sh", "-c", "sleep 0.5; exit 5"])["Id"]
    cleanup.append(cid)
    assert api.wait(cid, condition="not-running")["StatusCode"] == 0  # created: not running
    api.start(cid)
    assert api.wait(cid, condition="next-exit")["StatusCode"] == 5
    assert api.wait(cid)["StatusCode"] == 5  # already stopped: answers at once
    with pytest.raises(docker.errors.APIError) as info:
        api.wait(cid, condition="sometime")
    assert info.value.status_code == 400


def test_wait_removed_with_autoremove(api: docker.APIClient) -> None:
    cid = api.create_container(
        "busybox",
        ["sh", "-c", "sleep 0.2; exit 4"],
        host_config=api.create_host_config(auto_remove=True),
    )["Id"]
    api.start(cid)
    assert api.wait(cid, condition="removed")["StatusCode"] == 4
    with pytest.raises(docker.errors.NotFound):
        api.inspect_container(cid)


def test_rename_and_name_conflicts(client: docker.DockerClient, cleanup: list[str]) -> None:
    a = client.containers.create("busybox", ["true"], name="rename-a")
    cleanup.append(a.id)
    b = client.containers.create("busybox", ["true"], name="rename-b")
    cleanup.append(b.id)
    with pytest.raises(docker.errors.APIError) as info:
        client.containers.create("busybox", ["true"], name="rename-a")
    assert info.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as info:
        a.rename("rename-b")
    assert info.value.status_code == 409
    a.rename("rename-c")
    assert client.containers.get("rename-c").id == a.id
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("rename-a")


def test_remove_running_needs_force(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["sleep", "30"], detach=True)
    with pytest.raises(docker.errors.APIError) as info:
        container.remove()
    assert info.value.status_code == 409
    container.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)


def test_id_prefix_lookup(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.create("busybox", ["true"])
    cleanup.append(container.id)
    assert client.containers.get(container.id[:10]).id == container.id
    assert client.containers.get(container.id[:12]).name == container.name


def test_list_filters(client: docker.DockerClient, cleanup: list[str]) -> None:
    running = client.containers.run(
        "busybox", ["sleep", "30"], detach=True, labels={"suite": "filters", "role": "runner"}
    )
    cleanup.append(running.id)
    done = client.containers.run(
        "busybox", ["sh", "-c", "exit 2"], detach=True, labels={"suite": "filters"}
    )
    cleanup.append(done.id)
    done.wait()
    ids = {c.id for c in client.containers.list()}
    assert running.id in ids and done.id not in ids
    ids = {c.id for c in client.containers.list(all=True, filters={"label": "suite=filters"})}
    assert ids == {running.id, done.id}
    ids = {
        c.id
        for c in client.containers.list(all=True, filters={"status": "exited", "label": "suite"})
    }
    assert ids == {done.id}
    ids = {c.id for c in client.containers.list(all=True, filters={"exited": "2"})}
    assert done.id in ids and running.id not in ids
    ids = {c.id for c in client.containers.list(filters={"label": "role=runner"})}
    assert ids == {running.id}
    ids = {
        c.id
        for c in client.containers.list(all=True, filters={"ancestor": "busybox", "label": "suite"})
    }
    assert ids == {running.id, done.id}
    ids = {c.id for c in client.containers.list(all=True, filters={"name": running.name})}
    assert ids == {running.id}
    with pytest.raises(docker.errors.APIError) as info:
        client.containers.list(filters={"bogus": "x"})
    assert info.value.status_code == 400


def test_list_filters_by_order_volume_and_expose(api: docker.APIClient, cleanup: list[str]) -> None:
    first = api.create_container("busybox", ["true"], labels={"suite": "order"})["Id"]
    cleanup.append(first)
    middle = api.create_container(
        "busybox",
        ["true"],
        labels={"suite": "order"},
        ports=[8080],
        host_config=api.create_host_config(binds={"order-vol": {"bind": "/data", "mode": "rw"}}),
    )["Id"]
    cleanup.append(middle)
    last = api.create_container("busybox", ["true"], labels={"suite": "order"})["Id"]
    cleanup.append(last)

    def listed(**filters: str) -> list[str]:
        rows = api.containers(all=True, filters={"label": "suite=order", **filters})
        return [row["Id"] for row in rows]

    assert listed() == [last, middle, first]
    assert listed(before=middle) == [first]
    assert listed(since=middle[:12]) == [last]
    assert listed(volume="order-vol") == [middle]
    assert listed(volume="/data") == [middle]
    assert listed(expose="8080") == [middle]
    assert listed(expose="8080/udp") == []
    with pytest.raises(docker.errors.NotFound):
        listed(before="no-such-container")
    api.remove_container(middle, v=True)
    api.remove_volume("order-vol")


def test_list_size_and_limit(api: docker.APIClient, cleanup: list[str]) -> None:
    cid = api.create_container("busybox", ["sh", "-c", "head -c 100000 /dev/zero > /big"])["Id"]
    cleanup.append(cid)
    api.start(cid)
    api.wait(cid)
    rows = [r for r in api.containers(all=True, size=True) if r["Id"] == cid]
    assert rows and rows[0]["SizeRw"] >= 100000
    assert rows[0]["SizeRootFs"] > rows[0]["SizeRw"]
    assert len(api.containers(all=True, limit=1)) == 1


def test_logs_options(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2"],
        detach=True,
    )
    cleanup.append(container.id)
    container.wait()
    assert container.logs(stdout=True, stderr=False) == b"line1\nline2\nline3\nline4\nline5\n"
    assert container.logs(stdout=False, stderr=True) == b"oops\n"
    assert container.logs(tail=2) == b"line5\noops\n"
    stamped = container.logs(timestamps=True).decode().splitlines()
    assert stamped[0].endswith(" line1") and stamped[0][:4].isdigit() and "T" in stamped[0]
    future = int(time.time()) + 3600
    assert container.logs(since=future) == b""
    assert container.logs(until=1) == b""


def test_logs_follow_until_exit(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "echo a; sleep 0.5; echo b"], detach=True
    )
    cleanup.append(container.id)
    chunks = b"".join(container.logs(stream=True, follow=True))
    assert chunks == b"a\nb\n"


def test_top(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run("busybox", ["sleep", "30"], detach=True)
    cleanup.append(container.id)
    top = container.top()
    assert "PID" in top["Titles"]
    commands = [p[-1] for p in top["Processes"]]
    assert commands == ["sleep 30"]


def test_update_limits(client: docker.DockerClient, cleanup: list[str], cloud: TestCloud) -> None:
    container = client.containers.run("busybox", ["sleep", "30"], detach=True, mem_limit="64m")
    cleanup.append(container.id)
    (cgroup,) = Path(f"/sys/fs/cgroup/memory{cloud.layout.cgroup_root}").glob(f"*/{container.id}")

    def limits() -> tuple[int, int]:
        memory = int((cgroup / "memory.limit_in_bytes").read_text())
        return memory, int((cgroup / "memory.memsw.limit_in_bytes").read_text())

    assert limits() == (64 * MIB, 128 * MIB)  # Docker: no --memory-swap is twice the limit
    # Memory is rounded up to the next size (nano, 128 MiB); "no swap" stays no swap.
    container.update(mem_limit="96m", memswap_limit="96m")
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == 128 * MIB
    assert limits() == (128 * MIB, 128 * MIB)
    container.update(mem_limit="200m", memswap_limit="400m")
    assert limits() == (256 * MIB, 400 * MIB)
    container.update(mem_limit="64m")  # Docker: MemorySwap 0 on update keeps the old one
    assert limits() == (64 * MIB, 400 * MIB)


def test_restart_policy_on_failure_with_backoff(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "exit 1"],
        detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
    )
    cleanup.append(container.id)

    def settled() -> bool:
        container.reload()
        return container.attrs["RestartCount"] == 3 and container.status == "exited"

    wait_for(settled, timeout=20)
    assert container.attrs["State"]["ExitCode"] == 1


def test_restart_policy_always_and_stop(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "sleep 0.2"], detach=True, restart_policy={"Name": "always"}
    )
    cleanup.append(container.id)

    def restarted() -> bool:
        container.reload()
        return container.attrs["RestartCount"] >= 2

    wait_for(restarted, timeout=20)
    container.stop(timeout=1)
    container.reload()
    count = container.attrs["RestartCount"]
    time.sleep(1.0)
    container.reload()
    assert container.status == "exited"
    assert container.attrs["RestartCount"] == count


def test_prune(client: docker.DockerClient) -> None:
    keep = client.containers.run("busybox", ["sleep", "30"], detach=True)
    gone = client.containers.run("busybox", ["true"], detach=True, labels={"prune": "yes"})
    gone.wait()
    try:
        result = client.containers.prune(filters={"label": "prune=yes"})
        assert result["ContainersDeleted"] == [gone.id]
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(gone.id)
        assert client.containers.get(keep.id).status == "running"
    finally:
        keep.remove(force=True)


def test_read_only_rootfs_and_tmpfs(client: docker.DockerClient) -> None:
    out = client.containers.run(
        "busybox",
        [
            "sh",
            "-c",
            "touch /x 2>/dev/null && echo wrote || echo ro; touch /scratch/y && "
            "echo tmpfs-ok; grep ' /scratch ' /proc/mounts",
        ],
        read_only=True,
        tmpfs={"/scratch": "size=1m"},
        remove=True,
    )
    lines = out.decode().splitlines()
    assert lines[0] == "ro" and lines[1] == "tmpfs-ok"
    assert "tmpfs" in lines[2] and "size=1024k" in lines[2] and "noexec" in lines[2]


def test_named_volume_persists_and_copies_image_content(
    client: docker.DockerClient,
) -> None:
    volume = client.volumes.create("engine-data")
    try:
        client.containers.run(
            "busybox",
            ["sh", "-c", "echo kept > /data/file"],
            volumes={"engine-data": {"bind": "/data", "mode": "rw"}},
            remove=True,
        )
        out = client.containers.run(
            "busybox", ["cat", "/data/file"], volumes=["engine-data:/data:ro"], remove=True
        )
        assert out == b"kept\n"
        # A new empty volume mounted over /bin is seeded with the image's /bin.
        out = client.containers.run(
            "busybox", ["ls", "/bin/busybox"], mounts=[Mount("/bin", "engine-bin")], remove=True
        )
        assert out == b"/bin/busybox\n"
        inspected = client.volumes.get("engine-data").attrs
        assert inspected["Driver"] == "local" and inspected["Name"] == "engine-data"
    finally:
        volume.remove()
        client.volumes.get("engine-bin").remove()


def test_volume_in_use_cannot_be_removed(client: docker.DockerClient) -> None:
    client.volumes.create("engine-busy")
    container = client.containers.run(
        "busybox", ["sleep", "30"], detach=True, volumes=["engine-busy:/busy"]
    )
    try:
        with pytest.raises(docker.errors.APIError) as info:
            client.volumes.get("engine-busy").remove()
        assert info.value.status_code == 409
    finally:
        container.remove(force=True)
        client.volumes.get("engine-busy").remove()


def test_volume_ls_prune(client: docker.DockerClient) -> None:
    client.volumes.create("engine-prune", labels={"p": "1"})
    names = [v.name for v in client.volumes.list(filters={"label": "p=1"})]
    assert names == ["engine-prune"]
    result = client.volumes.prune(filters={"label": "p=1"})
    assert result["VolumesDeleted"] == ["engine-prune"]
    assert [v.name for v in client.volumes.list(filters={"label": "p=1"})] == []


def test_anonymous_volume_removed_with_v(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["true"], detach=True, volumes=["/anon"])
    container.wait()
    container.reload()
    mounts = container.attrs["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Destination"] == "/anon"
    name = mounts[0]["Name"]
    assert client.volumes.get(name)
    container.remove(v=True)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(name)


def test_init_reaps_and_forwards(client: docker.DockerClient) -> None:
    out = client.containers.run(
        "busybox", ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"], init=True, remove=True
    )
    assert out.decode().startswith("/sbin/docker-init -- sh")


def test_stop_signal_and_timeout(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done"],
        detach=True,
        stop_signal="SIGUSR1",
    )
    cleanup.append(container.id)
    started = time.monotonic()
    container.stop(timeout=20)
    assert time.monotonic() - started < 5
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 9
    assert container.attrs["Config"]["StopSignal"] == "SIGUSR1"


def test_command_not_found(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.create("busybox", ["no-such-command"])
    cleanup.append(container.id)
    with pytest.raises(docker.errors.APIError) as info:
        container.start()
    assert "executable file not found" in str(info.value)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 127
