"""Where a container's volumes and tmpfs mounts come from.

Sources, as Docker accepts them: ``Binds`` (``name:/path[:ro]``; a bare ``/path`` is an
anonymous volume), ``Mounts`` (type ``volume`` or ``tmpfs``), ``Tmpfs`` and the image's
``Volumes`` (anonymous volumes unless something is mounted there). Bind mounts of host
paths are refused: the host's files are not the tenant's; so are shared or slave mount
propagation and volume driver options that have the host mount something.
"""

from __future__ import annotations

import posixpath

from dockyard.controller.admission import check_mount_propagation, check_volume_options
from dockyard.core.errors import InvalidArgument, PermissionDenied
from dockyard.core.ids import new_id, validate_name
from dockyard.core.models import ContainerConfig, HostConfig
from dockyard.core.protocol import MountSpec
from dockyard.core.tmpfs import tmpfs_options

__all__ = ["plan_mounts"]

_PROPAGATION_MODES = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_BIND_MODES = {"ro", "rw", "z", "Z", "nocopy", *_PROPAGATION_MODES}


def _target(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount config: mount path must be absolute: {path!r}")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return clean


def _parse_bind(spec: str) -> tuple[str, str, bool, bool]:
    """``name:/path[:mode]`` or ``/path`` -> (name, target, read_only, copy)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", _target(parts[0]), False, True
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    if not modes <= _BIND_MODES or {"ro", "rw"} <= modes:
        raise InvalidArgument(f"invalid mode: {parts[2]}")
    if source.startswith(("/", ".", "~")):
        raise PermissionDenied(
            f"bind mount of host path {source!r} is not allowed on Dockyard: containers "
            "only see their own files and volumes (use a named volume)"
        )
    for mode in modes & _PROPAGATION_MODES:
        check_mount_propagation(mode)
    validate_name(source, what="volume")
    return source, _target(target), "ro" in modes, "nocopy" not in modes


def plan_mounts(
    config: ContainerConfig, host_config: HostConfig
) -> tuple[list[MountSpec], list[str]]:
    """All mounts for the container and the names of the anonymous volumes to create."""
    mounts: dict[str, MountSpec] = {}
    anonymous: list[str] = []

    def add(spec: MountSpec) -> None:
        if spec.target in mounts:
            raise InvalidArgument(f"Duplicate mount point: {spec.target}")
        mounts[spec.target] = spec

    for bind in host_config.binds:
        name, target, read_only, copy = _parse_bind(bind)
        if not name:
            name = new_id()
            anonymous.append(name)
        add(MountSpec(type="volume", source=name, target=target, read_only=read_only, copy_up=copy))
    for mount in host_config.mounts:
        target = _target(mount.target)
        if mount.type == "volume":
            check_mount_propagation(mount.propagation)
            check_volume_options(mount.volume_driver, mount.volume_options)
            name = mount.source
            if name:
                validate_name(name, what="volume")
            else:
                name = new_id()
                anonymous.append(name)
            add(
                MountSpec(
                    type="volume",
                    source=name,
                    target=target,
                    read_only=mount.read_only,
                    copy_up=not mount.volume_nocopy,
                )
            )
        elif mount.type == "tmpfs":
            tmpfs_options(mount.options)
            add(
                MountSpec(
                    type="tmpfs", target=target, read_only=mount.read_only, options=mount.options
                )
            )
        elif mount.type == "bind":
            raise PermissionDenied(
                f"bind mount of host path {mount.source!r} is not allowed on Dockyard: "
                "containers only see their own files and volumes (use a named volume)"
            )
        else:
            raise InvalidArgument(f"mount type {mount.type!r} is not supported")
    for path, options in host_config.tmpfs.items():
        opts = tuple(o for o in options.split(",") if o)
        tmpfs_options(opts)  # refuse bad options now, not at start
        add(MountSpec(type="tmpfs", target=_target(path), options=opts))
    for path in config.volumes:
        target = _target(path)
        if target not in mounts:
            name = new_id()
            anonymous.append(name)
            add(MountSpec(type="volume", source=name, target=target))
    return list(mounts.values()), anonymous
