"""Merging a create request with its image's config, as Docker does.

Docker's rules (daemon/create.go): the user's value wins where given; Env merges by key
(the user's first); Labels, ExposedPorts and Volumes are unions; an Entrypoint given by the
user discards the image's Cmd; ``Entrypoint: [""]`` (an empty tuple here) means "none".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.core.models import ContainerConfig, Healthcheck, HostConfig
from dockyard.core.protocol import ProcessSpec

__all__ = ["build_process", "merge_config"]


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _healthcheck(data: Any) -> Healthcheck | None:
    if not isinstance(data, dict):
        return None
    return Healthcheck(
        test=tuple(data.get("Test") or ()),
        interval=int(data.get("Interval") or 0),
        timeout=int(data.get("Timeout") or 0),
        start_period=int(data.get("StartPeriod") or 0),
        retries=int(data.get("Retries") or 0),
    )


def merge_config(user: ContainerConfig, image_config: dict[str, Any]) -> ContainerConfig:
    """The effective Config: ``user`` completed from the image's ``config`` section."""
    image = image_config.get("config") or {}
    merged = replace(user)
    if not merged.user:
        merged.user = str(image.get("User") or "")
    user_keys = {e.split("=", 1)[0] for e in merged.env}
    merged.env = merged.env + tuple(
        e for e in image.get("Env") or () if e.split("=", 1)[0] not in user_keys
    )
    if merged.entrypoint is None:
        if not merged.cmd:
            merged.cmd = _strings(image.get("Cmd"))
            merged.args_escaped = bool(image.get("ArgsEscaped"))
        merged.entrypoint = _strings(image.get("Entrypoint"))
    if not merged.working_dir:
        merged.working_dir = str(image.get("WorkingDir") or "")
    merged.exposed_ports = tuple(
        dict.fromkeys((*(image.get("ExposedPorts") or {}), *merged.exposed_ports))
    )
    merged.volumes = tuple(dict.fromkeys((*(image.get("Volumes") or {}), *merged.volumes)))
    merged.labels = {**(image.get("Labels") or {}), **merged.labels}
    if not merged.stop_signal:
        merged.stop_signal = str(image.get("StopSignal") or "")
    image_health = _healthcheck(image.get("Healthcheck"))
    if merged.healthcheck is None:
        merged.healthcheck = image_health
    elif image_health is not None:
        hc = merged.healthcheck
        merged.healthcheck = Healthcheck(
            test=hc.test or image_health.test,
            interval=hc.interval or image_health.interval,
            timeout=hc.timeout or image_health.timeout,
            start_period=hc.start_period or image_health.start_period,
            retries=hc.retries or image_health.retries,
        )
    if merged.on_build is None and image.get("OnBuild"):
        merged.on_build = _strings(image.get("OnBuild"))
    if merged.shell is None and image.get("Shell"):
        merged.shell = _strings(image.get("Shell"))
    return merged


def build_process(config: ContainerConfig, host_config: HostConfig) -> ProcessSpec:
    """The container's main process from the effective config."""
    entrypoint = config.entrypoint or ()
    args = (*entrypoint, *(config.cmd or ()))
    if not args:
        raise InvalidArgument("no command specified")
    workdir = config.working_dir or "/"
    if not workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    return ProcessSpec(
        args=args,
        env=config.env,
        cwd=workdir,
        user=config.user,
        tty=config.tty,
        open_stdin=config.open_stdin,
        stdin_once=config.stdin_once,
        group_add=host_config.group_add,
    )
