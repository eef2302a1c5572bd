"""Linux capabilities for containers: names, Docker's defaults and ``--cap-add/--cap-drop``.

Dockyard follows Docker's rules (``oci/caps`` in moby) so that a ``docker run`` command means
the same here, with one difference: some capabilities are never granted. Those in
:data:`NEVER_GRANTED` reach past the container into the host kernel, and the seccomp profile
(:mod:`dockyard.runtime.seccomp`) is written on the promise that no container holds them.
Other capabilities can be added when the operator lists them in ``allowed_add``.

Errors: :class:`~dockyard.core.errors.InvalidArgument` for a name the kernel does not know
(with Docker's wording, ``unknown capability: "CAP_FOO"``),
:class:`~dockyard.core.errors.PermissionDenied` for a capability Dockyard will not grant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from dockyard.core.errors import InvalidArgument, PermissionDenied

__all__ = [
    "ALL",
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "NEVER_GRANTED",
    "bitmask",
    "effective",
    "normalize",
]

ALL: Final = "ALL"

# Indexed by capability number (include/uapi/linux/capability.h), up to CAP_LAST_CAP in
# Linux 5.9 and later.
ALL_CAPABILITIES: Final = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

_NUMBER: Final = {name: number for number, name in enumerate(ALL_CAPABILITIES)}

# Docker's default set, in Docker's order (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES: Final = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Capabilities no container gets, whatever the operator allows: each opens syscalls the
# seccomp profile refuses on the assumption that nobody holds them, or acts on the host
# (modules, clock, reboot, kernel log, raw I/O, accounting, BPF, perf).
NEVER_GRANTED: Final = frozenset(
    {
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SYS_MODULE",
        "CAP_SYS_TIME",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYSLOG",
        "CAP_SYS_RAWIO",
        "CAP_SYS_PACCT",
        "CAP_BPF",
        "CAP_PERFMON",
    }
)


def normalize(name: str) -> str:
    """Docker's spelling of a capability: ``chown``, ``CHOWN`` and ``CAP_CHOWN`` all give
    ``CAP_CHOWN``; ``all`` gives :data:`ALL`.

    Raises InvalidArgument for a name the kernel does not know.
    """
    upper = name.upper()
    if upper == ALL:
        return ALL
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in _NUMBER:
        raise InvalidArgument(f'unknown capability: "{upper}"')
    return upper


def _refusal(cap: str, permitted: Iterable[str], *, via_all: bool) -> PermissionDenied:
    how = " (requested through ALL)" if via_all else ""
    if cap in NEVER_GRANTED:
        why = "containers never get host-level privileges"
    else:
        extra = sorted(set(permitted) - set(DEFAULT_CAPABILITIES), key=_NUMBER.__getitem__)
        if extra:
            why = "beyond Docker's defaults only " + ", ".join(extra) + " can be added"
        else:
            why = "no capability can be added beyond Docker's defaults"
    return PermissionDenied(f"capability {cap}{how} is not allowed on Dockyard: {why}")


def effective(
    *, add: Sequence[str], drop: Sequence[str], allowed_add: frozenset[str]
) -> tuple[str, ...]:
    """The capabilities a container gets for ``--cap-add`` ``add`` and ``--cap-drop`` ``drop``.

    Docker's rules, in order: ``add`` containing ALL means every capability except those
    dropped; otherwise ``drop`` containing ALL means exactly ``add``; otherwise the defaults
    minus ``drop``, plus ``add`` (so a capability both added and dropped is kept). The result
    keeps Docker's order (defaults first, then additions) without repeats.

    A capability may end up in the result only if it is a default or is in ``allowed_add``
    (where ALL stands for every capability), and never if it is in :data:`NEVER_GRANTED`.
    Dropping is always allowed.

    Raises InvalidArgument for an unknown name (in ``add``, ``drop`` or ``allowed_add``),
    PermissionDenied for a capability that may not be granted.
    """
    adds = [normalize(c) for c in add]
    drops = [normalize(c) for c in drop]
    allowed = {normalize(c) for c in allowed_add}
    if ALL in allowed:
        allowed = set(ALL_CAPABILITIES)
    permitted = frozenset(allowed | set(DEFAULT_CAPABILITIES))

    caps: list[str]
    if ALL in adds:
        caps = [c for c in ALL_CAPABILITIES if c not in drops]
    elif ALL in drops:
        caps = list(adds)
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    result = tuple(dict.fromkeys(caps))

    for cap in result:
        if cap in NEVER_GRANTED or cap not in permitted:
            raise _refusal(cap, permitted, via_all=cap not in adds)
    return result


def bitmask(caps: Iterable[str]) -> int:
    """The kernel's bit set for ``caps``, as ``CapEff`` in ``/proc/<pid>/status`` shows it."""
    mask = 0
    for cap in caps:
        name = normalize(cap)
        mask |= (1 << len(ALL_CAPABILITIES)) - 1 if name == ALL else 1 << _NUMBER[name]
    return mask
