"""What every Dockyard daemon does the same way: pidfile lock, logging, unix sockets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

import dockyard.wire
from dockyard.core.layout import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, Layout
from dockyard.wire.tls import TLSSite

__all__ = [
    "AlreadyRunning",
    "layout_arguments",
    "layout_from",
    "pidfile_lock",
    "serve_tcp",
    "serve_tls",
    "serve_unix",
    "setup_logging",
    "use_pidfd_child_watcher",
    "wait_for_signal",
]


# How long a stopping server waits for a request in flight, twice over: aiohttp waits this
# long for the handler to finish, as long again once its body reads fail, then cancels it.
# Its default, 60 s, outlasts the 20 s `dockyard down` gives a daemon before SIGKILL: a
# client holding a stream (`docker logs -f`, attach, wait) had the daemon killed before
# its own cleanup ran (the controller's queued events and audit records never written).
# Streams a daemon serves to its peer for as long as it runs end at once instead (each
# app's on_shutdown).
_SHUTDOWN_TIMEOUT = 3.0


class AlreadyRunning(Exception):
    """Another copy of this daemon holds the pidfile lock."""


def layout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--instance", default="dockyard")


def layout_from(args: argparse.Namespace) -> Layout:
    return Layout(state_dir=args.state_dir, run_dir=args.run_dir, instance=args.instance)


def use_pidfd_child_watcher() -> None:
    """Reap subprocesses through pidfds instead of a thread per child (Python 3.11's default
    watcher starts a thread for every crun and conmon it waits for). Call it from inside the
    running loop."""
    if sys.version_info < (3, 12) and hasattr(asyncio, "PidfdChildWatcher"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(asyncio.get_running_loop())
            asyncio.set_child_watcher(watcher)


def setup_logging(name: str) -> None:
    logging.basicConfig(
        level=os.environ.get("DOCKYARD_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextlib.contextmanager
def pidfile_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (containing our pid) for the daemon's life.

    The lock, not the file's presence, says whether the daemon runs: it is released by
    the kernel when the process dies, even by SIGKILL.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(str(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


async def serve_unix(app: web.Application, path: Path, *, mode: int) -> web.AppRunner:
    """Serve ``app`` on a unix socket at ``path`` (replacing a stale one). The runner's
    ``cleanup()`` cancels requests still in flight after ``2 * _SHUTDOWN_TIMEOUT``."""
    if not dockyard.wire.python_parser_active():
        raise RuntimeError("aiohttp was imported before dockyard.wire; hijacking would break")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = web.UnixSite(runner, str(path))
    await site.start()
    os.chmod(path, mode)
    return runner


async def serve_tcp(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` over plain HTTP on ``host:port``; stopped like :func:`serve_unix`'s.
    OSError if the address cannot be bound."""
    if not dockyard.wire.python_parser_active():
        raise RuntimeError("aiohttp was imported before dockyard.wire; hijacking would break")
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def serve_tls(
    app: web.Application, host: str, port: int, *, context: ssl.SSLContext
) -> web.AppRunner:
    """Serve ``app`` over TLS on ``host:port`` with ``context`` (which decides what the
    handshake demands of clients), half-close included (``dockyard.wire.tls``); stopped
    like :func:`serve_unix`'s."""
    if not dockyard.wire.python_parser_active():
        raise RuntimeError("aiohttp was imported before dockyard.wire; hijacking would break")
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = TLSSite(runner, host, port, context=context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def wait_for_signal() -> int:
    """Block until SIGTERM or SIGINT; return the signal number."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def deliver(number: int) -> None:
        if not received.done():
            received.set_result(number)

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, deliver, number)
    return await received
