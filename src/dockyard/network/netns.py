"""Sockets inside another process's network namespace, without forking.

A socket belongs to the network namespace it was created in, for life. To configure a
container's ``eth0`` over netlink we briefly switch *this thread* into the container's
netns with setns(2), create the socket, and switch back. Python 3.11 has no
``os.setns``, so it is called through ctypes. pyroute2's own netns sockets fork a helper
process per socket, which costs milliseconds.

setns(CLONE_NEWNET) needs CAP_SYS_ADMIN in the user namespace that owns the target
netns; a container netns is usually owned by the container's user namespace, a child
of ours, so root on the host qualifies.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket

from dockyard.core.errors import FailedPrecondition, Internal, Unavailable

__all__ = ["CLONE_NEWNET", "socket_in_netns"]

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


def socket_in_netns(
    pid: int,
    *,
    family: int = socket.AF_NETLINK,
    kind: int = socket.SOCK_DGRAM,
    proto: int = NETLINK_ROUTE,
) -> socket.socket:
    """A new close-on-exec socket in the network namespace of process ``pid``.

    Defaults to a NETLINK_ROUTE socket. The calling thread is back in its own namespace
    when this returns, whatever happens; no await point is involved, so no other
    coroutine can run while the thread is switched.

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
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            args = (family, kind | socket.SOCK_CLOEXEC, proto)
            return _socket_in(target=target, own=own, pid=pid, args=args)
        finally:
            os.close(own)
    finally:
        os.close(target)


def _socket_in(*, target: int, own: int, pid: int, args: tuple[int, int, int]) -> socket.socket:
    if _libc.setns(target, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise Unavailable(f"setns into the netns of pid {pid}: {os.strerror(code)}")
    sock: socket.socket | None = None
    failure: OSError | None = None
    try:
        sock = socket.socket(*args)
    except OSError as exc:  # kept until we are home again
        failure = exc
    if _libc.setns(own, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        if sock is not None:
            sock.close()
        # The thread now sits in a container's namespace: every socket it makes would
        # land there. Nothing sensible remains but to fail loudly.
        raise Internal(
            "cannot return to the agent's network namespace: "
            f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
        )
    if sock is None:
        raise Unavailable(f"socket in the netns of pid {pid}: {failure}") from failure
    return sock
