"""``docker events`` through docker-py and the docker CLI: live streams in Docker's order,
replay with since/until, Docker's filters, clients that vanish, controller restarts.

Replays are bounded by an ``until`` taken after the actions, so every stream here ends on
its own; live streams carry an ``until`` a minute ahead for the same reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from engine_image_builders import files_layer, nonce

from dockyard.core.identity import TOKEN_HEADER
from dockyard.testing.cloud import DockerCli, TestCloud

Event = dict[str, Any]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def replay(
    api: docker.APIClient, since: float | str, until: float | str, **filters: Any
) -> list[Event]:
    return list(api.events(since=since, until=until, filters=filters or None, decode=True))


def actions(events: list[Event]) -> list[str]:
    return [e["Action"] for e in events]


def exact(ns: int) -> str:
    """A timestamp with all its nanoseconds, as the docker CLI sends them."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def listeners(api: docker.APIClient) -> int:
    return int(api.info()["NEventsListener"])


# live ------------------------------------------------------------------------------------


def test_live_stream_sees_a_run_rm_in_docker_order(api: docker.APIClient, cli: DockerCli) -> None:
    n = name("ev-rm")
    stream = api.events(decode=True, until=time.time() + 60)
    seen: list[Event] = []
    try:
        result = cli.run("run", "--rm", "--name", n, "busybox", "sh", "-c", "exit 3", check=False)
        assert result.returncode == 3, result.stderr
        cid = ""
        for event in stream:
            attributes = event["Actor"]["Attributes"]
            if event["Type"] == "container" and attributes.get("name") == n:
                cid = event["Actor"]["ID"]
            if cid and cid in (event["Actor"]["ID"], attributes.get("container")):
                seen.append(event)
                if event["Action"] == "destroy":
                    break
    finally:
        stream.close()
    assert [(e["Type"], e["Action"]) for e in seen] == [
        ("container", "create"),
        ("container", "attach"),
        ("network", "connect"),
        ("container", "start"),
        ("network", "disconnect"),
        ("container", "die"),
        ("container", "destroy"),
    ]
    die = seen[5]
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["name"] == n
    assert die["Actor"]["Attributes"]["image"] == "busybox"
    assert (die["status"], die["id"], die["from"], die["scope"]) == ("die", cid, "busybox", "local")
    assert seen[2]["Actor"]["Attributes"] == {"container": cid, "name": "default", "type": "bridge"}
    times = [e["timeNano"] for e in seen]
    assert times == sorted(times)
    assert all(e["time"] == e["timeNano"] // 1_000_000_000 for e in seen)


# replay and filters ------------------------------------------------------------------------


def test_replay_with_since_until_and_filters(
    client: docker.DockerClient, api: docker.APIClient, cleanup: list[str]
) -> None:
    n = name("ev-replay")
    t0 = time.time()
    container = client.containers.run(
        "busybox", ["sleep", "60"], detach=True, name=n, labels={"evt": n, "tier": "db"}
    )
    cleanup.append(container.id)
    bystander = client.containers.create("busybox", ["true"], name=name("other"))
    cleanup.append(bystander.id)
    container.stop(timeout=0)
    container.remove()
    t1 = time.time()

    mine = replay(api, t0, t1, container=n)
    assert actions(mine) == ["create", "start", "kill", "die", "stop", "destroy"]
    assert {e["Actor"]["ID"] for e in mine} == {container.id}
    assert mine[2]["Actor"]["Attributes"]["signal"] == "15"
    assert mine[3]["Actor"]["Attributes"]["exitCode"] == "137"  # pid 1 ignores SIGTERM
    assert all(e["Actor"]["Attributes"]["evt"] == n for e in mine), "labels are attributes"
    assert replay(api, t0, t1, container=container.id[:12]) == mine
    both = replay(api, t0, t1, container=[n, bystander.id])
    assert actions(both) == ["create", "start", "create", "kill", "die", "stop", "destroy"]
    assert [e["Actor"]["ID"] for e in both].count(bystander.id) == 1

    picked = replay(api, t0, t1, type="container", event=["start", "die"], label=f"evt={n}")
    assert actions(picked) == ["start", "die"]
    assert replay(api, t0, t1, label=["tier=db", f"evt={n}"]) == mine
    assert replay(api, t0, t1, label="tier=web") == []
    assert replay(api, t0, t1, image="busybox", container=n) == mine
    assert replay(api, t0, t1, image="other-image", container=n) == []

    default = [
        e
        for e in replay(api, t0, t1, type="network", network="default")
        if e["Actor"]["Attributes"].get("container") == container.id
    ]
    assert actions(default) == ["connect", "disconnect"]

    # since and until are inclusive, to the nanosecond.
    die = mine[3]["timeNano"]
    assert actions(replay(api, exact(die), t1, container=n)) == ["die", "stop", "destroy"]
    assert actions(replay(api, t0, exact(die), container=n)) == ["create", "start", "kill", "die"]
    assert replay(api, exact(die + 1), exact(mine[4]["timeNano"] - 1), container=n) == []


def test_bad_parameters_are_refused_before_streaming(api: docker.APIClient) -> None:
    def get(**params: str) -> Any:
        return api._get(api._url("/events"), params=params)

    response = get(since="200", until="100")
    assert response.status_code == 400
    assert response.json()["message"] == "`since` time (200) cannot be after `until` time (100)"
    response = get(since="last tuesday")
    assert response.status_code == 400
    assert "invalid time value" in response.json()["message"]
    response = get(filters=json.dumps({"colour": ["red"]}))
    assert response.status_code == 400
    assert response.json()["message"] == "invalid filter 'colour'"
    assert get(filters="{not json").status_code == 400


def test_container_changes(client: docker.DockerClient, api: docker.APIClient) -> None:
    n, renamed = name("ev-changes"), name("ev-renamed")
    t0 = time.time()
    # sh as pid 1 ignores signals it has no trap for: HUP ends it, TERM does not.
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "trap 'exit 7' HUP; while true; do sleep 1; done"],
        detach=True,
        name=n,
    )
    try:
        container.rename(renamed)
        container.update(cpu_shares=512)
        container.pause()
        container.unpause()
        container.kill(signal="SIGHUP")
        assert container.wait(timeout=30)["StatusCode"] == 7
        container.restart(timeout=1)
        container.stop(timeout=1)
    finally:
        container.remove(force=True)
    t1 = time.time()
    events = replay(api, t0, t1, container=container.id)
    assert actions(events) == [
        "create",
        "start",
        "rename",
        "update",
        "pause",
        "unpause",
        "kill",
        "die",
        "start",
        "restart",
        "kill",
        "die",
        "stop",
        "destroy",
    ]
    attributes = [e["Actor"]["Attributes"] for e in events]
    assert attributes[2]["oldName"] == f"/{n}"
    assert attributes[2]["name"] == renamed
    assert attributes[1]["name"] == n and attributes[3]["name"] == renamed
    assert attributes[6]["signal"] == "1"
    assert attributes[7]["exitCode"] == "7"
    assert attributes[10]["signal"] == "15"
    assert attributes[11]["exitCode"] == "137"


