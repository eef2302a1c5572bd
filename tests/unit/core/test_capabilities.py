"""Capability names and Docker's ``--cap-add``/``--cap-drop`` rules, with Dockyard's limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core import capabilities
from dockyard.core.capabilities import (
    ALL,
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    NEVER_GRANTED,
    bitmask,
    effective,
    normalize,
)
from dockyard.core.errors import InvalidArgument, PermissionDenied

NOTHING: frozenset[str] = frozenset()
DOCKER_DEFAULTS = (
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


def test_public_surface() -> None:
    assert set(capabilities.__all__) == {
        "ALL",
        "ALL_CAPABILITIES",
        "DEFAULT_CAPABILITIES",
        "NEVER_GRANTED",
        "bitmask",
        "effective",
        "normalize",
    }


def test_all_capabilities_follow_kernel_numbering() -> None:
    assert len(ALL_CAPABILITIES) == 41
    assert len(set(ALL_CAPABILITIES)) == 41
    assert ALL_CAPABILITIES[0] == "CAP_CHOWN"
    assert ALL_CAPABILITIES.index("CAP_NET_RAW") == 13
    assert ALL_CAPABILITIES.index("CAP_SYS_ADMIN") == 21
    assert ALL_CAPABILITIES.index("CAP_SETFCAP") == 31
    assert ALL_CAPABILITIES.index("CAP_BPF") == 39
    assert ALL_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


def test_defaults_are_dockers() -> None:
    assert DEFAULT_CAPABILITIES == DOCKER_DEFAULTS
    assert set(DEFAULT_CAPABILITIES) <= set(ALL_CAPABILITIES)


def test_never_granted_are_the_host_level_capabilities() -> None:
    assert {
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
    } == NEVER_GRANTED
    assert not NEVER_GRANTED & set(DEFAULT_CAPABILITIES)


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("chown", "CAP_CHOWN"),
        ("CHOWN", "CAP_CHOWN"),
        ("CAP_CHOWN", "CAP_CHOWN"),
        ("cap_chown", "CAP_CHOWN"),
        ("Net_Admin", "CAP_NET_ADMIN"),
        ("checkpoint_restore", "CAP_CHECKPOINT_RESTORE"),
        ("ALL", ALL),
        ("all", ALL),
    ],
)
def test_normalize_accepts_dockers_spellings(given_name: str, expected: str) -> None:
    assert normalize(given_name) == expected


@pytest.mark.parametrize(
    ("given_name", "message"),
    [
        ("FOO", 'unknown capability: "CAP_FOO"'),
        ("cap_foo", 'unknown capability: "CAP_FOO"'),
        ("CAP_ALL", 'unknown capability: "CAP_ALL"'),
        ("", 'unknown capability: "CAP_"'),
        (" chown", 'unknown capability: "CAP_ CHOWN"'),
    ],
)
def test_normalize_rejects_unknown_names_with_dockers_message(
    given_name: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        normalize(given_name)
    assert info.value.message == message


def test_no_change_gives_the_defaults() -> None:
    assert effective(add=[], drop=[], allowed_add=NOTHING) == DEFAULT_CAPABILITIES


def test_drop_removes_from_the_defaults_in_order() -> None:
    result = effective(add=[], drop=["net_raw", "CAP_MKNOD"], allowed_add=NOTHING)
    assert result == tuple(c for c in DOCKER_DEFAULTS if c not in {"CAP_NET_RAW", "CAP_MKNOD"})


def test_drop_all_then_add() -> None:
    assert effective(add=["chown", "KILL"], drop=["ALL"], allowed_add=NOTHING) == (
        "CAP_CHOWN",
        "CAP_KILL",
    )
    assert effective(add=[], drop=["all"], allowed_add=NOTHING) == ()


def test_add_allowed_capability_goes_after_the_defaults() -> None:
    result = effective(add=["net_admin"], drop=[], allowed_add=frozenset({"CAP_NET_ADMIN"}))
    assert result == (*DOCKER_DEFAULTS, "CAP_NET_ADMIN")


def test_allowed_add_accepts_short_names() -> None:
    assert effective(add=["NET_ADMIN"], drop=[], allowed_add=frozenset({"net_admin"}))[-1] == (
        "CAP_NET_ADMIN"
    )


def test_adding_a_default_needs_no_permission_and_is_not_repeated() -> None:
    assert effective(add=["CHOWN", "chown"], drop=[], allowed_add=NOTHING) == DEFAULT_CAPABILITIES


def test_add_wins_over_drop_of_the_same_capability() -> None:
    result = effective(add=["NET_RAW"], drop=["NET_RAW"], allowed_add=NOTHING)
    assert "CAP_NET_RAW" in result
    assert len(result) == len(DEFAULT_CAPABILITIES)


def test_add_all_with_everything_allowed_still_needs_host_level_ones_dropped() -> None:
    with pytest.raises(PermissionDenied):
        effective(add=["ALL"], drop=[], allowed_add=frozenset({"ALL"}))
    result = effective(add=["ALL"], drop=sorted(NEVER_GRANTED), allowed_add=frozenset({"ALL"}))
    assert set(result) == set(ALL_CAPABILITIES) - NEVER_GRANTED
    assert list(result) == sorted(result, key=ALL_CAPABILITIES.index)


@pytest.mark.parametrize("cap", sorted(NEVER_GRANTED))
def test_host_level_capabilities_are_refused_even_if_allowed(cap: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        effective(add=[cap.lower()], drop=[], allowed_add=frozenset(ALL_CAPABILITIES))
    assert info.value.message == (
        f"capability {cap} is not allowed on Dockyard: containers never get host-level privileges"
    )


def test_sys_admin_message() -> None:
    with pytest.raises(PermissionDenied) as info:
        effective(add=["SYS_ADMIN"], drop=[], allowed_add=NOTHING)
    assert info.value.message == (
        "capability CAP_SYS_ADMIN is not allowed on Dockyard: "
        "containers never get host-level privileges"
    )
    assert info.value.kind == "permission_denied"


def test_capability_outside_allowed_add_names_what_may_be_added() -> None:
    with pytest.raises(PermissionDenied) as info:
        effective(add=["NET_ADMIN"], drop=[], allowed_add=frozenset({"CAP_IPC_LOCK"}))
    assert info.value.message == (
        "capability CAP_NET_ADMIN is not allowed on Dockyard: "
        "beyond Docker's defaults only CAP_IPC_LOCK can be added"
    )
    with pytest.raises(PermissionDenied) as info:
        effective(add=["NET_ADMIN"], drop=[], allowed_add=NOTHING)
    assert info.value.message.endswith("no capability can be added beyond Docker's defaults")


def test_add_all_is_refused_with_the_first_capability_it_would_wrongly_grant() -> None:
    with pytest.raises(PermissionDenied) as info:
        effective(add=["ALL"], drop=[], allowed_add=NOTHING)
    assert info.value.message.startswith(
        "capability CAP_DAC_READ_SEARCH (requested through ALL) is not allowed on Dockyard"
    )


def test_unknown_names_in_add_or_drop_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_FOO"'):
        effective(add=["foo"], drop=[], allowed_add=NOTHING)
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_BAR"'):
        effective(add=[], drop=["bar"], allowed_add=NOTHING)


def test_bitmask_matches_proc_status_of_a_docker_container() -> None:
    # CapEff of a default `docker run` container.
    assert bitmask(DEFAULT_CAPABILITIES) == 0x00000000A80425FB
    assert bitmask([]) == 0
    assert bitmask(["chown"]) == 1
    assert bitmask(["CAP_CHECKPOINT_RESTORE"]) == 1 << 40
    assert bitmask(["ALL"]) == (1 << 41) - 1


def test_bitmask_rejects_unknown_names() -> None:
    with pytest.raises(InvalidArgument):
        bitmask(["ALL", "nope"])


_GRANTABLE = sorted(set(ALL_CAPABILITIES) - NEVER_GRANTED)


@given(
    add=st.lists(st.sampled_from(ALL_CAPABILITIES), max_size=6),
    drop=st.lists(st.sampled_from([*ALL_CAPABILITIES, ALL]), max_size=6),
    allowed=st.frozensets(st.sampled_from(_GRANTABLE)),
)
def test_result_never_holds_a_capability_it_may_not(
    add: list[str], drop: list[str], allowed: frozenset[str]
) -> None:
    try:
        result = effective(add=add, drop=drop, allowed_add=allowed)
    except PermissionDenied:
        assert set(add) - set(DEFAULT_CAPABILITIES) - allowed
        return
    assert len(result) == len(set(result))
    assert not set(result) & NEVER_GRANTED
    assert set(result) <= set(DEFAULT_CAPABILITIES) | allowed
    assert set(add) <= set(result)
