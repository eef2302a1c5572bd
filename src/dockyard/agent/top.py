"""``docker top``: run the host's ps and keep the rows of the container's processes.

This is what Docker does: ps runs on the host with the caller's arguments (as an argv,
never through a shell) and rows are kept when their PID is one of the container's (from
its cgroup). On a shared host the rest of each row is another tenant's secret (command
lines, with ``e`` their environments), so the PID must be the real one:

- a column can be given any title (``-o etimes=PID``, ``o ppid=PID``), which would make
  some other number pass for the PID; arguments with ``=`` are refused (PermissionDenied),
  except as the separator of a long option (``--sort=-rss``) whose value has none;
- rows are split on whitespace for display, as Docker does, but columns before the PID may
  hold spaces (``lstart``, ``args``) and shift the split; the PID a row is kept for is read
  where the PID column is, right-aligned under its title, never from the split.
"""

from __future__ import annotations

import asyncio

from dockyard.core.errors import InvalidArgument, PermissionDenied
from dockyard.core.protocol import TopResult

__all__ = ["check_ps_args", "top"]


def check_ps_args(ps_args: str) -> list[str]:
    """The ps argv for ``ps_args``; PermissionDenied for a renamed column."""
    args = ps_args.split()
    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") else arg
        if "=" in value:
            raise PermissionDenied(
                f"ps argument {arg!r} is not allowed on Dockyard: column titles cannot be "
                "set ('='), since the PID column decides which processes are the "
                "container's"
            )
    return args or ["-ef"]


async def top(pids: list[int], ps_args: str) -> TopResult:
    args = check_ps_args(ps_args)
    proc = await asyncio.create_subprocess_exec(
        "ps",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidArgument(f"ps: {err.decode(errors='replace').strip()}")
    return parse_ps(out.decode(errors="replace"), pids)


def parse_ps(output: str, pids: list[int]) -> TopResult:
    """The title row and the rows of ``pids`` from ps's ``output``."""
    lines = output.splitlines()
    if not lines:
        return TopResult(titles=[], processes=[])
    header = lines[0]
    titles = header.split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    end = _title_end(header, "PID")
    wanted = {str(p) for p in pids}
    processes = []
    for line in lines[1:]:
        if _value_ending_at(line, end) in wanted:
            processes.append(line.split(None, len(titles) - 1))
    return TopResult(titles=titles, processes=processes)


def _title_end(header: str, title: str) -> int:
    """Where the first column titled ``title`` ends in the header line."""
    position = 0
    for word in header.split():
        start = header.index(word, position)
        position = start + len(word)
        if word == title:
            return position
    raise InvalidArgument(f"Couldn't find {title} field in ps output")


def _value_ending_at(line: str, end: int) -> str:
    """The word of ``line`` that ends exactly at column ``end`` ("" if none does)."""
    if end > len(line) or line[end - 1].isspace() or (end < len(line) and not line[end].isspace()):
        return ""
    return line[:end].rsplit(maxsplit=1)[-1]
