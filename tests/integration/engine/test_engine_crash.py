"""Crash safety: SIGKILL of the agent or the controller loses no container; and their
clean stop: on SIGTERM each exits at once, leaving the containers running.

These tests kill the daemons, so they use a cloud of their own.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockyard.runtime.tmpfs import TMPFS_MAGIC, fs_type
from dockyard.testing.cloud import TestCloud


@pytest.fixture(scope="module")
def crashy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    cloud = TestCloud.launch(tmp_path_factory.mktemp("crashy"))
    yield cloud
    cloud.purge(keep_logs=tmp_path_factory.getbasetemp() / "logs")


@pytest.fixture
def dc(crashy: TestCloud) -> Iterator[docker.DockerClient]:
    client = crashy.client()
    yield client
    for container in client.containers.list(all=True):
        container.remove(force=True, v=True)
    client.close()


def state(client: docker.DockerClient, ref: str) -> dict[str, object]:
    attrs = client.api.inspect_container(ref)
    return attrs["State"]  # type: ignore[no-any-return]


def wait_state(client: docker.DockerClient, ref: str, status: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state(client, ref)["Status"] == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"{ref} never became {status}: {state(client, ref)}")


def host_objects(cloud: TestCloud) -> dict[str, set[str]]:
    """What the instance has on the host: rootfs mounts, conmons, cgroups, veths (and
    uplinks, see :func:`router_links`), bundles."""
    layout = cloud.layout
    mounts = {
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(layout.bundles_dir))
    }
    conmons = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (
                cmdline.startswith(b"/usr/bin/conmon")
                and str(layout.containers_dir).encode() in cmdline
            ):
                argv = cmdline.split(b"\0")
                conmons.add(argv[argv.index(b"-c") + 1].decode())
    cgroup_root = Path(f"/sys/fs/cgroup/memory{layout.cgroup_root}")
    cgroups = {p.name for p in cgroup_root.glob("*/*")} if cgroup_root.exists() else set()
    veths = router_links(cloud)
    bundles = {p.name for p in layout.containers_dir.iterdir()} | {
        p.name for p in layout.bundles_dir.iterdir()
    }
    return {
        "mounts": mounts,
        "conmons": conmons,
        "cgroups": cgroups,
        "veths": veths,
        "bundles": bundles,
    }


def _links(*netns: str) -> list[tuple[int, str, int]]:
    """``(index, name, peer index)`` of the links in the root netns or in ``netns``."""
    command = ["ip", *(("-n", netns[0]) if netns else ()), "-o", "link"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        index, name = line.split(":")[:2]
        name, _, peer = name.strip().partition("@")
        found.append((int(index), name, int(peer[2:]) if peer.startswith("if") else 0))
    return found


def router_links(cloud: TestCloud) -> set[str]:
    """The instance's endpoint veths (``<router netns>/ve...``, inside its tenants'
    router namespaces) and the root sides of its routers' uplinks (ADR 0016)."""
    prefix = f"dyk-{cloud.instance}-"
    netns_dir = Path("/run/netns")
    routers = [p.name for p in netns_dir.iterdir() if p.name.startswith(prefix)]
    root = {index: name for index, name, _ in _links()}
    found = set()
    for router in routers:
        for _index, name, peer in _links(router):
            if name.startswith("ve"):
                found.add(f"{router}/{name}")
            elif name == "up0" and peer in root:
                found.add(root[peer])
    return found


def settled_objects(cloud: TestCloud, *, timeout: float = 10.0) -> dict[str, set[str]]:
    """Host objects once background cleanup is done (they stop changing)."""
    deadline = time.monotonic() + timeout
    previous = host_objects(cloud)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = host_objects(cloud)
        if current == previous:
            return current
        previous = current
    return previous


def _leftovers(now: dict[str, set[str]], expected: dict[str, set[str]]) -> dict[str, set[str]]:
    """What ``now`` has beyond ``expected`` (an agent's cleanup may also remove a router
    no container uses any more, so less than before is fine)."""
    return {kind: names - expected.get(kind, set()) for kind, names in now.items()}


