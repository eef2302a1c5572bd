"""Paths of one container's runtime files (runtime.paths.BundlePaths)."""

from __future__ import annotations

from pathlib import Path

from dockyard.runtime.paths import BundlePaths, ExecPaths

CID = "ab" * 32
PATHS = BundlePaths(
    bundle=Path("/run/bundles") / CID,
    data=Path("/state/containers") / CID,
    exits_dir=Path("/run/exits"),
)
LASTING = {"upper", "work", "log_file", "log_spare", "log_dir", "state_file"}
PROPERTIES = [
    name
    for name in dir(BundlePaths)
    if isinstance(getattr(BundlePaths, name), property) and name != "container_id"
]


def test_container_id_is_the_bundle_name() -> None:
    assert PATHS.container_id == CID


def test_what_lasts_is_in_data_the_rest_in_the_bundle_but_the_exit_file() -> None:
    for name in PROPERTIES:
        path = getattr(PATHS, name)
        if name == "exit_file":
            assert path == Path("/run/exits") / CID
        elif name in LASTING:
            assert path.is_relative_to(PATHS.data), name
        else:
            assert path.is_relative_to(PATHS.bundle), name


def test_logs_rotate_by_rename_and_link_within_one_directory_tree() -> None:
    # conmon renames the spare over the live file; the agent hard-links rotated files
    # into log_dir: all three must be on one file system.
    assert {PATHS.log_file.parent, PATHS.log_spare.parent, PATHS.log_dir.parent} == {PATHS.data}


def test_every_file_has_its_own_path() -> None:
    paths = [getattr(PATHS, name) for name in PROPERTIES]
    assert len(set(paths)) == len(paths)


def test_names_conmon_and_crun_expect() -> None:
    assert PATHS.config == PATHS.bundle / "config.json"
    assert PATHS.rootfs == PATHS.bundle / "rootfs"
    assert PATHS.upper.parent == PATHS.work.parent


def test_two_containers_share_no_file() -> None:
    other = BundlePaths(
        bundle=Path("/run/bundles") / ("cd" * 32),
        data=Path("/state/containers") / ("cd" * 32),
        exits_dir=Path("/run/exits"),
    )
    mine = {getattr(PATHS, n) for n in PROPERTIES}
    theirs = {getattr(other, n) for n in PROPERTIES}
    assert not mine & theirs


def test_exec_files_live_in_the_execs_own_directory() -> None:
    exec_id = "cd" * 32
    paths = PATHS.exec_paths(exec_id)
    assert paths.directory == PATHS.bundle / "exec" / exec_id
    assert paths.exec_id == exec_id
    names = [n for n in dir(ExecPaths) if isinstance(getattr(ExecPaths, n), property)]
    for name in names:
        if name in ("exec_id", "container_id"):
            continue
        assert getattr(paths, name).is_relative_to(paths.directory), name
    # conmon names the exit file after the container, in the exec's own exits dir.
    assert paths.exit_file == paths.directory / "exit" / CID
