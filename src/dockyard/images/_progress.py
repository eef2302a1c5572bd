"""Docker's JSON progress messages for pulls and pushes, shaped exactly as dockerd sends them.

dockerd writes ``jsonmessage.JSONMessage`` structs: ``status``, then ``progressDetail`` (only
for per-layer updates; ``{}`` when there are no counts), then ``progress`` (the rendered bar,
only with counts), then ``id``. The bar is ``JSONProgress.String()`` at the width dockerd
uses when it is not writing to a terminal (200 columns), so it always has the ``[==>  ]``
box, and no time-left box (dockerd never sets ``Start`` for transfers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "Progress",
    "ProgressMeter",
    "human_size",
    "layer_id",
    "layer_update",
    "message",
    "progress_bar",
]

Progress = Callable[[dict[str, Any]], None]

# dockerd's progress reader reports at most every 512 KiB and every 100 ms, plus the end.
_UPDATE_BYTES = 512 * 1024
_UPDATE_SECONDS = 0.1
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units ``HumanSize``: decimal units, four significant digits (``32.77kB``)."""
    unit = 0
    while size >= 1000.0 and unit < len(_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    """``JSONProgress.String()`` for byte counts at dockerd's non-terminal width."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    box = f"[{'=' * filled}>{' ' * (50 - filled)}] "
    if current > total:
        return box + f"{human_size(current):>8}"
    return box + f"{human_size(current):>8}/{human_size(total)}"


def layer_id(digest: str) -> str:
    """The short id dockerd shows for a layer: the first 12 hex digits of its digest."""
    return digest.partition(":")[2][:12]


def message(status: str, ident: str = "") -> dict[str, Any]:
    """A plain status line (``progress.Message``): ``{"status": ..., "id": ...}``."""
    msg: dict[str, Any] = {"status": status}
    if ident:
        msg["id"] = ident
    return msg


def layer_update(status: str, ident: str, current: int = 0, total: int = 0) -> dict[str, Any]:
    """A per-layer update (``progress.Update``), with counts and bar when there are any."""
    detail: dict[str, int] = {}
    if current:
        detail["current"] = current
    if total:
        detail["total"] = total
    msg: dict[str, Any] = {"status": status, "progressDetail": detail}
    bar = progress_bar(current, total)
    if bar:
        msg["progress"] = bar
    msg["id"] = ident
    return msg


class ProgressMeter:
    """Counts the bytes of one transfer and sends ``status`` updates for them, throttled as
    dockerd's progress reader is. ``progress`` None makes it a plain counter."""

    def __init__(self, progress: Progress | None, status: str, ident: str, total: int) -> None:
        self._progress = progress
        self._status = status
        self._ident = ident
        self.total = total
        self.current = 0
        self._reported = 0
        self._reported_at = 0.0

    def add(self, count: int) -> None:
        self.current += count
        if self._progress is None:
            return
        if self.current == self.total or self.current - self._reported > _UPDATE_BYTES:
            now = time.monotonic()
            if self.current == self.total or now - self._reported_at >= _UPDATE_SECONDS:
                self._reported, self._reported_at = self.current, now
                self._progress(layer_update(self._status, self._ident, self.current, self.total))