def test_force_removal_of_a_running_container(
    client: docker.DockerClient, api: docker.APIClient
) -> None:
    t0 = time.time()
    container = client.containers.run("busybox", ["sleep", "60"], detach=True)
    container.remove(force=True)
    t1 = time.time()
    events = replay(api, t0, t1, container=container.id)
    assert actions(events) == ["create", "start", "kill", "die", "destroy"]
    assert events[2]["Actor"]["Attributes"]["signal"] == "9"
    assert events[3]["Actor"]["Attributes"]["exitCode"] == "137"


def test_restart_policy_restarts_are_die_then_start(
    client: docker.DockerClient, api: docker.APIClient, cleanup: list[str]
) -> None:
    t0 = time.time()
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "exit 1"],
        detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    cleanup.append(container.id)

    def settled() -> bool:
        attrs = api.inspect_container(container.id)
        return bool(attrs["RestartCount"] == 2 and attrs["State"]["Status"] == "exited")

    wait_for(settled, "two restarts and a final exit")
    events = replay(api, t0, time.time(), container=container.id)
    assert actions(events) == ["create", "start", "die", "start", "die", "start", "die"]
    assert {e["Actor"]["Attributes"]["exitCode"] for e in events if e["Action"] == "die"} == {"1"}


def test_an_oom_kill_is_oom_then_die(
    client: docker.DockerClient, api: docker.APIClient, cleanup: list[str]
) -> None:
    t0 = time.time()
    container = client.containers.run(
        "busybox",
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"],
        detach=True,
        mem_limit="64m",
        memswap_limit="64m",
    )
    cleanup.append(container.id)
    assert container.wait(timeout=60)["StatusCode"] == 137
    events = replay(api, t0, time.time(), container=container.id)
    assert actions(events) == ["create", "start", "oom", "die"]
    assert events[3]["Actor"]["Attributes"]["exitCode"] == "137"


