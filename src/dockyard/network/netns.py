"""Network namespaces without forking: work inside them, and named router namespaces.

A socket belongs to the network namespace it was created in, for life. To configure a
container's interfaces, or a tenant's router namespace, over netlink we briefly switch
*this thread* into the target netns with setns(2), create the socket (or write a sysctl,
which procfs resolves against the calling thread's netns), and switch back. Python 3.11
has no ``os.setns``, so it is called through ctypes. pyroute2's own netns sockets fork a
helper process per socket, which costs milliseconds.

Named namespaces are what ``ip netns`` makes: an nsfs file bind-mounted on an empty file
under ``/run/netns``, which keeps the namespace alive without any process in it. We make
them the same way (``unshare(CLONE_NEWNET)`` on this thread, bind mount of
``/proc/thread-self/ns/net``), with iproute2's propagation set-up of ``/run/netns`` (a
shared mount), so ``ip netns`` lists and deletes ours and an unmount reaches every mount
namespace that copied the bind mount.

setns(CLONE_NEWNET) needs CAP_SYS_ADMIN in the user namespace that owns the target
netns; a container netns is usually owned by the container's user namespace, a child
of ours, so root on the host qualifies.

Nothing here awaits: no other coroutine can run while the thread is switched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from dockyard.core.errors import AlreadyExists, FailedPrecondition, Internal, Unavailable

__all__ = [
    "CLONE_NEWNET",
    "NETNS_RUN_DIR",
    "create_named_netns",
    "in_named_netns",
    "named_netns",
    "remove_named_netns",
    "socket_in_named_netns",
    "socket_in_netns",
    "write_sysctl",
]

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
NETNS_RUN_DIR = Path("/run/netns")

_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int
_libc.unshare.argtypes = [ctypes.c_int]
_libc.unshare.restype = ctypes.c_int
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int

_run_dirs_ready: set[Path] = set()


def socket_in_netns(
    pid: int,
    *,
    family: int = socket.AF_NETLINK,
    kind: int = socket.SOCK_DGRAM,
    proto: int = NETLINK_ROUTE,
) -> socket.socket:
    """A new close-on-exec socket in the network namespace of process ``pid``.

    Defaults to a NETLINK_ROUTE socket. The calling thread is back in its own namespace
    when this returns, whatever happens.

    Raises ``FailedPrecondition`` when ``pid`` (or its netns) no longer exists,
    ``Unavailable`` when setns(2) or socket(2) fail, and ``Internal`` if the thread
    could not return to its own namespace (it must not be used for networking then).
    """
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise FailedPrecondition(f"network namespace of pid {pid} is gone") from exc
    except OSError as exc:
        raise Unavailable(f"cannot open the network namespace of pid {pid}: {exc}") from exc
    try:
        with _switched(target, f"the netns of pid {pid}"):
            return _socket(family, kind, proto, where=f"the netns of pid {pid}")
    finally:
        os.close(target)


def named_netns(name: str, *, run_dir: Path = NETNS_RUN_DIR) -> Path:
    """The path of named namespace ``name`` (it need not exist)."""
    if not name or "/" in name or name in (".", ".."):
        raise FailedPrecondition(f"invalid namespace name {name!r}")
    return run_dir / name


def in_named_netns(path: Path, work: Callable[[], T]) -> T:
    """Run ``work()`` on this thread switched into the named netns at ``path``.

    ``work`` must not block for long and must not start threads or await anything: it
    runs in place of whatever the thread was doing. Raises ``FailedPrecondition`` when
    the namespace does not exist, ``Unavailable`` when it cannot be entered, ``Internal``
    if the thread cannot return; errors of ``work`` propagate.
    """
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise FailedPrecondition(f"network namespace {path} does not exist") from exc
    except OSError as exc:
        raise Unavailable(f"cannot open network namespace {path}: {exc}") from exc
    try:
        with _switched(target, str(path)):
            return work()
    finally:
        os.close(target)


def socket_in_named_netns(
    path: Path,
    *,
    family: int = socket.AF_NETLINK,
    kind: int = socket.SOCK_DGRAM,
    proto: int = NETLINK_ROUTE,
) -> socket.socket:
    """A new close-on-exec socket in the named netns at ``path`` (errors as
    :func:`in_named_netns`)."""
    return in_named_netns(path, lambda: _socket(family, kind, proto, where=str(path)))


def create_named_netns(path: Path, setup: Callable[[], T]) -> T:
    """Make a new network namespace named by ``path`` and run ``setup()`` inside it.

    The namespace is bind-mounted at ``path`` (which must not exist) and outlives this
    call; ``setup`` runs on this thread inside it (same rules as :func:`in_named_netns`)
    and its result is returned, typically sockets that stay in the namespace. If
    ``setup`` or anything else fails, the namespace is removed again. Raises
    ``AlreadyExists`` when ``path`` exists, ``Unavailable`` for failing syscalls.
    """
    _prepare_run_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError as exc:
        raise AlreadyExists(f"network namespace {path} already exists") from exc
    except OSError as exc:
        raise Unavailable(f"cannot create {path}: {exc}") from exc
    os.close(fd)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                raise Unavailable(f"unshare(CLONE_NEWNET): {_strerror()}")
            try:
                source = b"/proc/thread-self/ns/net"
                if _libc.mount(source, bytes(path), b"none", _MS_BIND, None) != 0:
                    raise Unavailable(f"bind mount of a new netns on {path}: {_strerror()}")
                return setup()
            finally:
                _return_home(own)
        finally:
            os.close(own)
    except BaseException:
        remove_named_netns(path)
        raise


def remove_named_netns(path: Path) -> None:
    """Unmount and delete the named netns at ``path``; idempotent.

    The namespace itself goes once nothing else holds it: sockets made in it (close them
    first) and processes in it keep it alive. The kernel then deletes its interfaces
    (a veth's peer in another namespace with it), asynchronously.
    """
    if _libc.umount2(bytes(path), _MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            raise Unavailable(f"unmount {path}: {os.strerror(code)}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_sysctl(path: Path, value: str, *, optional: bool = False) -> None:
    """Set the sysctl file ``path`` to ``value`` unless it holds it already.

    ``/proc/sys/net`` shows the network namespace of the *calling thread*, so inside
    :func:`in_named_netns` this sets the router's own value. ``optional``: a missing file
    (a feature the kernel lacks) is fine. Raises ``Unavailable`` otherwise.
    """
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except FileNotFoundError:
        if not optional:
            raise Unavailable(f"cannot set {path}: it does not exist") from None
    except OSError as exc:
        raise Unavailable(f"cannot set {path}: {exc}") from exc


# internals


def _socket(family: int, kind: int, proto: int, *, where: str) -> socket.socket:
    try:
        return socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
    except OSError as exc:
        raise Unavailable(f"socket in {where}: {exc}") from exc


@contextlib.contextmanager
def _switched(target: int, what: str) -> Iterator[None]:
    """This thread in netns ``target`` for the block, back home after it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise Unavailable(f"setns into {what}: {_strerror()}")
        try:
            yield
        finally:
            _return_home(own)
    finally:
        os.close(own)


def _return_home(own: int) -> None:
    if _libc.setns(own, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        # The thread now sits in another namespace: every socket it makes would land
        # there. Nothing sensible remains but to fail loudly.
        raise Internal(
            "cannot return to the agent's network namespace: "
            f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
        )


def _prepare_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` a shared mount point, as ``ip netns add`` does (once per process)."""
    if run_dir in _run_dirs_ready:
        return
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = bytes(run_dir)
    if _libc.mount(b"", target, b"none", _MS_SHARED | _MS_REC, None) != 0:
        if ctypes.get_errno() != errno.EINVAL:
            raise Unavailable(f"make {run_dir} a shared mount: {_strerror()}")
        # Not a mount point yet: bind it onto itself, then share it.
        if _libc.mount(target, target, b"none", _MS_BIND | _MS_REC, None) != 0:
            raise Unavailable(f"bind mount {run_dir} onto itself: {_strerror()}")
        if _libc.mount(b"", target, b"none", _MS_SHARED | _MS_REC, None) != 0:
            raise Unavailable(f"make {run_dir} a shared mount: {_strerror()}")
    _run_dirs_ready.add(run_dir)


def _strerror() -> str:
    code = ctypes.get_errno()
    return f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
