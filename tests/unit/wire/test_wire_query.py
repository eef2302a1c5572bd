from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from dockyard.core.errors import InvalidArgument
from dockyard.wire.query import flag, query_int


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", "anything"])
def test_flag_true(value: str) -> None:
    assert flag(make_mocked_request("GET", f"/x?f={value}"), "f")


@pytest.mark.parametrize("query", ["", "?f=", "?f=0", "?f=false", "?f=FALSE", "?f=no", "?f=none"])
def test_flag_false(query: str) -> None:
    assert not flag(make_mocked_request("GET", f"/x{query}"), "f")


def test_query_int() -> None:
    assert query_int(make_mocked_request("GET", "/x?n=-3"), "n") == -3
    assert query_int(make_mocked_request("GET", "/x?n="), "n", 7) == 7
    assert query_int(make_mocked_request("GET", "/x"), "n", -1) == -1
    with pytest.raises(InvalidArgument, match="invalid value for n"):
        query_int(make_mocked_request("GET", "/x?n=ten"), "n")