def test_volume_events(client: docker.DockerClient, api: docker.APIClient) -> None:
    volume_name = name("ev-vol")
    t0 = time.time()
    volume = client.volumes.create(name=volume_name)
    container = client.containers.run(
        "busybox", ["true"], detach=True, volumes={volume_name: {"bind": "/data", "mode": "ro"}}
    )
    container.wait(timeout=30)
    container.remove()
    volume.remove()
    t1 = time.time()
    events = replay(api, t0, t1, type="volume", volume=volume_name)
    assert actions(events) == ["create", "mount", "unmount", "destroy"]
    assert {e["Actor"]["ID"] for e in events} == {volume_name}
    assert events[1]["Actor"]["Attributes"] == {
        "driver": "local",
        "container": container.id,
        "destination": "/data",
        "read/write": "false",
        "propagation": "",
    }
    assert events[0]["Actor"]["Attributes"] == {"driver": "local"}
    assert "status" not in events[0]


def test_image_events(client: docker.DockerClient, api: docker.APIClient) -> None:
    repo = f"evt/{uuid.uuid4().hex[:8]}"
    t0 = time.time()
    busybox = client.images.get("busybox")
    api.tag("busybox", repo, "1")
    client.images.remove(f"{repo}:1")
    imported = api.import_image_from_data(
        files_layer({"hello": nonce().encode()}), repository=f"{repo}-imp", tag="2"
    )
    imported_id = json.loads(imported.splitlines()[-1])["status"]
    client.images.remove(f"{repo}-imp:2")
    archive = b"".join(busybox.save())
    client.images.load(archive)
    t1 = time.time()

    events = replay(api, t0, t1, type="image")
    summary = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in events]
    assert summary == [
        ("tag", busybox.id, f"{repo}:1"),
        ("untag", busybox.id, f"{repo}:1"),
        ("tag", imported_id, f"{repo}-imp:2"),
        ("import", imported_id, imported_id),
        ("untag", imported_id, f"{repo}-imp:2"),
        ("delete", imported_id, imported_id),
        ("save", busybox.id, busybox.id),
        ("load", busybox.id, busybox.id),
    ]
    assert all((e["status"], e["id"]) == (e["Action"], e["Actor"]["ID"]) for e in events)
    assert actions(replay(api, t0, t1, image=imported_id)) == ["tag", "import", "untag", "delete"]
    assert actions(replay(api, t0, t1, image=f"{repo}-imp")) == ["tag", "untag"]


# the docker CLI -------------------------------------------------------------------------------


