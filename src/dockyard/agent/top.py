"""``docker top``: run the host's ps and keep the rows of the container's processes.

This is what Docker does: ps runs on the host with the caller's arguments (as an argv,
never through a shell) and rows are filtered by the PID column against the container's
cgroup, so nothing outside the container is shown.
"""

from __future__ import annotations

import asyncio

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import TopResult

__all__ = ["top"]


async def top(pids: list[int], ps_args: str) -> TopResult:
    args = ps_args.split() or ["-ef"]
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
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        return TopResult(titles=[], processes=[])
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise InvalidArgument("Couldn't find PID field in ps output") from None
    wanted = {str(p) for p in pids}
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_index and fields[pid_index] in wanted:
            processes.append(fields)
    return TopResult(titles=titles, processes=processes)
