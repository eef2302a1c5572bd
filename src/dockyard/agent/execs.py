"""Exec sessions: processes started in a running container (``docker exec``).

An exec lives in its own directory inside the container's bundle (``exec/<id>``) and
runs under a conmon of its own, so it outlives the agent like the container does. What
the agent knows of it is on disk: the request (``exec.json``), crun's pidfile once it
started, and conmon's exit file once it ended; so an exec is inspected the same way
before and after an agent restart. As in Docker, the execs of a container go when it
stops (their directory is removed with the run's other runtime state).

Lifecycle: ``create`` (the container must be running and not paused), then one
``start``: attached (the client's hijacked stream is connected to the exec's attach
socket before the process runs, and the stream ends only once the exit code is
known, so the client's inspect that follows sees it) or detached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.agent.attach import AttachOptions, connect, pump
from dockyard.core.errors import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.core.ids import is_full_id, new_id
from dockyard.core.protocol import ExecRequest, ExecStatus
from dockyard.core.serde import from_data, to_data
from dockyard.runtime.base import ExecOptions, ExecProcess, Runtime
from dockyard.runtime.paths import BundlePaths, ExecPaths
from dockyard.runtime.safepath import read_in_root
from dockyard.runtime.spec import exec_process
from dockyard.runtime.users import resolve_user
from dockyard.wire.detach import parse_detach_keys
from dockyard.wire.framing import STDOUT, frame
from dockyard.wire.hijack import HijackedStream

__all__ = ["ExecManager", "StartedExec", "remove_execs", "resize_terminal"]

_PACKET = 8192 + 1  # conmon's attach packets: one byte naming the pipe, then data
_MAX_FINISHED = 64  # finished execs kept per container; older ones are forgotten
_EXIT_REPORT_TIMEOUT = 30.0  # how long an attached start waits for the exit code (a loaded
# host can take seconds between the end of the output and conmon's report)
_NOT_FOUND_CODE, _CANNOT_RUN_CODE = 127, 126  # Docker's codes for an exec that never ran


@dataclass(frozen=True, slots=True)
class StartedExec:
    """An exec whose monitor runs and whose process is about to."""

    paths: ExecPaths
    request: ExecRequest
    process: ExecProcess | None
    error: DockyardError | None = None  # why it cannot run (it is recorded as exited)


class ExecManager:
    """Every exec on this host. Callers pass the container's bundle paths and state,
    which the container manager owns."""

    def __init__(
        self, *, runtime: Runtime, on_exit: Callable[[ExecStatus], None] = lambda _s: None
    ) -> None:
        """``on_exit`` hears of each exec that ran and ended (health probes aside)."""
        self._runtime = runtime
        self._on_exit = on_exit
        self._starting: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    # create and inspect ------------------------------------------------------------------

    def create(self, bundle: BundlePaths, request: ExecRequest, *, status: str) -> ExecStatus:
        """Record an exec for the container at ``bundle`` whose state is ``status``."""
        _require_running(bundle.container_id, status)
        if not request.args:
            raise InvalidArgument("No exec command specified")
        paths = self._paths(bundle, request.id)
        try:
            paths.directory.mkdir(parents=True)
        except FileExistsError:
            raise Conflict(f"exec {request.id} already exists") from None
        _write_json(paths.record, to_data(request))
        self._forget_old(bundle)
        return _status(paths, request)

    def status(self, bundle: BundlePaths, exec_id: str, *, status: str) -> ExecStatus:
        """The exec's state; NotFound once its container has stopped (Docker forgets the
        execs of a stopped container; their files go with the run's cleanup)."""
        paths = self._paths(bundle, exec_id)
        if status not in ("running", "paused"):
            raise NotFound(f"No such exec instance: {exec_id}")
        return _status(paths, _read_request(paths))

    def _forget_old(self, bundle: BundlePaths) -> None:
        """Keep the newest :data:`_MAX_FINISHED` finished execs of a container."""
        try:
            entries = [p for p in bundle.execs_dir.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return
        if len(entries) <= _MAX_FINISHED:
            return
        finished = [p for p in entries if bundle.exec_paths(p.name).exit_file.exists()]
        finished.sort(key=lambda p: p.stat().st_mtime_ns)
        for directory in finished[: len(entries) - _MAX_FINISHED]:
            shutil.rmtree(directory, ignore_errors=True)

    # start -------------------------------------------------------------------------------

    async def launch(
        self, bundle: BundlePaths, exec_id: str, *, status: str, attach: bool
    ) -> StartedExec:
        """Start the exec's monitor; with ``attach`` its process waits for :meth:`attach`.

        Conflict if the exec has started before or the container is not running; the
        caller answers these before it hijacks the client's connection.
        """
        paths = self._paths(bundle, exec_id)
        request = _read_request(paths)
        if exec_id in self._starting or paths.pidfile.exists() or paths.exit_file.exists():
            raise Conflict(
                f"Error: Exec command {exec_id} "
                + ("has already run" if paths.exit_file.exists() else "is already running")
            )
        _require_running(bundle.container_id, status)
        self._starting.add(exec_id)
        try:
            process = await self._launch(bundle, paths, request, attach=attach)
        except InvalidArgument as exc:
            # A request that cannot run here (unknown user, say) ends like Docker's: the
            # exec is recorded as exited with 126 and the client is told in its stream.
            _write_exit(paths, _CANNOT_RUN_CODE)
            self._starting.discard(exec_id)
            return StartedExec(paths=paths, request=request, process=None, error=exc)
        except BaseException:
            self._starting.discard(exec_id)
            raise
        return StartedExec(paths=paths, request=request, process=process)

    async def detach(self, started: StartedExec) -> None:
        """Let a launched exec run on its own."""
        if started.process is None:
            raise started.error or InvalidArgument("exec cannot run")
        try:
            await self._run(started.paths, started.process)
        finally:
            self._starting.discard(started.paths.exec_id)
        self._watch(started.paths, started.process)

    async def attach(self, started: StartedExec, client: HijackedStream) -> None:
        """Run a launched exec with its stdio on ``client`` until its output ends."""
        if started.process is None:
            await _tell(client, started.request, started.error)
            return
        try:
            await self._attached(started.paths, started.request, started.process, client)
        finally:
            self._starting.discard(started.paths.exec_id)

    def _paths(self, bundle: BundlePaths, exec_id: str) -> ExecPaths:
        if not is_full_id(exec_id):
            raise NotFound(f"No such exec instance: {exec_id}")
        return bundle.exec_paths(exec_id)

    async def _launch(
        self, bundle: BundlePaths, paths: ExecPaths, request: ExecRequest, *, attach: bool
    ) -> ExecProcess:
        base = json.loads(bundle.config.read_text())["process"]
        user = None
        if request.user:
            resolved = resolve_user(
                request.user,
                passwd=_read_optional(bundle.rootfs, "/etc/passwd"),
                group=_read_optional(bundle.rootfs, "/etc/group"),
            )
            user = (resolved.uid, resolved.gid, resolved.additional_gids)
        env = request.env
        if request.tty and not any(e.startswith("TERM=") for e in env):
            env = ("TERM=xterm", *env)  # Docker sets it for a TTY unless given
        process = exec_process(
            base,
            args=request.args,
            env=env,
            cwd=request.cwd,
            user=user,
            terminal=request.tty,
            console=(request.console_height, request.console_width),
        )
        _write_json(paths.process, process)
        options = ExecOptions(
            terminal=request.tty, stdin=attach and request.attach_stdin, attach=attach
        )
        return await self._runtime.exec(bundle.container_id, paths, options)

    async def _run(self, paths: ExecPaths, process: ExecProcess) -> None:
        """Let the process run; if it cannot, record Docker's exit code for that."""
        try:
            await process.run()
        except DockyardError as exc:
            _write_exit(paths, _never_ran_code(exc))
            process.close()
            raise

    async def _attached(
        self,
        paths: ExecPaths,
        request: ExecRequest,
        process: ExecProcess,
        client: HijackedStream,
    ) -> None:
        options = AttachOptions(
            stdin=request.attach_stdin,
            stdout=request.attach_stdout,
            stderr=request.attach_stderr,
            tty=request.tty,
            detach_keys=parse_detach_keys(request.detach_keys),
        )
        try:
            sock = await connect(paths.attach_socket)
        except OSError:
            process.close()
            raise
        streaming = asyncio.create_task(pump(sock, client, options))
        try:
            await self._run(paths, process)
        except DockyardError as exc:
            # Docker writes the reason into the stream (framed as stdout without a TTY)
            # and records exit code 126 or 127; the CLI prints one and exits with the other.
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
            process.close()
            await _tell(client, request, exc)
            return
        await streaming
        if client.closed:
            self._watch(paths, process)  # the client left; the exec runs on
            return
        # conmon closes the attach socket before it reports the exit: wait for the report
        # so that the client's exec inspect, sent as soon as the stream ends, sees it.
        try:
            code = await asyncio.wait_for(process.wait(), _EXIT_REPORT_TIMEOUT)
        except TimeoutError:
            self._watch(paths, process)
            return
        process.close()
        self._exited(paths, code)

    def _exited(self, paths: ExecPaths, code: int | None) -> None:
        if code is not None and not paths.exit_file.exists():
            _write_exit(paths, code)
        with contextlib.suppress(NotFound):  # its container went meanwhile
            self._on_exit(_status(paths, _read_request(paths)))

    def _watch(self, paths: ExecPaths, process: ExecProcess) -> None:
        """Hold the process until it exits (its exit file is the record)."""

        async def watch() -> None:
            try:
                code = await process.wait()
            finally:
                process.close()
            self._exited(paths, code)

        task = asyncio.create_task(watch())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # captured runs (health probes) ------------------------------------------------------

    async def run_captured(
        self, bundle: BundlePaths, args: tuple[str, ...], *, limit: int
    ) -> tuple[int, bytes]:
        """Run ``args`` in the container as an exec of its own; its exit code and the first
        ``limit`` bytes of its output (stdout and stderr together). Cancelling it kills
        the process. Leaves no exec behind."""
        paths = self._paths(bundle, new_id())
        paths.directory.mkdir(parents=True)
        try:
            base = json.loads(bundle.config.read_text())["process"]
            process_spec = exec_process(base, args=args, env=(), cwd="", user=None, terminal=False)
            _write_json(paths.process, process_spec)
            process = await self._runtime.exec(bundle.container_id, paths, ExecOptions(attach=True))
            try:
                return await _captured(paths, process, limit=limit)
            finally:
                process.close()
        finally:
            await asyncio.to_thread(shutil.rmtree, paths.directory, True)

    # resize ------------------------------------------------------------------------------

    def resize(self, bundle: BundlePaths, exec_id: str, *, height: int, width: int) -> None:
        paths = self._paths(bundle, exec_id)
        request = _read_request(paths)
        if not request.tty:
            raise InvalidArgument(f"exec {exec_id} has no TTY to resize")
        if not paths.pidfile.exists() or paths.exit_file.exists():
            raise Conflict(f"Exec {exec_id} is not running")
        resize_terminal(paths.ctl_fifo, height=height, width=width)


async def _captured(paths: ExecPaths, process: ExecProcess, *, limit: int) -> tuple[int, bytes]:
    sock = await connect(paths.attach_socket)
    pid = 0
    try:
        try:
            pid = await process.run()
        except DockyardError as exc:
            return _never_ran_code(exc), str(exc).encode()
        loop = asyncio.get_running_loop()
        output = bytearray()
        while True:
            packet = await loop.sock_recv(sock, _PACKET)
            if not packet:
                break
            if len(output) < limit:
                output += packet[1:]  # the first byte names the pipe
        exit_code = await process.wait()
        return (-1 if exit_code is None else exit_code), bytes(output[:limit])
    except asyncio.CancelledError:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    finally:
        sock.close()


def resize_terminal(ctl_fifo: Path, *, height: int, width: int) -> None:
    """Tell a conmon to resize its terminal (its control fifo takes ``1 <h> <w>``)."""
    if height <= 0 or width <= 0:
        raise InvalidArgument("resize needs positive h and w")
    try:
        fd = os.open(ctl_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # ENXIO: no conmon reads it any more
        raise Conflict(f"cannot resize: the terminal's monitor is gone ({exc})") from exc
    try:
        os.write(fd, f"1 {height} {width}\n".encode())
    finally:
        os.close(fd)


async def remove_execs(bundle: BundlePaths) -> None:
    """Forget every exec of the container (it stopped: Docker drops them then)."""
    await asyncio.to_thread(shutil.rmtree, bundle.execs_dir, True)


def _never_ran_code(exc: DockyardError) -> int:
    return _NOT_FOUND_CODE if "executable file not found" in str(exc) else _CANNOT_RUN_CODE


async def _tell(client: HijackedStream, request: ExecRequest, error: Exception | None) -> None:
    """Write why the exec could not run into its stream, as Docker does (framed as stdout
    without a TTY); the CLI prints it and exits with the recorded 126 or 127."""
    message = f"{error}\r\n".encode()
    with contextlib.suppress(ConnectionError):
        await client.write(message if request.tty else frame(STDOUT, message))


def _require_running(container_id: str, status: str) -> None:
    if status == "paused":
        raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
    if status != "running":
        raise Conflict(f"Container {container_id} is not running")


def _status(paths: ExecPaths, request: ExecRequest) -> ExecStatus:
    code = _read_int(paths.exit_file)
    pid = _read_int(paths.pidfile) or 0
    running = code is None and pid > 0 and _monitor_alive(paths)
    if code is None and pid > 0 and not running:
        code = -1  # its monitor died without saying how the process ended
    return ExecStatus(
        request=request,
        container_id=paths.container_id,
        running=running,
        pid=pid if running else 0,
        exit_code=code,
    )


def _monitor_alive(paths: ExecPaths) -> bool:
    pid = _read_int(paths.conmon_pidfile)
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_request(paths: ExecPaths) -> ExecRequest:
    try:
        data = json.loads(paths.record.read_text())
    except FileNotFoundError:
        raise NotFound(f"No such exec instance: {paths.exec_id}") from None
    return from_data(ExecRequest, data)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_optional(root: Path, path: str) -> str:
    try:
        return read_in_root(root, path).decode(errors="replace")
    except (DockyardError, OSError):
        return ""


def _write_exit(paths: ExecPaths, code: int) -> None:
    paths.exits_dir.mkdir(parents=True, exist_ok=True)
    _write_text(paths.exit_file, str(code))


def _write_json(path: Path, data: object) -> None:
    _write_text(path, json.dumps(data, separators=(",", ":")))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