def cli_events(cli: DockerCli, *args: str) -> list[Event]:
    result = cli.run("events", *args, "--format", "{{json .}}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_cli_replay_with_filters(cli: DockerCli) -> None:
    n = name("ev-cli")
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    cid = cli.run("run", "-d", "--name", n, "-l", "app=events", "busybox", "sh", "-c", "exit 5")
    cid_text = cid.stdout.strip()
    assert cli.run("wait", n).stdout.strip() == "5"
    cli.run("rm", n)
    until = f"{time.time():.9f}"
    every = cli_events(
        cli,
        "--since",
        since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--until",
        until,
        "--filter",
        f"container={n}",
    )
    assert actions(every) == ["create", "start", "die", "destroy"]
    assert every[0]["id"] == cid_text
    died = cli_events(
        cli,
        "--since",
        since.isoformat(),
        "--until",
        until,
        "--filter",
        f"container={n}",
        "--filter",
        "event=die",
    )
    assert actions(died) == ["die"]
    assert died[0]["Actor"]["Attributes"]["exitCode"] == "5"
    assert died[0]["Actor"]["Attributes"]["app"] == "events"
    labelled = cli_events(
        cli,
        "--since",
        since.isoformat(),
        "--until",
        until,
        "--filter",
        "label=app=events",
        "--filter",
        "type=container",
        "--filter",
        "event=create",
    )
    assert [e["Actor"]["Attributes"]["name"] for e in labelled][-1] == n


def test_cli_stream_ends_at_a_future_until(cli: DockerCli) -> None:
    n = name("ev-until")
    since = f"{time.time():.9f}"
    cli.run("create", "--name", n, "busybox", "true")
    try:
        # The stream replays the create, then waits for more until the deadline passes.
        events = cli_events(
            cli, "--since", since, "--until", f"{time.time() + 3:.9f}", "--filter", f"container={n}"
        )
    finally:
        cli.run("rm", n)
    assert actions(events) == ["create"]


# clients that go away ------------------------------------------------------------------------


def test_clients_killed_mid_stream_leave_the_server_healthy(
    cloud: TestCloud, api: docker.APIClient, cli: DockerCli
) -> None:
    before = listeners(api)
    process = subprocess.Popen(
        [cli.binary, "events"], env=cloud.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        raw.connect(str(cloud.layout.docker_socket))
        raw.sendall(
            f"GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n"
            f"{TOKEN_HEADER}: {cloud.token}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        wait_for(lambda: listeners(api) >= before + 2, "both streams to be listening")
    finally:
        process.kill()
        process.wait()
        raw.close()
    wait_for(lambda: listeners(api) == before, "the server to drop both streams", timeout=20)
    assert api.ping()
    t0 = time.time()
    container = api.create_container("busybox", ["true"])
    api.remove_container(container["Id"])
    assert actions(replay(api, t0, time.time(), container=container["Id"])) == [
        "create",
        "destroy",
    ]


# restarts -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    """A cloud of its own: these tests stop and kill its controller."""
    cloud = TestCloud.launch(tmp_path_factory.mktemp("events-restart"))
    yield cloud
    cloud.purge(keep_logs=tmp_path_factory.getbasetemp() / "logs")


@pytest.fixture
def rc(restartable: TestCloud) -> Iterator[docker.DockerClient]:
    client = restartable.client()
    yield client
    for container in client.containers.list(all=True):
        container.remove(force=True, v=True)
    client.close()


def stop_controller(cloud: TestCloud) -> None:
    """SIGTERM, as `dockyard down` does: a clean stop."""
    os.kill(cloud.pid("controller"), signal.SIGTERM)
    wait_for(lambda: not cloud.pid("controller"), "the controller to stop")


def test_events_survive_a_controller_restart(
    restartable: TestCloud, rc: docker.DockerClient
) -> None:
    t0 = time.time()
    container = rc.containers.run("busybox", ["sh", "-c", "exit 2"], detach=True)
    container.wait(timeout=30)
    watcher = subprocess.Popen(
        [shutil.which("docker") or "docker", "events"],
        env=restartable.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: listeners(rc.api) == 1, "the CLI to listen")
        stop_controller(restartable)  # open streams end: the stop does not wait for them
        watcher.wait(timeout=30)
    finally:
        watcher.kill()
        watcher.wait()
    restartable.start()
    container.remove()
    events = replay(rc.api, t0, time.time(), container=container.id)
    assert actions(events) == ["create", "start", "die", "destroy"]
    assert events[2]["Actor"]["Attributes"]["exitCode"] == "2"
    times = [e["timeNano"] for e in events]
    assert times == sorted(times)


def test_exits_while_the_controller_is_down_give_die(
    restartable: TestCloud, rc: docker.DockerClient
) -> None:
    t0 = time.time()
    kept = rc.containers.run("busybox", ["sh", "-c", "sleep 2; exit 4"], detach=True)
    removed = rc.containers.run(
        "busybox", ["sh", "-c", "sleep 2; exit 5"], detach=True, auto_remove=True
    )
    restartable.kill("controller")
    time.sleep(3)  # both exit while no controller watches
    restartable.start()
    wait_for(lambda: kept.reload() or kept.status == "exited", "the exit to be applied")

    def gone() -> bool:
        try:
            removed.reload()
        except docker.errors.NotFound:
            return True
        return False

    wait_for(gone, "the --rm container's record to go")
    until = time.time()
    kept_events = replay(rc.api, t0, until, container=kept.id)
    assert actions(kept_events)[-1] == "die"
    assert kept_events[-1]["Actor"]["Attributes"]["exitCode"] == "4"
    removed_events = replay(rc.api, t0, until, container=removed.id)
    assert actions(removed_events)[-2:] == ["die", "destroy"]
    assert "exitCode" not in removed_events[-2]["Actor"]["Attributes"]  # went with the container


# exec and health -------------------------------------------------------------------------


def test_exec_events(client: docker.DockerClient, api: docker.APIClient) -> None:
    container = client.containers.run("busybox", ["sleep", "600"], detach=True)
    try:
        since = time.time()
        attached = api.exec_create(container.id, ["sh", "-c", "exit 2"])["Id"]
        api.exec_start(attached)
        detached = api.exec_create(container.id, ["sleep", "0.2"])["Id"]
        api.exec_start(detached, detach=True)

        def execs() -> list[Event]:
            return replay(api, since, time.time(), container=container.id)

        wait_for(lambda: actions(execs()).count("exec_die") == 2, "both exec_die events")
        seen = [(e["Action"], e["Actor"]["Attributes"]) for e in execs()]
        by_exec = {
            exec_id: [(a, attrs) for a, attrs in seen if attrs.get("execID") == exec_id]
            for exec_id in (attached, detached)
        }
        assert [a for a, _ in by_exec[attached]] == [
            "exec_create: sh -c exit 2",
            "exec_start: sh -c exit 2",
            "exec_die",
        ]
        assert by_exec[attached][-1][1]["exitCode"] == "2"
        assert [a for a, _ in by_exec[detached]] == [
            "exec_create: sleep 0.2",
            "exec_start: sleep 0.2",
            "exec_die",
        ]
        assert by_exec[detached][-1][1]["exitCode"] == "0"
        assert all(attrs["name"] == container.name for _, attrs in seen)
        # Docker's event filter matches the action before its ": command".
        filtered = replay(api, since, time.time(), container=container.id, event="exec_start")
        assert len(filtered) == 2
    finally:
        container.remove(force=True)


def test_health_status_events(client: docker.DockerClient, api: docker.APIClient) -> None:
    since = time.time()
    container = client.containers.run(
        "busybox",
        ["sleep", "600"],
        detach=True,
        healthcheck={
            "Test": ["CMD-SHELL", "test -e /tmp/ok"],
            "Interval": 200_000_000,
            "Retries": 1,
        },
    )
    try:

        def health_events() -> list[str]:
            return [
                a
                for a in actions(replay(api, since, time.time(), container=container.id))
                if a.startswith("health_status")
            ]

        wait_for(lambda: health_events() == ["health_status: unhealthy"], "unhealthy")
        container.exec_run(["touch", "/tmp/ok"])
        wait_for(
            lambda: health_events() == ["health_status: unhealthy", "health_status: healthy"],
            "healthy",
        )
        time.sleep(0.6)  # more probes, all healthy: no more events (only changes are)
        assert health_events() == ["health_status: unhealthy", "health_status: healthy"]
    finally:
        container.remove(force=True)
