"""Merging a create request with its image config, by Docker's rules."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.controller import merge
from dockyard.controller.merge import build_process, merge_config
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import ContainerConfig, Healthcheck, HostConfig
from dockyard.core.protocol import ProcessSpec

SECOND = 1_000_000_000


def image(**config: Any) -> dict[str, Any]:
    return {"architecture": "amd64", "os": "linux", "config": config}


def user(**fields: Any) -> ContainerConfig:
    return ContainerConfig(image="app", **fields)


def test_public_surface() -> None:
    assert set(merge.__all__) == {"build_process", "merge_config"}


def test_user_env_first_then_the_images_missing_keys() -> None:
    merged = merge_config(
        user(env=("B=user", "C=3", "FLAG")),
        image(Env=["PATH=/usr/bin:/bin", "B=image", "FLAG=1", "D=4"]),
    )
    assert merged.env == ("B=user", "C=3", "FLAG", "PATH=/usr/bin:/bin", "D=4")


def test_image_env_used_when_user_gives_none() -> None:
    assert merge_config(user(), image(Env=["A=1", "B=2"])).env == ("A=1", "B=2")


def test_image_cmd_and_entrypoint_when_user_gives_neither() -> None:
    merged = merge_config(
        user(), image(Entrypoint=["/entry.sh"], Cmd=["serve", "--port=80"], ArgsEscaped=True)
    )
    assert merged.entrypoint == ("/entry.sh",)
    assert merged.cmd == ("serve", "--port=80")
    assert merged.args_escaped


def test_user_cmd_replaces_the_image_cmd_and_keeps_its_entrypoint() -> None:
    merged = merge_config(user(cmd=("sh",)), image(Entrypoint=["/entry.sh"], Cmd=["serve"]))
    assert merged.entrypoint == ("/entry.sh",)
    assert merged.cmd == ("sh",)


def test_user_entrypoint_drops_the_image_cmd() -> None:
    merged = merge_config(user(entrypoint=("top",)), image(Entrypoint=["/entry.sh"], Cmd=["x"]))
    assert merged.entrypoint == ("top",)
    assert merged.cmd is None
    process = build_process(merged, HostConfig())
    assert process.args == ("top",)


def test_user_entrypoint_and_cmd() -> None:
    merged = merge_config(
        user(entrypoint=("python",), cmd=("-V",)), image(Entrypoint=["/e"], Cmd=["x"])
    )
    assert build_process(merged, HostConfig()).args == ("python", "-V")


def test_empty_entrypoint_means_none_and_does_not_inherit_the_image_cmd() -> None:
    # `docker run --entrypoint "" image` sends Entrypoint [""]: no entrypoint, and (as
    # in Docker's merge) the image's Cmd is not inherited either.
    merged = merge_config(user(entrypoint=()), image(Entrypoint=["/entry.sh"], Cmd=["serve"]))
    assert not merged.entrypoint
    assert not merged.cmd
    with pytest.raises(InvalidArgument, match=r"^no command specified$"):
        build_process(merged, HostConfig())


def test_empty_entrypoint_with_a_user_cmd_runs_the_cmd() -> None:
    merged = merge_config(user(entrypoint=(), cmd=("ls", "-l")), image(Entrypoint=["/e"]))
    assert build_process(merged, HostConfig()).args == ("ls", "-l")


def test_old_images_with_string_cmd_and_entrypoint() -> None:
    merged = merge_config(user(), image(Entrypoint="/bin/sh -c", Cmd="echo hi"))
    assert merged.entrypoint == ("/bin/sh -c",)
    assert merged.cmd == ("echo hi",)


def test_scalars_fall_back_to_the_image() -> None:
    merged = merge_config(
        user(),
        image(User="app", WorkingDir="/srv", StopSignal="SIGQUIT", Shell=["/bin/bash", "-c"]),
    )
    assert (merged.user, merged.working_dir, merged.stop_signal) == ("app", "/srv", "SIGQUIT")
    assert merged.shell == ("/bin/bash", "-c")
    given = merge_config(
        user(user="root", working_dir="/w", stop_signal="SIGINT", shell=("sh",)),
        image(User="app", WorkingDir="/srv", StopSignal="SIGQUIT", Shell=["/bin/bash"]),
    )
    assert (given.user, given.working_dir, given.stop_signal) == ("root", "/w", "SIGINT")
    assert given.shell == ("sh",)


def test_labels_exposed_ports_and_volumes_are_unions() -> None:
    merged = merge_config(
        user(
            labels={"a": "user", "u": "1"},
            exposed_ports=("8080/tcp", "80/tcp"),
            volumes=("/cache",),
        ),
        image(
            Labels={"a": "image", "i": "2"},
            ExposedPorts={"80/tcp": {}, "53/udp": {}},
            Volumes={"/data": {}, "/cache": {}},
        ),
    )
    assert merged.labels == {"a": "user", "u": "1", "i": "2"}
    assert sorted(merged.exposed_ports) == ["53/udp", "80/tcp", "8080/tcp"]
    assert sorted(merged.volumes) == ["/cache", "/data"]


def test_healthcheck_from_the_image() -> None:
    merged = merge_config(
        user(), image(Healthcheck={"Test": ["CMD", "curl", "-f", "x"], "Interval": 5 * SECOND})
    )
    assert merged.healthcheck == Healthcheck(test=("CMD", "curl", "-f", "x"), interval=5 * SECOND)


def test_healthcheck_fields_the_user_leaves_zero_come_from_the_image() -> None:
    merged = merge_config(
        user(healthcheck=Healthcheck(interval=2 * SECOND, retries=7)),
        image(
            Healthcheck={
                "Test": ["CMD-SHELL", "true"],
                "Interval": 30 * SECOND,
                "Timeout": 3 * SECOND,
                "StartPeriod": 10 * SECOND,
                "Retries": 3,
            }
        ),
    )
    assert merged.healthcheck == Healthcheck(
        test=("CMD-SHELL", "true"),
        interval=2 * SECOND,
        timeout=3 * SECOND,
        start_period=10 * SECOND,
        retries=7,
    )


def test_user_healthcheck_without_image_healthcheck() -> None:
    mine = Healthcheck(test=("NONE",))
    assert merge_config(user(healthcheck=mine), image()).healthcheck == mine


def test_on_build_comes_from_the_image() -> None:
    assert merge_config(user(), image(OnBuild=["RUN make"])).on_build == ("RUN make",)
    assert merge_config(user(), image(OnBuild=None)).on_build is None


def test_image_without_config_section_changes_nothing_but_copies() -> None:
    mine = user(cmd=("true",), env=("A=1",), labels={"x": "y"})
    merged = merge_config(mine, {"os": "linux"})
    assert merged == mine
    assert merged is not mine


def test_the_users_config_is_not_modified() -> None:
    mine = user(env=("A=1",), labels={"x": "y"})
    merge_config(mine, image(Env=["B=2"], Labels={"z": "w"}, Cmd=["sh"]))
    assert mine == user(env=("A=1",), labels={"x": "y"})


def test_build_process_carries_the_effective_config() -> None:
    config = user(
        cmd=("sleep", "1"),
        env=("A=1",),
        working_dir="/srv",
        user="1000:1000",
        tty=True,
        open_stdin=True,
        stdin_once=True,
    )
    process = build_process(config, HostConfig(group_add=("audio", "42")))
    assert process == ProcessSpec(
        args=("sleep", "1"),
        env=("A=1",),
        cwd="/srv",
        user="1000:1000",
        tty=True,
        open_stdin=True,
        stdin_once=True,
        group_add=("audio", "42"),
    )


def test_build_process_defaults_the_workdir_to_root() -> None:
    assert build_process(user(cmd=("true",)), HostConfig()).cwd == "/"


@pytest.mark.parametrize("workdir", ["srv", "./srv", "~/x"])
def test_relative_workdir_is_refused(workdir: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        build_process(user(cmd=("true",), working_dir=workdir), HostConfig())
    assert info.value.message == (
        f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
    )


def test_no_command_at_all() -> None:
    with pytest.raises(InvalidArgument, match=r"^no command specified$"):
        build_process(merge_config(user(), image()), HostConfig())
