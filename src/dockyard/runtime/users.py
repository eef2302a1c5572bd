"""Resolve Docker's ``User`` setting against a container's /etc/passwd and /etc/group.

Accepted forms, as Docker accepts them: ``""`` (root), ``name``, ``uid``, ``name:group``,
``uid:gid``, ``name:gid``, ``uid:group``. Names must exist in the image's files; numeric
ids need not. Supplementary groups are the groups listing the user, plus ``group_add``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.errors import InvalidArgument

__all__ = ["ResolvedUser", "resolve_user"]

_MAX_ID = 65535  # within the tenant's 65536-id range


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def _entries(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def _parse_id(text: str) -> int | None:
    if text.isdecimal():
        value = int(text)
        if value > _MAX_ID:
            raise InvalidArgument(f"id {value} is outside the container's range (0-{_MAX_ID})")
        return value
    return None


def resolve_user(
    spec: str, *, passwd: str, group: str, group_add: tuple[str, ...] = ()
) -> ResolvedUser:
    """Resolve ``spec`` to container-side ids; raise InvalidArgument if a name is unknown."""
    users = _entries(passwd, 7)
    groups = _entries(group, 4)
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"

    uid = _parse_id(user_part)
    name = ""
    gid: int | None = None
    home = "/"
    for row in users:
        if (uid is None and row[0] == user_part) or (uid is not None and row[2] == str(uid)):
            name = row[0]
            uid = int(row[2]) if row[2].isdecimal() else uid
            gid = int(row[3]) if row[3].isdecimal() else None
            home = row[5] or "/"
            break
    if uid is None:
        raise InvalidArgument(
            f"unable to find user {user_part}: no matching entries in passwd file"
        )
    if group_part:
        gid = _lookup_group(group_part, groups)
    if gid is None:
        gid = 0  # a uid unknown to passwd runs with group 0, as in Docker
    extra: list[int] = []
    if name and not group_part:  # an explicit group means no groups from /etc/group
        extra.extend(
            int(row[2]) for row in groups if name in row[3].split(",") and row[2].isdecimal()
        )
    extra.extend(_lookup_group(g, groups) for g in group_add)
    ordered = tuple(dict.fromkeys(g for g in extra if g != gid))
    return ResolvedUser(uid=uid, gid=gid, additional_gids=ordered, home=home)


def _lookup_group(text: str, groups: list[list[str]]) -> int:
    numeric = _parse_id(text)
    if numeric is not None:
        return numeric
    for row in groups:
        if row[0] == text and row[2].isdecimal():
            return int(row[2])
    raise InvalidArgument(f"unable to find group {text}: no matching entries in group file")
