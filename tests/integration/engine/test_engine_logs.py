"""Container logs: rotation by --log-opt, --details, since/until/tail, follow across
rotations and restarts, and clients that go away mid-stream.

Writers in these tests pace their output (a pause every few lines) so that each rotation
is far apart from the next: a file is lost only when conmon rotates twice before the agent
reacts once (see runtime/logfiles.py), which these tests are not about.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockyard.testing.cloud import DockerCli, TestCloud

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


def numbered(count: int, *, every: int = 20, pause: float = 0.02, width: int = 40) -> str:
    """A shell loop printing ``line <i>`` padded to ``width`` bytes, pausing every
    ``every`` lines."""
    pad = "." * max(width - 12, 0)
    return (
        f'i=0; while [ $i -lt {count} ]; do echo "line $i {pad}"; i=$((i+1)); '
        f"if [ $((i % {every})) -eq 0 ]; then sleep {pause}; fi; done"
    )


def numbers(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^line (\d+) ", text, re.MULTILINE)]


def log_dir(cloud: TestCloud, container_id: str) -> Path:
    return cloud.layout.containers_dir / container_id / "logs"


def wait_for(predicate: object, timeout: float = 20.0, what: str = "condition") -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# rotation ---------------------------------------------------------------------------------


def test_rotation_keeps_max_file_files_of_at_most_max_size(
    client: docker.DockerClient, cloud: TestCloud, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", numbered(1500)],
        detach=True,
        log_config={"type": "json-file", "config": {"max-size": "10k", "max-file": "3"}},
    )
    cleanup.append(container.id)
    assert container.wait(timeout=60)["StatusCode"] == 0
    wait_for(lambda: len(list(log_dir(cloud, container.id).iterdir())) <= 4, what="pruning")
    files = sorted(log_dir(cloud, container.id).iterdir())
    assert 2 <= len(files) <= 4  # up to 3 files and an empty spare
    assert all(f.stat().st_size <= 10_000 for f in files)
    got = numbers(container.logs().decode())
    assert got[-1] == 1499
    assert got == list(range(got[0], 1500))  # the newest lines, none lost or repeated
    assert 1500 - got[0] < 1500  # older files were dropped
    inspect = client.api.inspect_container(container.id)
    assert inspect["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10k", "max-file": "3"},
    }


def test_compressed_rotation(
    client: docker.DockerClient, cloud: TestCloud, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", numbered(800)],
        detach=True,
        log_config={
            "type": "local",
            "config": {"max-size": "8k", "max-file": "4", "compress": "true"},
        },
    )
    cleanup.append(container.id)
    container.wait(timeout=60)
    directory = log_dir(cloud, container.id)
    wait_for(
        lambda: sum(f.name.endswith(".gz") for f in directory.iterdir()) == 3, what="gzip files"
    )
    got = numbers(container.logs().decode())
    assert got[-1] == 799 and got == list(range(got[0], 800))
    tail = numbers(container.logs(tail=300).decode())
    assert tail == list(range(500, 800))


def test_follow_across_rotations(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "sleep 0.5; " + numbered(1200)],
        detach=True,
        log_config={"type": "json-file", "config": {"max-size": "8k", "max-file": "2"}},
    )
    cleanup.append(container.id)
    streamed = b"".join(container.logs(stream=True, follow=True))
    assert numbers(streamed.decode()) == list(range(1200))


def test_restarts_never_grow_a_file_past_max_size(
    client: docker.DockerClient, cloud: TestCloud, cleanup: list[str]
) -> None:
    container = client.containers.create(
        "busybox",
        ["sh", "-c", numbered(60, every=60)],
        log_config={"type": "json-file", "config": {"max-size": "4k", "max-file": "5"}},
    )
    cleanup.append(container.id)
    for _ in range(6):
        container.start()
        container.wait(timeout=30)
    for path in log_dir(cloud, container.id).iterdir():
        assert path.stat().st_size <= 4000
    assert numbers(container.logs().decode())[-60:] == list(range(60))


# options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max-size": "abc"}, "invalid size: 'abc'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        (
            {"compress": "true", "max-file": "1"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"foo": "bar"}, "unknown log opt 'foo' for json-file log driver"),
        ({"labels-regex": "("}, "error parsing regexp"),
    ],
)
def test_bad_log_options_are_refused_at_create(
    api: docker.APIClient, config: dict[str, str], message: str
) -> None:
    host_config = api.create_host_config(log_config={"type": "json-file", "config": config})
    with pytest.raises(docker.errors.APIError) as caught:
        api.create_container("busybox", ["true"], host_config=host_config)
    assert caught.value.status_code == 400
    assert message in str(caught.value.explanation)


def test_local_driver_messages(api: docker.APIClient) -> None:
    host_config = api.create_host_config(
        log_config={"type": "local", "config": {"max-file": "1", "compress": "true"}}
    )
    with pytest.raises(docker.errors.APIError, match="compression cannot be enabled"):
        api.create_container("busybox", ["true"], host_config=host_config)


def test_asking_for_more_than_the_ceiling_warns(api: docker.APIClient, cleanup: list[str]) -> None:
    host_config = api.create_host_config(
        log_config={"type": "json-file", "config": {"max-size": "1g", "max-file": "50"}}
    )
    created = api.create_container("busybox", ["true"], host_config=host_config)
    cleanup.append(created["Id"])
    warnings = " ".join(created["Warnings"] or [])
    assert "max-file 50" in warnings and "16 are kept" in warnings
    assert "max-size" in warnings


def test_details_show_the_log_attributes(cli: DockerCli, names: list[str]) -> None:
    plain, tagged = f"dylog-plain-{os.getpid()}", f"dylog-tagged-{os.getpid()}"
    names += [plain, tagged]
    cli.run("run", "--name", plain, "busybox", "echo", "hi")
    cli.run(
        "run",
        "--name",
        tagged,
        "--label",
        "com.example.team=a b",
        "--label",
        "other=x",
        "-e",
        "FOO=bar",
        "--log-opt",
        "labels=com.example.team,missing",
        "--log-opt",
        "env=FOO",
        "--log-opt",
        "tag={{.Name}}",
        "busybox",
        "echo",
        "hi",
    )
    assert cli.run("logs", "--details", plain).stdout == " hi\n"
    assert (
        cli.run("logs", "--details", tagged).stdout
        == f"FOO=bar,com.example.team=a+b,tag={tagged} hi\n"
    )
    stamped = cli.run("logs", "--details", "-t", tagged).stdout
    assert STAMPED.match(stamped) and stamped.endswith(
        f" FOO=bar,com.example.team=a+b,tag={tagged} hi\n"
    )


@pytest.fixture
def names(cli: DockerCli) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for n in made:
        cli.run("rm", "-f", n, check=False)


# since, until, tail, timestamps -----------------------------------------------------------


def test_since_until_with_fractions_and_tail_all(
    api: docker.APIClient, client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "echo a; sleep 1.2; echo b; sleep 1.2; echo c"], detach=True
    )
    cleanup.append(container.id)
    container.wait(timeout=30)
    stamped = container.logs(timestamps=True).decode().splitlines()
    assert all(STAMPED.match(line) for line in stamped)
    times = [line.split(" ", 1)[0] for line in stamped]

    def unix(stamp: str) -> str:  # "2024-...T..:..:..123456789Z" -> "1700000000.123456789"
        seconds = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        return f"{int(seconds)}.{stamp[20:29]}"

    def logs(**params: str) -> bytes:
        response = api._get(
            api._url("/containers/{0}/logs", container.id),
            params={"stdout": 1, "stderr": 1, **params},
        )
        api._raise_for_status(response)
        return bytes(api._get_result_tty(False, response, False))

    assert logs(since=unix(times[1])) == b"b\nc\n"  # since includes its own instant
    assert logs(until=unix(times[1])) == b"a\nb\n"  # until too
    assert logs(since=unix(times[1]), until=unix(times[1])) == b"b\n"
    assert logs(tail="all") == b"a\nb\nc\n"
    assert logs(tail="1") == b"c\n"
    assert logs(tail="nonsense") == b"a\nb\nc\n"  # Docker's fallback: all


def test_a_line_of_megabytes_is_whole(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "echo before; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo after"],
        detach=True,
    )
    cleanup.append(container.id)
    container.wait(timeout=60)
    expected = b"before\n" + b"x" * 3_000_000 + b"\nafter\n"
    assert container.logs() == expected
    assert b"".join(container.logs(stream=True, follow=True)) == expected


def test_tty_logs_are_raw_also_when_followed(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run("busybox", ["sh", "-c", "echo hi"], detach=True, tty=True)
    cleanup.append(container.id)
    container.wait(timeout=30)
    assert container.logs() == b"hi\r\n"
    assert b"".join(container.logs(stream=True, follow=True)) == b"hi\r\n"


# follow across restarts ----------------------------------------------------------------------


def test_follow_goes_on_across_restart_policy_restarts(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "echo run; sleep 0.3; exit 1"],
        detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    cleanup.append(container.id)
    streamed = b"".join(container.logs(stream=True, follow=True))
    assert streamed == b"run\nrun\nrun\n"  # ended once no restart was left


class Follower:
    """``docker logs -f`` running in the background, its output collected."""

    def __init__(self, cli: DockerCli, *args: str) -> None:
        self.proc = subprocess.Popen(
            [cli.binary, "logs", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=cli.cloud.env(),
        )
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            self.output += chunk

    def wait_for(self, text: bytes, count: int = 1) -> None:
        wait_for(
            lambda: self.output.count(text) >= count, what=f"{text!r} x{count}: {self.output!r}"
        )

    def finish(self, timeout: float = 20) -> bytes:
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return self.output


def test_follow_goes_on_across_docker_restart_and_ends_at_stop(
    cli: DockerCli, names: list[str]
) -> None:
    n = f"dylog-restart-{os.getpid()}"
    names.append(n)
    cli.run("run", "-d", "--name", n, "busybox", "sh", "-c", "echo start; exec sleep 60")
    follower = Follower(cli, n)
    follower.wait_for(b"start\n")
    cli.run("restart", "-t", "0", n)
    follower.wait_for(b"start\n", 2)
    assert follower.proc.poll() is None
    cli.run("stop", "-t", "0", n)
    assert follower.finish() == b"start\nstart\n"
    assert follower.proc.returncode == 0


def test_follow_ends_when_the_container_is_removed(cli: DockerCli, names: list[str]) -> None:
    n = f"dylog-removed-{os.getpid()}"
    names.append(n)
    cli.run("run", "-d", "--name", n, "busybox", "sh", "-c", "echo up; exec sleep 60")
    follower = Follower(cli, n)
    follower.wait_for(b"up\n")
    cli.run("rm", "-f", n)
    assert follower.finish() == b"up\n"


def agent_log_fds(cloud: TestCloud, container_id: str) -> list[str]:
    """Files of the container's log the agent holds open."""
    pid = cloud.pid("agent")
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if container_id in target and "/logs/" in target:
            held.append(target)
    return held


