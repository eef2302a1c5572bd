"""ConmonRuntime: containers run by crun under conmon, as Podman runs them.

conmon is the per-container monitor that outlives the agent: it holds the container's
stdio, writes its output to the log file and its exit code to ``exits_dir/<id>``, and
serves the attach socket. The invocation is the one recorded in HOST-NOTES.md; we skip the
start pipe (conmon proceeds at once) and read ``{"data": <pid>}`` (or a negative value and
a message) from the sync pipe once ``crun create`` has finished.

crun keeps its state under ``state_root`` so two Dockyard instances on one host never see
each other's containers. crun's error text is classified here, once, into error kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from dockyard.core.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unavailable
from dockyard.runtime.base import CreateOptions, ExecOptions, RuntimeState
from dockyard.runtime.paths import BundlePaths, ExecPaths

__all__ = ["ConmonRuntime", "sealed_copy"]

_SYNC_TIMEOUT = 30.0


def sealed_copy(binary: str) -> str:
    """A path that executes a sealed in-memory copy of ``binary``.

    crun, like runc, protects itself against CVE-2019-5736 by copying its own executable
    into a sealed memfd and re-executing from it, on every invocation, unless it already
    runs from one (it checks ``F_GET_SEALS`` on /proc/self/exe). Making that copy once
    and running crun from it saves about 5 ms per call (measured: ``crun create`` 25 ->
    19 ms). The fd lives as long as this process; the path names it through /proc so
    conmon, a separate process, can execute it too.
    """
    fd = os.memfd_create(Path(binary).name, os.MFD_ALLOW_SEALING)
    with open(binary, "rb") as source:
        data = source.read()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return f"/proc/{os.getpid()}/fd/{fd}"


class ConmonRuntime:
    """Runtime driver for crun + conmon. ``state_root`` is crun's ``--root``."""

    def __init__(
        self,
        *,
        state_root: Path,
        crun: str = "/usr/bin/crun",
        conmon: str = "/usr/bin/conmon",
        seal: bool = True,
    ) -> None:
        self._root = state_root
        self._crun = sealed_copy(crun) if seal else crun
        self._conmon = conmon
        state_root.mkdir(parents=True, exist_ok=True)

    # create ------------------------------------------------------------------------------

    async def create(self, paths: BundlePaths, options: CreateOptions) -> int:
        cid = paths.container_id
        paths.exits_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            paths.exit_file.unlink()
        for stale in (
            paths.pidfile,
            paths.conmon_pidfile,
            paths.attach_socket,
            paths.ctl_fifo,
            paths.winsz,
            paths.oci_log,
        ):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        args = self._conmon_args(
            container_id=cid,
            session=cid,
            directory=paths.bundle,
            pidfile=paths.pidfile,
            exits_dir=paths.exits_dir,
            log=f"k8s-file:{paths.log_file}",
            oci_log=paths.oci_log,
            conmon_pidfile=paths.conmon_pidfile,
        )
        if options.stdin:
            args.append("--stdin")
            if options.leave_stdin_open:
                args.append("--leave-stdin-open")
        if options.terminal:
            args.append("--terminal")
        if options.log_size_max > 0:
            args += ["--log-size-max", str(options.log_size_max)]
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        try:
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "_OCI_SYNCPIPE": str(sync_w)}
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=paths.bundle,
                env=env,
                pass_fds=(sync_w,),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            os.close(sync_w)
            sync_w = -1
            _, stderr = await proc.communicate()
            message = await _SyncPipe(sync_r).message(_SYNC_TIMEOUT)
        finally:
            os.close(sync_r)
            if sync_w >= 0:
                os.close(sync_w)
        pid = int(message.get("data", -1)) if message else -1
        if pid <= 0:
            detail = message.get("message") if message else stderr.decode(errors="replace")
            detail = _clean(_oci_error(paths.oci_log) or detail or "conmon failed")
            await self.delete(cid, force=True)
            raise _create_error(detail)
        return pid

    def _conmon_args(
        self,
        *,
        container_id: str,
        session: str,
        directory: Path,
        pidfile: Path,
        exits_dir: Path,
        log: str,
        oci_log: Path,
        conmon_pidfile: Path,
    ) -> list[str]:
        """What every conmon of ours is started with (the invocation in HOST-NOTES.md):
        one monitor per ``session`` (the container, or an exec of it) in ``directory``."""
        return [
            self._conmon,
            "--api-version",
            "1",
            "-c",
            container_id,
            "-u",
            session,
            "-n",
            container_id,
            "-r",
            self._crun,
            "-b",
            str(directory),
            "-p",
            str(pidfile),
            "--exit-dir",
            str(exits_dir),
            "--socket-dir-path",
            str(directory),
            "--full-attach",
            "-l",
            log,
            "--log-level",
            "error",
            "--runtime-arg",
            f"--root={self._root}",
            "--runtime-arg",
            "--log-format=json",
            "--runtime-arg",
            f"--log={oci_log}",
            "--conmon-pidfile",
            str(conmon_pidfile),
        ]

    # exec --------------------------------------------------------------------------------

    async def exec(self, container_id: str, paths: ExecPaths, options: ExecOptions) -> _ConmonExec:
        """Run ``crun exec`` under a conmon of its own (conmon ``-e``), as Podman does.

        With ``options.attach`` conmon is given an attach pipe and a start pipe: it says
        on the first when its attach socket listens, and runs crun only after the second
        byte on the other (the first releases conmon itself), so an attached client sees
        all output.
        """
        paths.exits_dir.mkdir(parents=True, exist_ok=True)
        args = self._conmon_args(
            container_id=container_id,
            session=paths.exec_id,
            directory=paths.directory,
            pidfile=paths.pidfile,
            exits_dir=paths.exits_dir,
            log="none:",
            oci_log=paths.oci_log,
            conmon_pidfile=paths.conmon_pidfile,
        )
        args += ["-e", "--exec-process-spec", str(paths.process)]
        if options.terminal:
            args.append("-t")
        if options.stdin:
            args.append("-i")
        if options.attach:
            args.append("--exec-attach")
        ours: list[int] = []  # our ends, closed on failure
        theirs: list[int] = []  # conmon's ends, closed once it has them
        try:
            sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
            ours.append(sync_r)
            theirs.append(sync_w)
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "_OCI_SYNCPIPE": str(sync_w)}
            start_w = attach_r = -1
            if options.attach:
                start_r, start_w = os.pipe2(os.O_CLOEXEC)
                attach_r, attach_w = os.pipe2(os.O_CLOEXEC)
                ours += [start_w, attach_r]
                theirs += [start_r, attach_w]
                env |= {"_OCI_STARTPIPE": str(start_r), "_OCI_ATTACHPIPE": str(attach_w)}
                os.write(start_w, b"\0")  # the first read: conmon may proceed
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=paths.directory,
                env=env,
                pass_fds=tuple(theirs),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            for fd in theirs:
                os.close(fd)
            theirs.clear()
            _, stderr = await proc.communicate()  # the first conmon exits once it forked
            if options.attach:
                attach = _SyncPipe(attach_r)
                ours.remove(attach_r)
                try:
                    ready = await attach.message(_SYNC_TIMEOUT)
                finally:
                    attach.close()
                if ready is None or int(ready.get("data", -1)) < 0:
                    detail = stderr.decode(errors="replace") or "conmon did not start"
                    raise Unavailable(f"exec failed: {_clean(detail)}")
            process = _ConmonExec(_SyncPipe(sync_r), start_w, paths)
            ours.clear()
            return process
        finally:
            for fd in ours + theirs:
                os.close(fd)

    # simple commands ----------------------------------------------------------------------

    async def start(self, container_id: str) -> None:
        """Release a created container.

        What ``crun start`` does, without its process: crun's created container waits on
        ``<root>/<id>/exec.fifo``; opening it for writing, unlinking it and writing one
        byte lets the process exec (libcrun_status_write_exec_fifo). Spawning crun costs
        6-8 ms of its 30 ms budget here; if the fifo is not where crun 1.x keeps it, we fall
        back to ``crun start``.
        """
        fifo = self._root / container_id / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            await self._crun_cmd("start", container_id)
            return
        except OSError as exc:  # ENXIO: nobody waits on it any more
            raise Conflict(f"container {container_id} is not waiting to start: {exc}") from exc
        try:
            fifo.unlink()
            os.write(fd, b"\0")
        finally:
            os.close(fd)

    async def kill(self, container_id: str, signal: int) -> None:
        await self._crun_cmd("kill", container_id, str(signal))

    async def pause(self, container_id: str) -> None:
        await self._crun_cmd("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self._crun_cmd("resume", container_id)

    async def update(self, container_id: str, resources: dict[str, Any]) -> None:
        spec = json.dumps(resources).encode()
        await self._crun_cmd("update", "--resources", "-", container_id, stdin=spec)

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        args = ["delete", *(["--force"] if force else []), container_id]
        try:
            await self._crun_cmd(*args)
        except NotFound:
            return

    async def state(self, container_id: str) -> RuntimeState | None:
        try:
            out = await self._crun_cmd("state", container_id)
        except NotFound:
            return None
        data = json.loads(out)
        return RuntimeState(status=str(data.get("status", "")), pid=int(data.get("pid", 0)))

    def exists(self, container_id: str) -> bool:
        return (self._root / container_id).is_dir()

    async def list_ids(self) -> list[str]:
        out = await self._crun_cmd("list", "--quiet")
        return [line.strip() for line in out.splitlines() if line.strip()]

    async def _crun_cmd(self, *args: str, stdin: bytes | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            self._crun,
            f"--root={self._root}",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin)
        if proc.returncode != 0:
            raise _classify(err.decode(errors="replace"), args[0])
        return out.decode(errors="replace")


class _ConmonExec:
    """An exec under its conmon (see :meth:`ConmonRuntime.exec`)."""

    def __init__(self, sync: _SyncPipe, start_w: int, paths: ExecPaths) -> None:
        self._sync = sync
        self._start_w = start_w
        self._paths = paths

    async def run(self) -> int:
        if self._start_w >= 0:
            os.write(self._start_w, b"\0")
            os.close(self._start_w)
            self._start_w = -1
        message = await self._sync.message(_SYNC_TIMEOUT)
        pid = int(message.get("data", -1)) if message else -1
        if pid <= 0:
            detail = _oci_error(self._paths.oci_log) or (message or {}).get("message") or ""
            raise _exec_error(_clean(str(detail)) or "conmon failed")
        return pid

    async def wait(self) -> int | None:
        message = await self._sync.message(None)
        return int(message.get("data", -1)) if message else None

    def close(self) -> None:
        self._sync.close()
        if self._start_w >= 0:
            os.close(self._start_w)
            self._start_w = -1


class _SyncPipe:
    """conmon's sync pipe: JSON messages, one per line (``{"data": N}`` with an optional
    ``"message"``). Create sends one (the pid, or a negative number and the runtime's
    complaint); exec sends the pid, then the exit code."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False
        os.set_blocking(fd, False)

    async def message(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message; None once conmon has closed the pipe without one."""
        while b"\n" not in self._buffer and not self._eof:
            await self._fill(timeout)
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = line.decode(errors="replace").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return {"data": -1, "message": text}
        return value if isinstance(value, dict) else None

    async def _fill(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self._fd, readable)
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError as exc:
            raise Unavailable("timed out waiting for conmon") from exc
        finally:
            loop.remove_reader(self._fd)
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        self._buffer += chunk
        self._eof = not chunk

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_NOT_FOUND = re.compile(r"executable file `(?P<name>[^`]*)` not found")
_NO_PERMISSION = re.compile(
    r"open executable: Permission denied|`(?P<name>[^`]*)`: Permission denied"
)


def _create_error(detail: str) -> DockyardError:
    """crun's reasons for a failed create, in the words Docker clients look for: the docker
    CLI exits 127 for "executable file not found" and 126 for "permission denied"."""
    missing = _NOT_FOUND.search(detail)
    if missing:
        return InvalidArgument(
            f'failed to create task: exec: "{missing.group("name")}": executable file not '
            f"found in $PATH: {detail}"
        )
    if _NO_PERMISSION.search(detail):
        return InvalidArgument(f"failed to create task: exec: permission denied: {detail}")
    return Unavailable(f"failed to create container: {detail}")


def _exec_error(detail: str) -> DockyardError:
    """Why ``crun exec`` could not start the process, worded as Docker words it (the docker
    CLI shows the message; the exit code, 127 or 126, comes from exec inspect)."""
    missing = _NOT_FOUND.search(detail)
    if missing:
        return InvalidArgument(
            f"OCI runtime exec failed: exec failed: unable to start container process: exec: "
            f'"{missing.group("name")}": executable file not found in $PATH: unknown'
        )
    if _NO_PERMISSION.search(detail):
        return InvalidArgument(
            "OCI runtime exec failed: exec failed: unable to start container process: "
            f"exec: permission denied: {detail}"
        )
    return Unavailable(f"OCI runtime exec failed: {detail}")


def _oci_error(path: Path) -> str:
    """The last error crun logged (JSON lines), to explain a failed create or exec."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("level") == "error":
                return str(entry.get("msg", ""))
    return ""


def _clean(text: str) -> str:
    return " ".join(text.replace("[conmon:e]:", "").split())


def _classify(stderr: str, command: str) -> DockyardError:
    text = _clean(stderr)
    lowered = text.lower()
    missing = "no such file or directory" in lowered and "open" in lowered
    if "does not exist" in lowered or missing:
        return NotFound(f"crun {command}: {text}")
    if "not running" in lowered or "already" in lowered or "is paused" in lowered:
        return Conflict(f"crun {command}: {text}")
    return Unavailable(f"crun {command}: {text}")
