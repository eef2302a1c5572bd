"""A small in-process binding of libnftables (``libnftables.so.1``, Debian ``libnftables1``).

Why not spawn ``nft``: one process start costs milliseconds, while adding a named-set
element through an existing libnftables context costs about 0.1 ms at any set size
(HOST-NOTES.md). Why not Debian's ``python3-nftables``: it lives outside the venv and
we need only five C functions.

One :class:`Nft` owns one ``struct nft_ctx`` with buffered output and error. libnftables
contexts are not thread-safe, so every command runs under the instance's lock. Commands
are synchronous netlink round trips of well under a millisecond; callers on an event
loop call them directly.
"""

from __future__ import annotations

import ctypes
import functools
import json
import threading
import weakref
from typing import Any, cast

from dockyard.core.errors import Unavailable

__all__ = ["DEFAULT_LIBRARY", "Nft"]

DEFAULT_LIBRARY = "/usr/lib/x86_64-linux-gnu/libnftables.so.1"

# enum nft_output_flags in <nftables/libnftables.h>
_NFT_CTX_OUTPUT_JSON = 1 << 4
_NFT_CTX_DEFAULT = 0


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(path, use_errno=True)
    except OSError as exc:
        raise Unavailable(f"cannot load libnftables ({path}): {exc}") from exc
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_free.restype = None
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.restype = ctypes.c_int
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.restype = ctypes.c_int
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_ctx_output_set_flags.restype = None
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


class Nft:
    """One libnftables context.

    Lifecycle: created ready to use; :meth:`close` frees the context (idempotent), after
    which every command raises :class:`~dockyard.core.errors.Unavailable`. Usable as a
    context manager. Safe to share between threads: calls are serialised by a lock.

    Errors: a failing load or command raises ``Unavailable`` carrying nft's own error
    text (``Error: No such file or directory ...``).
    """

    def __init__(self, *, library: str = DEFAULT_LIBRARY) -> None:
        self._lib = _load(library)
        self._lock = threading.Lock()
        ctx = cast("int | None", self._lib.nft_ctx_new(_NFT_CTX_DEFAULT))
        if not ctx:
            raise Unavailable("nft_ctx_new failed")
        self._ctx: int | None = ctx
        # Frees the context if the object is dropped without close().
        self._free = weakref.finalize(self, self._lib.nft_ctx_free, ctx)
        if self._lib.nft_ctx_buffer_output(ctx) != 0 or self._lib.nft_ctx_buffer_error(ctx) != 0:
            self.close()
            raise Unavailable("cannot buffer libnftables output")
        self._plain_flags = int(self._lib.nft_ctx_output_get_flags(ctx)) & ~_NFT_CTX_OUTPUT_JSON

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the context. Idempotent."""
        with self._lock:
            self._ctx = None
            self._free()  # runs nft_ctx_free once, whatever the number of calls

    def cmd(self, text: str) -> str:
        """Run nft commands in nft's own syntax (one or more lines, one transaction).

        Returns what nft printed (empty for most changes). Raises ``Unavailable`` with
        nft's error text when libnftables reports failure; the whole buffer is then
        rolled back by the kernel (it is one netlink batch).
        """
        return self._run(text, json_output=False)

    def json_cmd(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Run a libnftables JSON command (``{"nftables": [...]}``) and parse the answer.

        Returns the parsed JSON output, or ``{}`` when nft printed nothing (changes).
        Raises ``Unavailable`` as :meth:`cmd` does.
        """
        out = self._run(json.dumps(obj), json_output=True)
        if not out.strip():
            return {}
        parsed = json.loads(out)
        if not isinstance(parsed, dict):
            raise Unavailable(f"unexpected libnftables JSON output: {out[:200]!r}")
        return cast("dict[str, Any]", parsed)

    def _run(self, text: str, *, json_output: bool) -> str:
        with self._lock:
            ctx = self._ctx
            if ctx is None:
                raise Unavailable("nftables context is closed")
            flags = self._plain_flags | (_NFT_CTX_OUTPUT_JSON if json_output else 0)
            # With the JSON flag set libnftables parses the input as JSON first, falling
            # back to nft syntax; without it, input is nft syntax only.
            self._lib.nft_ctx_output_set_flags(ctx, flags)
            rc = int(self._lib.nft_run_cmd_from_buffer(ctx, text.encode()))
            # Reading a buffer also rewinds it, so both are read on every call.
            out = cast("bytes | None", self._lib.nft_ctx_get_output_buffer(ctx)) or b""
            err = cast("bytes | None", self._lib.nft_ctx_get_error_buffer(ctx)) or b""
        if rc != 0:
            message = err.decode(errors="replace").strip() or f"nft failed with status {rc}"
            raise Unavailable(message)
        return out.decode(errors="replace")
