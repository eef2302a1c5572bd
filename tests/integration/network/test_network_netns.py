"""Named namespaces and work inside them (dockyard.network.netns) on the real kernel."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from network_helpers import netns_names, run_cmd

from dockyard.core.errors import AlreadyExists, FailedPrecondition
from dockyard.network.netns import (
    NETNS_RUN_DIR,
    create_named_netns,
    in_named_netns,
    remove_named_netns,
    socket_in_named_netns,
    write_sysctl,
)
from dockyard.network.rtnl import Rtnl


def _own() -> str:
    return os.readlink("/proc/thread-self/ns/net")


@pytest.fixture
def path() -> Iterator[Path]:
    where = NETNS_RUN_DIR / ("dykt-" + secrets.token_hex(4))
    yield where
    remove_named_netns(where)
    assert where.name not in netns_names()


def test_create_use_and_remove(path: Path) -> None:
    home = _own()
    inside = create_named_netns(path, _own)
    assert inside != home
    assert _own() == home
    assert path.name in run_cmd("ip", "netns", "list").stdout
    assert in_named_netns(path, _own) == inside
    with pytest.raises(AlreadyExists):
        create_named_netns(path, _own)
    # A socket made inside stays inside: it sees the namespace's lo only.
    with Rtnl(socket_in_named_netns(path, kind=socket.SOCK_RAW)) as rtnl:
        assert [link.name for link in rtnl.links()] == ["lo"]
    # Sysctls written inside are the namespace's own.
    flag = Path("/proc/sys/net/ipv4/conf/all/accept_local")
    before = flag.read_text().strip()
    in_named_netns(path, lambda: write_sysctl(flag, "0" if before == "1" else "1"))
    assert flag.read_text().strip() == before
    remove_named_netns(path)
    remove_named_netns(path)
    assert not path.exists()


def test_errors_inside_come_home(path: Path) -> None:
    home = _own()
    create_named_netns(path, lambda: None)

    def fail() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        in_named_netns(path, fail)
    assert _own() == home
    with pytest.raises(ValueError, match="inside"):
        create_named_netns(path.with_name(path.name + "x"), fail)
    assert not path.with_name(path.name + "x").exists()
    assert _own() == home


def test_missing_namespace(path: Path) -> None:
    with pytest.raises(FailedPrecondition):
        in_named_netns(path, _own)
    with pytest.raises(FailedPrecondition):
        socket_in_named_netns(path)