def wait_objects(cloud: TestCloud, expected: dict[str, set[str]], timeout: float = 10.0) -> None:
    """Cleanup runs in the background: wait (briefly) until the host has nothing beyond
    ``expected``."""
    nothing: dict[str, set[str]] = {kind: set() for kind in expected}
    deadline = time.monotonic() + timeout
    while _leftovers(host_objects(cloud), expected) != nothing and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(host_objects(cloud), expected) == nothing


def test_agent_sigkill_readopts_and_records_exits(
    crashy: TestCloud, dc: docker.DockerClient
) -> None:
    steady = dc.containers.run("busybox", ["sleep", "300"], detach=True, ports={"80/tcp": None})
    short = dc.containers.run("busybox", ["sh", "-c", "sleep 1; exit 3"], detach=True)
    pid = state(dc, steady.id)["Pid"]
    ports = dc.api.inspect_container(steady.id)["NetworkSettings"]["Ports"]
    crashy.kill("agent")
    time.sleep(1.5)  # `short` exits while no agent watches
    crashy.start()
    wait_state(dc, short.id, "exited")
    assert state(dc, short.id)["ExitCode"] == 3
    assert state(dc, short.id)["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert state(dc, steady.id)["Status"] == "running"
    assert state(dc, steady.id)["Pid"] == pid  # the same process, re-adopted
    assert dc.api.inspect_container(steady.id)["NetworkSettings"]["Ports"] == ports
    # The re-adopted container is fully manageable.
    steady.stop(timeout=1)
    assert state(dc, steady.id)["Status"] == "exited"


def test_controller_sigkill_loses_nothing(crashy: TestCloud, dc: docker.DockerClient) -> None:
    steady = dc.containers.run("busybox", ["sleep", "300"], detach=True)
    short = dc.containers.run("busybox", ["sh", "-c", "sleep 1; exit 4"], detach=True)
    pid = state(dc, steady.id)["Pid"]
    crashy.kill("controller")
    time.sleep(1.5)
    crashy.start()
    assert state(dc, steady.id)["Pid"] == pid
    wait_state(dc, short.id, "exited")
    assert state(dc, short.id)["ExitCode"] == 4


def test_both_killed_restart_policy_still_applies(
    crashy: TestCloud, dc: docker.DockerClient
) -> None:
    flaky = dc.containers.run(
        "busybox",
        ["sh", "-c", "sleep 1; exit 1"],
        detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 1},
    )
    crashy.kill("controller")
    crashy.kill("agent")
    time.sleep(1.5)  # it fails while nothing runs
    crashy.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if dc.api.inspect_container(flaky.id)["RestartCount"] == 1:
            break
        time.sleep(0.1)
    assert dc.api.inspect_container(flaky.id)["RestartCount"] == 1


def _power_cut(cloud: TestCloud) -> None:
    """What a host reboot takes from the agent: the agent, every container monitor and
    container process, and the runtime tmpfs with the bundles' rootfs mounts."""
    layout = cloud.layout
    cloud.kill("agent")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"/usr/bin/conmon") and str(layout.containers_dir).encode() in (
                cmdline
            ):
                os.kill(int(entry.name), signal.SIGKILL)
    points = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(layout.agent_run_dir))
    ]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=True)


def test_after_a_reboot_containers_keep_their_files_and_logs_and_start_again(
    crashy: TestCloud, dc: docker.DockerClient
) -> None:
    container = dc.containers.run(
        "busybox",
        ["sh", "-c", "[ -e /kept ] || echo written > /kept; echo up; exec sleep 300"],
        detach=True,
    )
    wait_for_log(container, b"up\n")
    pid = state(dc, container.id)["Pid"]
    assert isinstance(pid, int)
    _power_cut(crashy)
    os.kill(pid, signal.SIGKILL)  # its monitor is gone; the process goes with the host
    assert fs_type(crashy.layout.agent_run_dir) != TMPFS_MAGIC
    crashy.start()
    wait_state(dc, container.id, "exited")
    assert fs_type(crashy.layout.agent_run_dir) == TMPFS_MAGIC
    # Its bundle (config, rootfs mount, /etc files) is made again at start; its writable
    # layer and its logs were on the state disk.
    container.start()
    wait_state(dc, container.id, "running")
    assert container.exec_run(["cat", "/kept", "/etc/hostname"]).output == (
        f"written\n{container.id[:12]}\n".encode()
    )
    wait_for_log(container, b"up\nup\n")
    container.remove(force=True)


