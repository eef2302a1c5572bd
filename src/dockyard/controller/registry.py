"""The registry process: CNCF distribution (``docker-registry``) run and watched by the
controller (ADR 0021).

One per controller. It keeps its config, log and storage under the layout's
``registry_dir`` and listens on ``registry_socket`` only (mode 0600: the daemon side talks
to it there, bypassing the front, so only root may). It checks every request's bearer
token itself against the certificate of :class:`~dockyard.controller.registry_auth.RegistryTokens`.

Life cycle: ``await start()`` writes the config, starts the process and returns once it
answers (or after ``timeout``, logged: supervision keeps trying); from then on a process
that exits is started again after a back-off (0.5 s doubling to 30 s, back to 0.5 s after
a minute of good running). ``await stop()`` ends it. A missing binary is logged as an
error and leaves the registry unavailable (:attr:`RegistryProcess.available` False); the
rest of the controller runs on.

A registry left running by a controller that was killed (SIGKILL never reaches the
child) is found by its config path in ``/proc`` and killed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import Final

from dockyard.controller.registry_auth import RegistryTokens
from dockyard.core.layout import Layout

__all__ = ["NO_REALM", "RegistryProcess", "registry_pids"]

log = logging.getLogger("dockyard.controller.registry")

NO_REALM: Final = "http://registry-front.invalid/token"
"""The token realm the registry advertises when the controller serves no front."""
_BACKOFF = 0.5
_MAX_BACKOFF = 30.0
_GOOD_RUN = 60.0  # seconds of running that reset the back-off
_STOP_GRACE = 5.0
_LOG_ROTATE = 64 * 1024 * 1024  # the log is moved to registry.log.1 past this at a start

_CONFIG = """\
# Written by the Dockyard controller at every start; edits are lost.
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  net: unix
  addr: {socket}
  secret: {secret}
  relativeurls: true
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {cert}
"""


def registry_pids(config: Path) -> list[int]:
    """Pids of registry processes serving ``config`` (``<binary> serve <config>``)."""
    wanted = str(config).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[1] == b"serve" and argv[2] == wanted:
            found.append(int(entry.name))
    return found


class RegistryProcess:
    """Runs ``binary serve <layout.registry_config>`` and keeps it running (see the
    module docstring). ``realm``: the token service's URL the registry sends clients to
    (the front's ``http://host:port/token``, :data:`NO_REALM` without a front)."""

    def __init__(
        self,
        layout: Layout,
        tokens: RegistryTokens,
        *,
        realm: str = NO_REALM,
        binary: str = "docker-registry",
    ) -> None:
        self.layout = layout
        self.realm = realm
        self.binary = binary
        self._tokens = tokens
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def socket(self) -> Path:
        """Where the registry listens (HTTP over a unix socket)."""
        return self.layout.registry_socket

    @property
    def available(self) -> bool:
        """Whether the registry runs and answered since it was last (re)started."""
        return self._ready.is_set()

    @property
    def pid(self) -> int:
        """The running registry's pid (0 if none)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else 0

    async def start(self, *, timeout: float = 20.0) -> None:
        """Start the registry and supervise it; returns when it answers. A missing binary
        or a registry that has not answered within ``timeout`` is logged as an error (the
        latter still restarted by supervision). Idempotent."""
        if self._task is not None:
            return
        path = shutil.which(self.binary)
        if path is None:
            log.error("no registry: %s not found (apt-get install docker-registry)", self.binary)
            return
        await asyncio.to_thread(self._prepare)
        self._task = asyncio.create_task(self._supervise(path), name="registry supervisor")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            log.error(  # noqa: TRY400  (not an exception of ours: a state to report)
                "the registry did not answer within %.0fs; see %s",
                timeout,
                self.layout.registry_log,
            )

    async def wait_available(self, timeout: float) -> bool:
        """Wait until the registry answers (after a restart, say); whether it does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self.available

    async def stop(self) -> None:
        """Stop supervising and end the process (SIGTERM, SIGKILL after a grace)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready.clear()
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc is not None:
            self.socket.unlink(missing_ok=True)  # SIGTERM gives Go no chance to

    # --------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Kill a registry a killed controller left behind, write the config."""
        layout = self.layout
        for pid in registry_pids(layout.registry_config):
            log.warning("killing the registry a previous controller left running (pid %d)", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while registry_pids(layout.registry_config) and time.monotonic() < deadline:
            time.sleep(0.02)
        layout.registry_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        layout.registry_storage.mkdir(exist_ok=True, mode=0o700)
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        config = _CONFIG.format(
            storage=_quote(str(layout.registry_storage)),
            socket=_quote(str(layout.registry_socket)),
            secret=_quote(self._http_secret()),
            realm=_quote(self.realm),
            service=_quote(self._tokens.service),
            issuer=_quote(self._tokens.issuer),
            cert=_quote(str(self._tokens.cert_path)),
        )
        tmp = layout.registry_config.with_name(".config.yml.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)
        os.replace(tmp, layout.registry_config)

    def _http_secret(self) -> str:
        """The secret the registry signs upload state with, kept across restarts (an
        upload begun before a restart can still finish)."""
        path = self.layout.registry_dir / "http-secret"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        secret = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret

    async def _supervise(self, binary: str) -> None:
        loop = asyncio.get_running_loop()
        delay = _BACKOFF
        while True:
            started = loop.time()
            proc = await self._spawn(binary)
            if await self._wait_answering(proc):
                os.chmod(self.socket, 0o600)
                self._ready.set()
                log.info("registry ready on %s (pid %d)", self.socket, proc.pid)
            status = await proc.wait()
            self._ready.clear()
            self._proc = None
            if loop.time() - started > _GOOD_RUN:
                delay = _BACKOFF
            log.error(
                "the registry exited (status %s); restarting in %.1fs (see %s)",
                status,
                delay,
                self.layout.registry_log,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _spawn(self, binary: str) -> asyncio.subprocess.Process:
        layout = self.layout
        # Go's listener will not replace a socket file; ours is the only one using it.
        layout.registry_socket.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if layout.registry_log.stat().st_size > _LOG_ROTATE:
                layout.registry_log.replace(layout.registry_log.with_suffix(".log.1"))
        fd = os.open(layout.registry_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # umask 077: the socket is root's from the moment it exists (chmod'ed to 0600
            # once it answers), and so are the files the registry writes.
            proc = await asyncio.create_subprocess_exec(
                binary,
                "serve",
                str(layout.registry_config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                umask=0o077,
            )
        finally:
            os.close(fd)
        self._proc = proc
        return proc

    async def _wait_answering(self, proc: asyncio.subprocess.Process) -> bool:
        """Poll ``GET /v2/`` until the registry answers (True) or exits (False)."""
        pause = 0.02
        while proc.returncode is None:
            if await _answers(self.socket):
                return True
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        return False


async def _answers(path: Path) -> bool:
    """Whether a registry answers ``GET /v2/`` on the socket (401: token auth is on)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET /v2/ HTTP/1.0\r\nHost: registry\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), 2)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line.startswith((b"HTTP/1.0 401", b"HTTP/1.1 401"))


def _quote(text: str) -> str:
    """A YAML scalar for ``text`` (a JSON string is one)."""
    return json.dumps(text)
