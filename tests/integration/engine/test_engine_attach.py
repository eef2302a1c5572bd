"""Attach and interactive runs through the stock CLI (under a pseudo-terminal) and
docker-py: terminals, detach keys, stdin handling, and clients that go away."""

from __future__ import annotations

import socket
import time
import uuid

import docker
import pytest

from dockyard.testing.cloud import DockerCli

CTRL_P_CTRL_Q = b"\x10\x11"


def unique(prefix: str) -> str:
    return f"dyt-{prefix}-{uuid.uuid4().hex[:8]}"


def wait_status(client: docker.DockerClient, name: str, status: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if client.containers.get(name).status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {status}")


def test_run_it_shell_exit_status_and_ctrl_d(cli: DockerCli, client: docker.DockerClient) -> None:
    code, output = cli.run_in_terminal(
        "run", "--rm", "-it", "busybox", "sh", keys=((1.0, b"echo $((6*7)); tty; exit 9\r"),)
    )
    text = output.decode(errors="replace")
    assert code == 9, text
    assert "42" in text and "/dev/pts/" in text
    # Ctrl-D at the prompt ends the shell with status 0, as at any terminal.
    code, output = cli.run_in_terminal(
        "run", "--rm", "-it", "busybox", "sh", keys=((1.0, b"\x04"),)
    )
    assert code == 0, output


def test_detach_keys_and_reattach(cli: DockerCli, client: docker.DockerClient) -> None:
    name = unique("detach")
    try:
        code, output = cli.run_in_terminal(
            "run",
            "-it",
            "--name",
            name,
            "busybox",
            "sh",
            keys=((1.0, b"echo first\r"), (0.5, CTRL_P_CTRL_Q)),
        )
        assert code == 0, output
        assert b"first" in output
        wait_status(client, name, "running")  # detaching left it running
        code, output = cli.run_in_terminal(
            "attach",
            "--detach-keys",
            "ctrl-a,x",
            name,
            keys=((1.0, b"echo second\r"), (0.5, b"\x01x")),
        )
        # As Docker's CLI does after `docker attach`: says so and exits 1 (`run` exits 0).
        assert code == 1, output
        assert b"second" in output and b"read escape sequence" in output
        wait_status(client, name, "running")
        code, output = cli.run_in_terminal("attach", name, keys=((1.0, b"exit 4\r"),))
        assert code == 4, output
        wait_status(client, name, "exited")
    finally:
        cli.run("rm", "-f", name, check=False)


def test_detach_keys_server_side_with_docker_py(
    client: docker.DockerClient, api: docker.APIClient, cleanup: list[str]
) -> None:
    container = client.containers.run("busybox", ["sh"], detach=True, tty=True, stdin_open=True)
    cleanup.append(container.id)
    sock = api.attach_socket(
        container.id, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-e,e"}
    )
    raw: socket.socket = sock._sock
    raw.settimeout(10)
    raw.sendall(b"echo marker-$((1+1))\n")
    seen = b""
    while b"marker-2" not in seen:
        chunk = raw.recv(4096)
        assert chunk, seen
        seen += chunk
    raw.sendall(b"\x05e")
    while raw.recv(4096):  # the server ends the stream at the detach keys
        pass
    raw.close()
    container.reload()
    assert container.status == "running"
    with pytest.raises(docker.errors.APIError) as bad:
        api.attach_socket(container.id, params={"stdin": 1, "detachKeys": "ctrl-"})
    assert bad.value.status_code == 400


def test_piped_stdin_is_consumed_and_closed(cli: DockerCli) -> None:
    result = cli.run("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo eof", input=b"a\nb\n")
    assert result.stdout == "a\nb\neof\n"
    result = cli.run("run", "--rm", "-i", "busybox", "wc", "-c", input=b"x" * 300_000)
    assert result.stdout.strip() == "300000"


def test_attach_without_tty_is_multiplexed(api: docker.APIClient, cleanup: list[str]) -> None:
    container = api.create_container("busybox", ["sh", "-c", "echo out; echo err >&2"])
    cleanup.append(container["Id"])
    stream = api.attach(container["Id"], stream=True, logs=True, demux=True)
    api.start(container["Id"])
    parts = list(stream)
    assert (b"out\n", None) in parts and (None, b"err\n") in parts


def test_client_killed_mid_attach_leaves_container_running(
    client: docker.DockerClient, api: docker.APIClient, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "while true; do echo tick; sleep 0.01; done"], detach=True
    )
    cleanup.append(container.id)
    sock = api.attach_socket(container.id, params={"stdout": 1, "stream": 1})
    raw: socket.socket = sock._sock
    assert raw.recv(64)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()
    assert client.ping()
    container.reload()
    assert container.status == "running"
    again = api.attach_socket(container.id, params={"stdout": 1, "stream": 1})
    assert again._sock.recv(64)
    again._sock.close()
