"""The logs query read as Docker's daemon reads it (api.docker.logs.log_params)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

import dockyard.wire  # noqa: F401  (before aiohttp's parser is used)
from dockyard.api.docker.logs import log_params
from dockyard.core.errors import InvalidArgument

NS = 1_000_000_000


def params(query: str) -> dict[str, str]:
    return log_params(make_mocked_request("GET", f"/containers/x/logs?{query}"))


def test_streams_and_flags() -> None:
    assert params("stdout=1&follow=true&timestamps=1&details=1") == {
        "stdout": "1",
        "stderr": "0",
        "follow": "1",
        "timestamps": "1",
        "details": "1",
    }
    with pytest.raises(InvalidArgument, match="you must choose at least one stream"):
        params("follow=1")


@pytest.mark.parametrize(
    ("tail", "expected"),
    [("all", None), ("", None), ("5", "5"), ("+5", "5"), ("0", "0"), ("-1", None), ("x", None)],
)
def test_tail_is_a_number_or_all(tail: str, expected: str | None) -> None:
    assert params(f"stdout=1&tail={tail}").get("tail") == expected


def test_since_and_until_take_fractions() -> None:
    got = params("stdout=1&since=1700000000.5&until=1700000001.000000001")
    assert got["since"] == str(1_700_000_000 * NS + NS // 2)
    assert got["until"] == str(1_700_000_001 * NS + 1)
    assert "since" not in params("stdout=1&since=0")
    with pytest.raises(InvalidArgument):
        params("stdout=1&until=yesterday")
