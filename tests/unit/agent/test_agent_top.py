"""``docker top`` on the agent: the host's real ps, filtered to the container's pids, with
no way for the caller's ps arguments to pass another process off as the container's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from dockyard.agent import top as top_module
from dockyard.agent.top import check_ps_args, parse_ps, top
from dockyard.core.errors import InvalidArgument, PermissionDenied


def run_top(pids: list[int], ps_args: str) -> list[list[str]]:
    return asyncio.run(top(pids, ps_args)).processes


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A process of ours: the "container"."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_public_surface() -> None:
    assert set(top_module.__all__) == {"check_ps_args", "top"}


@pytest.mark.parametrize(
    "ps_args", ["", "-ef", "aux", "-o pid,args", "-eo lstart,pid,args", "-eo args,pid"]
)
def test_the_containers_rows_only(sleeper: int, ps_args: str) -> None:
    rows = run_top([sleeper], ps_args)
    assert len(rows) == 1
    words = " ".join(rows[0]).split()
    assert str(sleeper) in words and "sleep" in words


@pytest.mark.parametrize(
    "ps_args",
    [
        "-e -o pid=X,ppid=PID,args",
        "-eo etimes=PID,args",
        "-e o ppid=PID,args",
        "-e --format ppid=PID,args",
        "-e --format=ppid=PID,args",
        "-e -O ppid=PID",
    ],
)
def test_renamed_columns_are_refused(ps_args: str) -> None:
    """With a column titled PID, other processes would pass as the container's: here every
    child of pid 1 (ppid=PID), i.e. most of the host."""
    with pytest.raises(PermissionDenied, match="column titles cannot be set"):
        run_top([1], ps_args)


@pytest.mark.parametrize("ps_args", ["-e --sort=-rss", "-e --cols=200", "aux --sort=pid"])
def test_long_options_with_values_are_fine(ps_args: str) -> None:
    assert check_ps_args(ps_args) == ps_args.split()


def test_columns_with_spaces_before_the_pid_do_not_shift_the_match() -> None:
    """``lstart`` is five words; split on whitespace, the year lands where the PID is, and
    every process started this year would pass for a "container" whose pid is the year."""
    year = int(time.strftime("%Y"))
    ps_args = "-e -o lstart,user,user,user,pid,user,user,user,user,user"
    rows = run_top([year], ps_args)
    assert len(rows) <= 1  # only a process whose pid really is the year
    own = run_top([os.getpid()], ps_args)
    assert len(own) == 1


def test_parse_reads_the_pid_under_its_title() -> None:
    output = (
        f"{'COMMAND':<26}{'PID':>7} USER\n"
        f"{'/bin/sh -c 4242 and more':<26}{17:>7} root\n"
        f"{'sleep 4242':<26}{4242:>7} root\n"
    )
    assert parse_ps(output, [4242]).processes == [["sleep", "4242", "4242 root"]]
    (row,) = parse_ps(output, [17]).processes
    assert row[:2] == ["/bin/sh", "-c"]  # Docker's split: shifted, but the row is the right one


def test_no_pid_column_is_dockers_error() -> None:
    with pytest.raises(InvalidArgument, match="Couldn't find PID field"):
        parse_ps("USER COMMAND\nroot sh\n", [1])
    with pytest.raises(InvalidArgument, match="Couldn't find PID field"):
        run_top([1], "-e -o user,args")