def test_a_client_killed_mid_follow_leaves_everything_healthy(
    cli: DockerCli, cloud: TestCloud, client: docker.DockerClient, names: list[str]
) -> None:
    n = f"dylog-killed-{os.getpid()}"
    names.append(n)
    cid = cli.run(
        "run", "-d", "--name", n, "busybox", "sh", "-c", "echo hello; exec sleep 60"
    ).stdout.strip()
    follower = Follower(cli, n)
    follower.wait_for(b"hello\n")
    assert agent_log_fds(cloud, cid)
    follower.proc.send_signal(signal.SIGKILL)
    follower.finish()
    # The container is quiet, so only the checks for a departed client end the follow.
    wait_for(lambda: not agent_log_fds(cloud, cid), timeout=10, what="the agent to let go")
    assert client.containers.get(n).status == "running"
    assert cli.run("logs", n).stdout == "hello\n"
    # And a follow killed while the container writes a lot.
    chatty = client.containers.run(
        "busybox", ["sh", "-c", numbered(100000, every=500)], detach=True
    )
    names.append(chatty.id)
    follower = Follower(cli, chatty.id)
    follower.wait_for(b"line 100 ")
    follower.proc.send_signal(signal.SIGKILL)
    follower.finish()
    wait_for(lambda: not agent_log_fds(cloud, chatty.id), timeout=10, what="the agent to let go")
    assert cli.run("logs", "--tail", "1", n).stdout == "hello\n"