def wait_for_log(container: docker.models.containers.Container, expected: bytes) -> None:
    deadline = time.monotonic() + 15
    while container.logs() != expected:
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.05)


def _slow_image(client: docker.DockerClient) -> str:
    """An image whose layer takes a while to unpack: thousands of small files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        busybox = Path("/bin/busybox").read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        for link in ("sh", "sleep", "true"):
            sym = tarfile.TarInfo(f"bin/{link}")
            sym.type, sym.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(sym)
        payload = os.urandom(2048)
        for index in range(15000):
            item = tarfile.TarInfo(f"data/{index // 1000}/{index}")
            item.size = len(payload)
            tar.addfile(item, io.BytesIO(payload))
    response = client.api.import_image_from_data(buffer.getvalue(), repository="slowlayer", tag="1")
    assert "sha256:" in str(response)
    return "slowlayer:1"


def test_agent_killed_mid_create_leaves_nothing(crashy: TestCloud, dc: docker.DockerClient) -> None:
    ref = _slow_image(dc)
    before = settled_objects(crashy)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            dc.containers.create(ref, ["sleep", "1"])
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=create)
    worker.start()
    time.sleep(0.4)  # the agent is unpacking the layer now
    crashy.kill("agent")
    worker.join(timeout=30)
    crashy.start()
    assert errors, "the create should have failed when its agent died"
    assert [c for c in dc.containers.list(all=True) if c.image.tags == [ref]] == []
    wait_objects(crashy, before)
    # And the image is usable afterwards: the half-unpacked layer was not kept.
    assert dc.containers.run(ref, ["true"], remove=True) == b""
    dc.images.remove(ref)


def objects_of(
    cloud: TestCloud, ids: set[str], endpoints: set[str] = frozenset()
) -> dict[str, set[str]]:
    """The host objects that belong to the containers ``ids`` (their veths are found by
    the containers' ``endpoints`` ids)."""
    found = {}
    for kind, names in host_objects(cloud).items():
        if kind == "veths":
            found[kind] = {
                n for n in names if any(e[:13] == n.rpartition("/")[2][2:] for e in endpoints)
            }
        else:
            found[kind] = {n for n in names if any(i in n for i in ids)}
    return found


def test_removal_leaves_no_host_objects(crashy: TestCloud, dc: docker.DockerClient) -> None:
    containers = [
        dc.containers.run("busybox", ["sleep", "300"], detach=True, ports={"81/tcp": None}),
        dc.containers.run("busybox", ["true"], detach=True),
        dc.containers.create("busybox", ["true"]),
    ]
    containers[1].wait()  # exited (its conmon ends with it)
    ids = {c.id for c in containers}
    containers[0].reload()
    endpoints = {
        n["EndpointID"] for n in containers[0].attrs["NetworkSettings"]["Networks"].values()
    }
    deadline = time.monotonic() + 5
    during = objects_of(crashy, ids, endpoints)
    while len(during["conmons"]) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        during = objects_of(crashy, ids, endpoints)
    # The running one and the created one (its runtime is made ahead of start) have a
    # conmon; the exited one has none left.
    assert len(during["bundles"]) == 3 and len(during["conmons"]) == 2
    assert len(during["mounts"]) == 3 and len(during["veths"]) == 1
    for container in containers:
        container.remove(force=True)
    deadline = time.monotonic() + 10
    empty = {kind: set() for kind in during}
    while objects_of(crashy, ids, endpoints) != empty and time.monotonic() < deadline:
        time.sleep(0.1)
    assert objects_of(crashy, ids, endpoints) == empty


def test_rm_container_exiting_while_controller_is_down_is_removed(
    crashy: TestCloud, dc: docker.DockerClient
) -> None:
    container = dc.containers.run(
        "busybox", ["sh", "-c", "sleep 1"], detach=True, auto_remove=True, name="rm-while-down"
    )
    crashy.kill("controller")
    time.sleep(1.5)  # it exits, and its agent removes it, while no controller runs
    crashy.start()
    with pytest.raises(docker.errors.NotFound):
        dc.containers.get(container.id)
    again = dc.containers.create("busybox", ["true"], name="rm-while-down")  # name is free
    again.remove()


def terminate(cloud: TestCloud, name: str, *, within: float = 3.0) -> str:
    """SIGTERM the daemon ``name`` and assert it exits on its own within ``within``
    seconds (``dockyard down`` waits 20 s, then SIGKILLs); return what it logged meanwhile.
    A daemon that does not exit in time is SIGKILLed and started again, so the next tests
    have a cloud."""
    pid = cloud.pid(name)
    assert pid, f"{name} does not run"
    logged = len(cloud.log(name))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + within
    while cloud.pid(name) and time.monotonic() < deadline:
        time.sleep(0.02)
    if cloud.pid(name):
        meanwhile = cloud.log(name)[logged:]
        cloud.kill(name)
        cloud.start()
        raise AssertionError(f"{name} still ran {within} s after SIGTERM; it logged: {meanwhile}")
    return cloud.log(name)[logged:]


def nft_table_exists(cloud: TestCloud) -> bool:
    listed = subprocess.run(
        ["nft", "list", "table", "inet", cloud.layout.nft_table], capture_output=True, check=False
    )
    return listed.returncode == 0


def test_agent_sigterm_stops_it_at_once_and_containers_run_on(
    crashy: TestCloud, dc: docker.DockerClient
) -> None:
    # No published port: while no agent runs, another cloud on the host may take it.
    steady = dc.containers.run("busybox", ["sleep", "300"], detach=True)
    pid = state(dc, steady.id)["Pid"]
    # The controller follows the agent's events all the while: a stream that never ends by
    # itself, which the agent must end rather than wait for.
    logged = terminate(crashy, "agent")
    assert "agent stopped; containers keep running under conmon" in logged
    assert "Traceback" not in logged and " ERROR " not in logged
    assert Path(f"/proc/{pid}").exists()  # conmon holds the container
    assert nft_table_exists(crashy)  # kernel network state stays
    crashy.start()
    assert state(dc, steady.id)["Status"] == "running"
    assert state(dc, steady.id)["Pid"] == pid  # the same process, re-adopted
    steady.stop(timeout=1)
    assert state(dc, steady.id)["Status"] == "exited"


def test_controller_sigterm_stops_it_at_once(crashy: TestCloud, dc: docker.DockerClient) -> None:
    steady = dc.containers.run("busybox", ["sleep", "300"], detach=True)
    pid = state(dc, steady.id)["Pid"]
    events = dc.events(decode=True)  # a client following events: ended, not waited for
    try:
        logged = terminate(crashy, "controller")
    finally:
        events.close()
    assert "controller stopped" in logged
    assert "Traceback" not in logged and " ERROR " not in logged
    assert Path(f"/proc/{pid}").exists()
    crashy.start()
    assert state(dc, steady.id)["Pid"] == pid


def test_controller_sigterm_cuts_a_followed_log_after_a_grace(
    crashy: TestCloud, dc: docker.DockerClient
) -> None:
    steady = dc.containers.run("busybox", ["sh", "-c", "echo up; sleep 300"], detach=True)
    pid = state(dc, steady.id)["Pid"]
    # A client's stream the controller does not end by itself: it gets a few seconds, then
    # it is cut, well before `dockyard down` would SIGKILL the controller (20 s).
    logs = dc.api.logs(steady.id, stream=True, follow=True)
    try:
        logged = terminate(crashy, "controller", within=10)
    finally:
        logs.close()
    assert "controller stopped" in logged
    assert "Traceback" not in logged and " ERROR " not in logged
    crashy.start()
    assert state(dc, steady.id)["Pid"] == pid
