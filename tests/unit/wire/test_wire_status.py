from __future__ import annotations

import pytest

from dockyard.core import errors
from dockyard.wire.status import http_status

CASES = [
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Conflict, 409),
    (errors.InvalidArgument, 400),
    (errors.FailedPrecondition, 412),
    (errors.Unauthenticated, 401),
    (errors.PermissionDenied, 403),
    (errors.QuotaExceeded, 403),
    (errors.RateLimited, 429),
    (errors.NotModified, 304),
    (errors.Unavailable, 503),
    (errors.Internal, 500),
    (errors.DockyardError, 500),
]


@pytest.mark.parametrize(("error", "status"), CASES)
def test_each_kind_has_its_status(error: type[errors.DockyardError], status: int) -> None:
    assert http_status(error("m")) == status


def test_every_kind_is_listed_here() -> None:
    assert set(errors.DockyardError.__subclasses__()) <= {error for error, _ in CASES}