# the agent restarting -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    cloud = TestCloud.launch(tmp_path_factory.mktemp("logcloud"))
    yield cloud
    cloud.purge(keep_logs=tmp_path_factory.getbasetemp() / "logs")


@pytest.fixture
def oc(own: TestCloud) -> Iterator[docker.DockerClient]:
    client = own.client()
    yield client
    for container in client.containers.list(all=True):
        container.remove(force=True, v=True)
    client.close()


def test_logs_and_rotation_survive_an_agent_restart(
    own: TestCloud, oc: docker.DockerClient
) -> None:
    container = oc.containers.run(
        "busybox",
        ["sh", "-c", numbered(400) + "; sleep 2; " + numbered(400).replace("line $i", "more $i")],
        detach=True,
        log_config={"type": "json-file", "config": {"max-size": "6k", "max-file": "20"}},
    )
    wait_for(lambda: b"line 399 " in container.logs(), what="the first part")
    own.kill("agent")
    own.start()
    container.wait(timeout=60)
    text = container.logs().decode()
    assert numbers(text) == list(range(400))
    assert [int(m) for m in re.findall(r"^more (\d+) ", text, re.MULTILINE)] == list(range(400))
    for path in log_dir(own, container.id).iterdir():
        assert path.stat().st_size <= 6000


def test_follow_resumes_after_an_agent_restart(own: TestCloud, oc: docker.DockerClient) -> None:
    container = oc.containers.run(
        "busybox", ["sh", "-c", numbered(60, every=1, pause=0.1)], detach=True
    )
    got = bytearray()

    def follow() -> None:
        for chunk in container.logs(stream=True, follow=True):
            got.extend(chunk)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_for(lambda: b"line 5 " in got, what="the first lines")
    own.kill("agent")
    time.sleep(0.5)
    own.start()
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert numbers(got.decode()) == list(range(60))
