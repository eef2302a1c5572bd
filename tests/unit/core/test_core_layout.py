"""Where one instance keeps its files and how it names kernel objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.core import layout
from dockyard.core.errors import InvalidArgument
from dockyard.core.layout import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, Layout

PATH_PROPERTIES = [
    name
    for name in dir(Layout)
    if isinstance(getattr(Layout, name), property) and name not in ("cgroup_root", "nft_table")
]


def test_public_surface() -> None:
    assert set(layout.__all__) == {"DEFAULT_RUN_DIR", "DEFAULT_STATE_DIR", "Layout"}


def test_defaults() -> None:
    default = Layout()
    assert default.state_dir == DEFAULT_STATE_DIR == Path("/var/lib/dockyard")
    assert default.run_dir == DEFAULT_RUN_DIR == Path("/run/dockyard")
    assert default.instance == "dockyard"
    assert default.cgroup_root == "/dockyard"
    assert default.nft_table == "dockyard"
    assert default.bridge_name(0) == "dockyard0"


def test_paths() -> None:
    lay = Layout(state_dir=Path("/s"), run_dir=Path("/r"), instance="dyt1")
    assert lay.database == Path("/s/controller/dockyard.db")
    assert lay.blobs_dir.parent == lay.controller_dir
    assert lay.docker_socket == Path("/r/docker.sock")
    assert lay.agent_socket == Path("/r/agent.sock")
    assert lay.layers_dir.parent == lay.agent_dir
    assert lay.containers_dir.parent == lay.agent_dir
    assert lay.volumes_dir.parent == lay.agent_dir
    assert lay.agent_run_dir == Path("/r/agent")
    # What lasts is on the state disk; runtime files, exits and crun's state in run.
    for runtime in (lay.bundles_dir, lay.exits_dir, lay.crun_root):
        assert runtime.parent == lay.agent_run_dir
    assert len({lay.bundles_dir, lay.exits_dir, lay.crun_root}) == 3
    assert lay.cgroup_root == "/dyt1"
    assert lay.nft_table == "dyt1"
    assert lay.bridge_name(3) == "dyt13"


def test_registry_paths() -> None:
    lay = Layout(state_dir=Path("/s"), run_dir=Path("/r"), instance="dyt1")
    assert lay.registry_dir == Path("/s/registry")
    assert {lay.registry_config.parent, lay.registry_storage.parent, lay.registry_log.parent} == {
        lay.registry_dir
    }
    assert lay.registry_token_key.parent == lay.registry_token_cert.parent == lay.registry_token_dir
    assert lay.registry_token_dir.parent == lay.registry_dir
    assert lay.registry_socket == Path("/r/registry.sock")
    assert lay.registry_endpoint_file == Path("/r/registry.endpoint")


def test_every_path_is_inside_the_instance_dirs() -> None:
    lay = Layout(state_dir=Path("/s"), run_dir=Path("/r"), instance="dyt1")
    for name in PATH_PROPERTIES:
        path = getattr(lay, name)
        if isinstance(path, Path) and name not in ("state_dir", "run_dir"):
            assert path.is_relative_to("/s") or path.is_relative_to("/r"), name


def test_two_instances_share_no_path_or_kernel_name() -> None:
    one = Layout(state_dir=Path("/a/state"), run_dir=Path("/a/run"), instance="one")
    two = Layout(state_dir=Path("/b/state"), run_dir=Path("/b/run"), instance="two")
    first = {getattr(one, n) for n in PATH_PROPERTIES} | {one.cgroup_root, one.nft_table}
    second = {getattr(two, n) for n in PATH_PROPERTIES} | {two.cgroup_root, two.nft_table}
    assert not first & second
    assert one.bridge_name(0) != two.bridge_name(0)


def test_bridge_names_fit_ifnamsiz_for_the_longest_instance() -> None:
    assert len(Layout(instance="a" * 10).bridge_name(99_999)) <= 15


@pytest.mark.parametrize("instance", ["a", "dockyard", "dyt3a9f", "a123456789"])
def test_valid_instance_names(instance: str) -> None:
    assert Layout(instance=instance).instance == instance


@pytest.mark.parametrize("instance", ["", "Dock", "1abc", "a" * 11, "dy-t", "dy_t", "dy t", "é"])
def test_invalid_instance_names(instance: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid instance name"):
        Layout(instance=instance)
