"""docker exec through docker-py and the stock CLI (under a pseudo-terminal for -it)."""

from __future__ import annotations

import socket
import time

import docker
import pytest
from docker.errors import APIError, NotFound

from dockyard.testing.cloud import DockerCli

MIB = 1024 * 1024


def wait_for(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def box(client: docker.DockerClient, cleanup: list[str]):  # type: ignore[no-untyped-def]
    container = client.containers.run(
        "busybox", ["sleep", "600"], detach=True, environment={"A": "1"}
    )
    cleanup.append(container.id)
    return container


def test_exec_output_streams_and_exit_code(api: docker.APIClient, box) -> None:  # type: ignore[no-untyped-def]
    exec_id = api.exec_create(box.id, ["sh", "-c", "echo out; echo err >&2; exit 3"])["Id"]
    before = api.exec_inspect(exec_id)
    assert (before["Running"], before["ExitCode"]) == (False, None)
    output = api.exec_start(exec_id, demux=True)
    assert output == (b"out\n", b"err\n")
    after = api.exec_inspect(exec_id)
    assert after["ExitCode"] == 3
    assert after["Running"] is False
    assert after["ContainerID"] == box.id
    assert after["ProcessConfig"]["entrypoint"] == "sh"
    assert after["ProcessConfig"]["arguments"] == ["-c", "echo out; echo err >&2; exit 3"]


def test_exec_user_workdir_and_env(box) -> None:  # type: ignore[no-untyped-def]
    result = box.exec_run(
        ["sh", "-c", "id -u; id -g; pwd; echo $A $B"],
        user="1000:1001",
        workdir="/tmp",
        environment={"A": "override", "B": "2"},
    )
    assert result.exit_code == 0, result
    assert result.output.decode().split("\n")[:4] == ["1000", "1001", "/tmp", "override 2"], result
    # The container's own environment and user when the exec names none.
    own = box.exec_run(["sh", "-c", "id -u; echo $A"])
    assert own.output == b"0\n1\n", own
    unknown = box.exec_run(["true"], user="nobody-here")
    assert unknown.exit_code == 126, unknown  # Docker's code for an exec that could not start
    assert b"unable to find user nobody-here" in unknown.output, unknown


def test_exec_keeps_the_container_confinement(box) -> None:  # type: ignore[no-untyped-def]
    status = box.exec_run(["cat", "/proc/self/status"]).output.decode()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "1"
    main = box.exec_run(["cat", "/proc/1/status"]).output.decode()
    assert f"CapBnd:\t{fields['CapBnd']}" in main
    uid_map = box.exec_run(["cat", "/proc/self/uid_map"]).output.split()
    assert uid_map[0] == b"0" and uid_map[1] != b"0", "exec runs in the container's userns"


def test_exec_missing_command_is_127(api: docker.APIClient, cli: DockerCli, box) -> None:  # type: ignore[no-untyped-def]
    exec_id = api.exec_create(box.id, ["no-such-binary"])["Id"]
    output = api.exec_start(exec_id)
    assert b'"no-such-binary": executable file not found' in output
    assert api.exec_inspect(exec_id)["ExitCode"] == 127
    result = cli.run("exec", box.id, "no-such-binary", check=False)
    assert result.returncode == 127
    assert "executable file not found" in result.stderr + result.stdout


def test_exec_refused_when_paused_or_stopped(
    client: docker.DockerClient, api: docker.APIClient, box
) -> None:  # type: ignore[no-untyped-def]
    box.pause()
    with pytest.raises(APIError) as paused:
        api.exec_create(box.id, ["true"])
    assert paused.value.status_code == 409
    assert "is paused, unpause the container before exec" in str(paused.value.explanation)
    box.unpause()
    exec_id = api.exec_create(box.id, ["true"])["Id"]
    box.kill()
    box.wait()
    with pytest.raises(APIError) as stopped:
        api.exec_create(box.id, ["true"])
    assert stopped.value.status_code == 409
    assert "is not running" in str(stopped.value.explanation)
    # Docker forgets a stopped container's execs.
    with pytest.raises(NotFound):
        api.exec_inspect(exec_id)


def test_exec_detached_and_running_state(api: docker.APIClient, box) -> None:  # type: ignore[no-untyped-def]
    exec_id = api.exec_create(box.id, ["sh", "-c", "echo done > /tmp/mark; sleep 2"])["Id"]
    assert api.exec_start(exec_id, detach=True) in ("", b"")
    running = api.exec_inspect(exec_id)
    assert running["Running"] is True
    assert running["Pid"] > 0
    assert box.exec_run(["cat", "/tmp/mark"]).output == b"done\n"
    finished = wait_for(lambda: (i := api.exec_inspect(exec_id))["ExitCode"] is not None and i)
    assert (finished["Running"], finished["ExitCode"], finished["Pid"]) == (False, 0, 0)
    with pytest.raises(APIError) as again:
        api.exec_start(exec_id, detach=True)
    assert again.value.status_code == 409
    assert "has already run" in str(again.value.explanation)


def test_exec_unknown_and_privileged(api: docker.APIClient, box) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        api.exec_inspect("0" * 64)
    with pytest.raises(NotFound):
        api.exec_start("../" + "0" * 61)
    with pytest.raises(APIError) as refused:
        api.exec_create(box.id, ["true"], privileged=True)
    assert refused.value.status_code == 403
    with pytest.raises(APIError) as empty:
        api.exec_create(box.id, [])
    assert empty.value.status_code == 400


def test_exec_piped_stdin(cli: DockerCli, box) -> None:  # type: ignore[no-untyped-def]
    result = cli.run("exec", "-i", box.id, "sh", "-c", "cat; echo end", input=b"line 1\nline 2\n")
    assert result.stdout == "line 1\nline 2\nend\n"


def test_exec_large_output_streams_whole(api: docker.APIClient, cli: DockerCli, box) -> None:  # type: ignore[no-untyped-def]
    size = 48 * MIB
    exec_id = api.exec_create(box.id, ["head", "-c", str(size), "/dev/urandom"])["Id"]
    received = 0
    for chunk in api.exec_start(exec_id, stream=True):
        received += len(chunk)
    assert received == size
    assert api.exec_inspect(exec_id)["ExitCode"] == 0
    # Through the CLI with a terminal: every line arrives, in order (TTY output is
    # rewritten by the terminal, \n -> \r\n, so count lines rather than bytes).
    code, output = cli.run_in_terminal("exec", "-it", box.id, "seq", "1", "400000", timeout=120)
    assert code == 0
    lines = output.replace(b"\r\n", b"\n").split(b"\n")
    numbers = [line for line in lines if line.isdigit()]
    assert numbers[0] == b"1" and numbers[-1] == b"400000"
    assert len(numbers) == 400000


def test_exec_interactive_terminal(cli: DockerCli, box) -> None:  # type: ignore[no-untyped-def]
    code, output = cli.run_in_terminal(
        "exec",
        "-it",
        box.id,
        "sh",
        size=(33, 101),
        # The CLI resizes the exec's terminal just after it starts: ask for the size
        # only once that has happened, then type a command and end the shell.
        keys=((1.0, b"stty size; tty; exit 7\r"),),
    )
    text = output.decode(errors="replace")
    assert code == 7, text
    assert "33 101" in text
    assert "/dev/pts/" in text


def test_run_interactive_terminal_resize(cli: DockerCli) -> None:
    code, output = cli.run_in_terminal(
        "run", "--rm", "-it", "busybox", "sh", "-c", "sleep 1; stty size; exit 5", size=(41, 120)
    )
    assert code == 5
    assert b"41 120" in output


def test_exec_client_killed_mid_stream(
    client: docker.DockerClient, api: docker.APIClient, box
) -> None:  # type: ignore[no-untyped-def]
    exec_id = api.exec_create(box.id, ["sh", "-c", "while true; do echo tick; sleep 0.01; done"])[
        "Id"
    ]
    stream = api.exec_start(exec_id, socket=True)
    raw: socket.socket = stream._sock
    assert raw.recv(64)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()  # an abortive close: RST, as a killed client's kernel sends
    # The server answers, the container runs on, and so does the exec (as in Docker).
    assert client.ping()
    assert api.exec_inspect(exec_id)["Running"] is True
    box.reload()
    assert box.status == "running"
    assert box.exec_run(["echo", "still"]).output == b"still\n"
