"""tmpfs mount options: Docker's defaults and what a tenant may set.

Validated at create by the controller and applied at start by the agent, so both use this.
"""

from __future__ import annotations

from dockyard.core.errors import InvalidArgument

__all__ = ["tmpfs_options"]


def tmpfs_options(options: tuple[str, ...]) -> tuple[str, ...]:
    """Docker's tmpfs defaults (noexec, nosuid, nodev) overridden by the user's options."""
    allowed = {"size", "mode", "nr_inodes", "uid", "gid"}
    flags = {
        "ro",
        "rw",
        "exec",
        "noexec",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "atime",
        "noatime",
        "relatime",
        "strictatime",
        "nodiratime",
    }
    chosen = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}
    extra: list[str] = []
    for option in options:
        key = option.split("=", 1)[0]
        if option in flags:
            bare = option.removeprefix("no")
            if bare in chosen:
                chosen[bare] = option
            else:
                extra.append(option)
        elif key in allowed:
            extra.append(option)
        else:
            raise InvalidArgument(f"invalid tmpfs option {option!r}")
    return (*chosen.values(), *extra)
