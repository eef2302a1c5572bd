"""A container's effective healthcheck: Docker's config resolved into the probe the
agent runs (``CMD`` / ``CMD-SHELL`` turned into arguments, Docker's defaults applied)."""

from __future__ import annotations

from dockyard.core.errors import InvalidArgument
from dockyard.core.models import Healthcheck
from dockyard.core.protocol import HealthcheckSpec

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "healthcheck_spec"]

_SECOND = 1_000_000_000
_MIN_DURATION = 1_000_000  # Docker refuses durations under 1 ms
DEFAULT_INTERVAL = 30 * _SECOND
DEFAULT_TIMEOUT = 30 * _SECOND
DEFAULT_RETRIES = 3


def healthcheck_spec(
    hc: Healthcheck | None, *, shell: tuple[str, ...] | None = None
) -> HealthcheckSpec | None:
    """The probe for ``hc`` (None: no healthcheck, including ``NONE``).

    InvalidArgument, in Docker's words, for durations under 1 ms, negative retries or a
    test that is neither ``CMD``, ``CMD-SHELL`` nor ``NONE``.
    """
    if hc is None or not hc.test or hc.test[0] == "NONE":
        return None
    for name, value in (
        ("Interval", hc.interval),
        ("Timeout", hc.timeout),
        ("StartPeriod", hc.start_period),
    ):
        if value < 0 or 0 < value < _MIN_DURATION:
            raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms")
    if hc.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    kind, rest = hc.test[0], hc.test[1:]
    if kind == "CMD":
        args = rest
    elif kind == "CMD-SHELL":
        args = (*(shell or ("/bin/sh", "-c")), " ".join(rest))
    else:
        raise InvalidArgument(f"unknown Healthcheck type {kind!r} (CMD, CMD-SHELL or NONE)")
    if not args or not args[0]:
        raise InvalidArgument("Healthcheck needs a command")
    return HealthcheckSpec(
        args=tuple(args),
        interval=hc.interval or DEFAULT_INTERVAL,
        timeout=hc.timeout or DEFAULT_TIMEOUT,
        start_period=hc.start_period,
        retries=hc.retries or DEFAULT_RETRIES,
    )
