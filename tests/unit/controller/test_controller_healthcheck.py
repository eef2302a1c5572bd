"""controller.healthcheck: Docker's Healthcheck config into the probe the agent runs."""

from __future__ import annotations

import pytest

from dockyard.controller.healthcheck import (
    DEFAULT_INTERVAL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    healthcheck_spec,
)
from dockyard.core.errors import InvalidArgument
from dockyard.core.models import Healthcheck
from dockyard.core.protocol import HealthcheckSpec

MS = 1_000_000


def test_none_and_empty_mean_no_probe() -> None:
    assert healthcheck_spec(None) is None
    assert healthcheck_spec(Healthcheck()) is None
    assert healthcheck_spec(Healthcheck(test=("NONE",), interval=5 * MS)) is None


def test_cmd_runs_its_arguments_with_dockers_defaults() -> None:
    spec = healthcheck_spec(Healthcheck(test=("CMD", "curl", "-f", "http://x/")))
    assert spec == HealthcheckSpec(
        args=("curl", "-f", "http://x/"),
        interval=DEFAULT_INTERVAL,
        timeout=DEFAULT_TIMEOUT,
        start_period=0,
        retries=DEFAULT_RETRIES,
    )


def test_cmd_shell_runs_through_the_shell_and_keeps_given_values() -> None:
    hc = Healthcheck(
        test=("CMD-SHELL", "test -e /ok"), interval=200 * MS, timeout=MS, start_period=5 * MS
    )
    spec = healthcheck_spec(hc, shell=None)
    assert spec is not None
    assert spec.args == ("/bin/sh", "-c", "test -e /ok")
    assert (spec.interval, spec.timeout, spec.start_period) == (200 * MS, MS, 5 * MS)
    custom = healthcheck_spec(hc, shell=("/bin/ash", "-e", "-c"))
    assert custom is not None and custom.args == ("/bin/ash", "-e", "-c", "test -e /ok")


@pytest.mark.parametrize(
    ("hc", "message"),
    [
        (Healthcheck(test=("CMD", "true"), interval=MS - 1), "Interval in Healthcheck"),
        (Healthcheck(test=("CMD", "true"), timeout=-1), "Timeout in Healthcheck"),
        (Healthcheck(test=("CMD", "true"), start_period=10), "StartPeriod in Healthcheck"),
        (Healthcheck(test=("CMD", "true"), retries=-1), "Retries"),
        (Healthcheck(test=("SHELL", "true")), "unknown Healthcheck type"),
        (Healthcheck(test=("CMD",)), "needs a command"),
    ],
)
def test_bad_healthchecks_are_refused(hc: Healthcheck, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        healthcheck_spec(hc)
