"""Compile an OCI seccomp profile to the raw BPF program the kernel loads, once.

crun compiles ``linux.seccomp`` with libseccomp on every container start, which costs
about 25 ms with Docker-sized profiles (measured: 43 ms vs 17 ms for ``crun run`` with and
without the profile). crun also accepts the finished program in the annotation
``run.oci.seccomp_bpf_data`` (base64) and then skips its own compilation, so the agent
compiles the profile once at start with the same libseccomp, through ctypes, and hands
the program to every container. The profile stays in ``config.json`` for readers.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import os
import tempfile
from typing import Any

from dockyard.core.errors import InvalidArgument, Unavailable

__all__ = ["ANNOTATION", "compile_profile", "encoded_program"]

ANNOTATION = "run.oci.seccomp_bpf_data"

_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_NR_SCMP_ERROR = -1
_EEXIST = 17
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise Unavailable(f"libseccomp is not installed: {exc}") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    return lib


def _action(name: str, errno_ret: int | None, default_errno: int) -> int:
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ((errno_ret if errno_ret is not None else default_errno) & 0xFFFF)
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    raise InvalidArgument(f"unsupported seccomp action {name!r}")


def compile_profile(profile: dict[str, Any]) -> bytes:
    """The BPF program for an OCI ``linux.seccomp`` object (x86 arch names as in OCI)."""
    lib = _lib()
    default_errno = int(profile.get("defaultErrnoRet", 1))
    ctx = lib.seccomp_init(_action(profile["defaultAction"], None, default_errno))
    if not ctx:
        raise Unavailable("seccomp_init failed")
    try:
        for arch in profile.get("architectures", ()):
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise InvalidArgument(f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and -rc != _EEXIST:
                raise Unavailable(f"seccomp_arch_add({arch}): {os.strerror(-rc)}")
        for rule in profile.get("syscalls", ()):
            action = _action(rule["action"], rule.get("errnoRet"), default_errno)
            args = rule.get("args") or []
            array = (_ArgCmp * max(len(args), 1))(
                *(
                    _ArgCmp(a["index"], _OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                    for a in args
                )
            )
            for name in rule["names"]:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == _NR_SCMP_ERROR:
                    continue  # unknown to this libseccomp: as crun does, skip it
                rc = lib.seccomp_rule_add_array(ctx, action, number, len(args), array)
                if rc < 0:
                    raise Unavailable(f"seccomp rule for {name}: {os.strerror(-rc)}")
        with tempfile.TemporaryFile() as out:
            rc = lib.seccomp_export_bpf(ctx, out.fileno())
            if rc < 0:
                raise Unavailable(f"seccomp_export_bpf: {os.strerror(-rc)}")
            out.seek(0)
            return out.read()
    finally:
        lib.seccomp_release(ctx)


def encoded_program(profile: dict[str, Any]) -> str:
    """The annotation value crun expects: the program, base64-encoded."""
    return base64.b64encode(compile_profile(profile)).decode()
