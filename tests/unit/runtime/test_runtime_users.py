"""Docker's ``User`` resolved against the image's /etc/passwd and /etc/group."""

from __future__ import annotations

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.runtime.users import ResolvedUser, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1001:App User:/home/app:/bin/sh
nohome:x:1002:1002:::/bin/sh
broken line without fields
"""
GROUP = """\
root:x:0:
daemon:x:1:
audio:x:29:app,other
app:x:1001:
staff:x:50:app
video:x:44:other
"""


def resolve(spec: str, group_add: tuple[str, ...] = ()) -> ResolvedUser:
    return resolve_user(spec, passwd=PASSWD, group=GROUP, group_add=group_add)


def test_empty_is_root() -> None:
    assert resolve("") == ResolvedUser(uid=0, gid=0, additional_gids=(), home="/root")


def test_name() -> None:
    assert resolve("app") == ResolvedUser(
        uid=1000, gid=1001, additional_gids=(29, 50), home="/home/app"
    )


def test_uid_known_to_passwd() -> None:
    assert resolve("1000") == resolve("app")
    assert resolve("0").home == "/root"


def test_uid_unknown_to_passwd() -> None:
    # Docker (moby/sys/user GetExecUser with no defaults): a numeric uid without a passwd
    # entry runs with gid 0 and home "/".
    assert resolve("4242") == ResolvedUser(uid=4242, gid=0, additional_gids=(), home="/")


def test_uid_and_gid() -> None:
    assert resolve("4242:4343") == ResolvedUser(uid=4242, gid=4343, additional_gids=(), home="/")
    assert resolve("1000:44").gid == 44


def test_name_and_group() -> None:
    user = resolve("app:video")
    assert (user.uid, user.gid, user.home) == (1000, 44, "/home/app")


def test_name_and_gid_and_uid_and_group() -> None:
    assert resolve("app:7").gid == 7
    user = resolve("4242:audio")
    assert (user.uid, user.gid) == (4242, 29)


def test_group_without_user_part_means_root() -> None:
    user = resolve(":audio")
    assert (user.uid, user.gid) == (0, 29)


def test_missing_home_is_root_dir() -> None:
    assert resolve("nohome").home == "/"


@pytest.mark.parametrize("spec", ["nobody", "nobody:audio", "APP", "app "])
def test_unknown_user_names(spec: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve(spec)
    user = spec.partition(":")[0]
    assert info.value.message == f"unable to find user {user}: no matching entries in passwd file"


@pytest.mark.parametrize("spec", ["app:nogroup", "0:wheel"])
def test_unknown_group_names(spec: str) -> None:
    group = spec.partition(":")[2]
    with pytest.raises(InvalidArgument) as info:
        resolve(spec)
    assert info.value.message == f"unable to find group {group}: no matching entries in group file"


@pytest.mark.parametrize("spec", ["65536", "0:65536", "99999999999"])
def test_ids_outside_the_tenants_range(spec: str) -> None:
    with pytest.raises(InvalidArgument, match="outside the container's range"):
        resolve(spec)


def test_largest_id_in_range() -> None:
    assert resolve("65535:65535").uid == 65535


def test_supplementary_groups_from_group_file_and_group_add() -> None:
    user = resolve("app", group_add=("video", "4000", "audio"))
    assert user.additional_gids == (29, 50, 44, 4000)


def test_explicit_group_gets_no_supplementary_groups_from_the_group_file() -> None:
    # moby/sys/user GetExecUser: "Supplementary group ids only make sense if in the
    # implicit form" -- `-u app:video` runs with gid 44 and no other group of app's.
    assert resolve("app:video").additional_gids == ()
    assert resolve("app:video", group_add=("audio",)).additional_gids == (29,)


def test_primary_gid_is_not_repeated_as_supplementary() -> None:
    assert resolve("app", group_add=("app", "1001")).additional_gids == (29, 50)


def test_group_add_for_a_user_without_passwd_entry() -> None:
    assert resolve("4242", group_add=("audio",)).additional_gids == (29,)


def test_unknown_group_add() -> None:
    with pytest.raises(InvalidArgument, match="unable to find group nope"):
        resolve("app", group_add=("nope",))


def test_images_without_passwd_or_group_files() -> None:
    assert resolve_user("", passwd="", group="") == ResolvedUser(0, 0, (), "/")
    assert resolve_user("5:6", passwd="", group="").gid == 6
    with pytest.raises(InvalidArgument):
        resolve_user("app", passwd="", group="")
