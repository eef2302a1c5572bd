"""Health checks: HEALTHCHECK from the image and the --health-* flags, run by the agent."""

from __future__ import annotations

import json
import time
import uuid

import docker
import pytest
from docker.types import Healthcheck
from engine_image_builders import busybox_rootfs

from dockyard.testing.cloud import DockerCli

MS = 1_000_000


def health(container) -> dict | None:  # type: ignore[no-untyped-def]
    container.reload()
    return container.attrs["State"].get("Health")


def wait_health(container, status: str, timeout: float = 20.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = health(container)
        if seen is not None and seen["Status"] == status:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"health never became {status}: {seen}")


def test_unhealthy_then_healthy_with_log_ps_and_filter(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    container = client.containers.run(
        "busybox",
        ["sleep", "600"],
        detach=True,
        healthcheck=Healthcheck(
            test=["CMD-SHELL", "echo probing; test -e /tmp/ok"],
            interval=200 * MS,
            timeout=5000 * MS,
            retries=2,
        ),
    )
    cleanup.append(container.id)
    assert health(container)["Status"] in ("starting", "unhealthy")
    unhealthy = wait_health(container, "unhealthy")
    assert unhealthy["FailingStreak"] >= 2
    assert unhealthy["Log"][-1]["ExitCode"] == 1
    assert unhealthy["Log"][-1]["Output"] == "probing\n"
    listed = client.api.containers(filters={"health": "unhealthy"})
    assert [c["Id"] for c in listed] == [container.id]
    assert listed[0]["Status"].endswith("(unhealthy)")

    container.exec_run(["touch", "/tmp/ok"])
    healthy = wait_health(container, "healthy")
    assert healthy["FailingStreak"] == 0
    assert len(healthy["Log"]) <= 5
    assert [c["Id"] for c in client.api.containers(filters={"health": "healthy"})] == [container.id]
    assert container.id not in [c["Id"] for c in client.api.containers(filters={"health": "none"})]
    with pytest.raises(docker.errors.APIError) as bad:
        client.api.containers(filters={"health": "sickly"})
    assert bad.value.status_code == 400


def test_probe_timeout_counts_as_failure(client: docker.DockerClient, cleanup: list[str]) -> None:
    container = client.containers.run(
        "busybox",
        ["sleep", "600"],
        detach=True,
        healthcheck=Healthcheck(
            test=["CMD", "sleep", "30"], interval=200 * MS, timeout=300 * MS, retries=1
        ),
    )
    cleanup.append(container.id)
    state = wait_health(container, "unhealthy")
    assert state["Log"][-1]["ExitCode"] == -1
    assert "exceeded timeout" in state["Log"][-1]["Output"]
    # The timed-out probes were killed: only the container's own sleep runs.
    processes = container.top()["Processes"]
    assert [p[-1] for p in processes] == ["sleep 600"]


def test_image_healthcheck_and_no_healthcheck(
    client: docker.DockerClient, cleanup: list[str]
) -> None:
    repo = f"dyt-health-{uuid.uuid4().hex[:8]}"
    client.api.import_image_from_data(
        busybox_rootfs(),
        repository=repo,
        tag="1",
        changes=[
            "HEALTHCHECK --interval=200ms --retries=1 CMD test -e /bin/sh",
            'CMD ["sleep", "600"]',
        ],
    )
    try:
        checked = client.containers.run(f"{repo}:1", detach=True)
        cleanup.append(checked.id)
        wait_health(checked, "healthy")
        unchecked = client.containers.run(
            f"{repo}:1", detach=True, healthcheck=Healthcheck(test=["NONE"])
        )
        cleanup.append(unchecked.id)
        time.sleep(0.6)
        assert health(unchecked) is None
        assert unchecked.id in [c["Id"] for c in client.api.containers(filters={"health": "none"})]
    finally:
        for ref in cleanup:
            client.api.remove_container(ref, force=True)
        cleanup.clear()
        client.images.remove(f"{repo}:1", force=True)


def test_health_flags_with_the_cli(cli: DockerCli) -> None:
    name = f"dyt-hc-{uuid.uuid4().hex[:8]}"
    cli.run(
        "run",
        "-d",
        "--name",
        name,
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "600",
    )
    try:
        deadline = time.monotonic() + 20
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            out = cli.run("inspect", "--format", "{{json .State.Health}}", name).stdout
            status = json.loads(out)["Status"]
            time.sleep(0.1)
        assert status == "healthy"
        ps = cli.run("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
        assert ps.strip().endswith("(healthy)")
        config = json.loads(
            cli.run("inspect", "--format", "{{json .Config.Healthcheck}}", name).stdout
        )
        assert config["Test"] == ["CMD-SHELL", "true"]
        assert config["Interval"] == 200 * MS
    finally:
        cli.run("rm", "-f", name, check=False)


def test_bad_healthcheck_is_refused(api: docker.APIClient) -> None:
    with pytest.raises(docker.errors.APIError) as refused:
        api.create_container(
            "busybox", ["true"], healthcheck={"Test": ["CMD", "true"], "Interval": 10}
        )
    assert refused.value.status_code == 400
    assert "cannot be less than 1ms" in str(refused.value.explanation)
