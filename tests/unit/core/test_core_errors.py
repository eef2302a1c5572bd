"""The error hierarchy and its wire form (dockyard.core.errors)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.core import errors
from dockyard.core.errors import DockyardError, Internal, NotFound, from_wire

KINDS = {
    "NotFound": "not_found",
    "AlreadyExists": "already_exists",
    "Conflict": "conflict",
    "InvalidArgument": "invalid_argument",
    "FailedPrecondition": "failed_precondition",
    "Unauthenticated": "unauthenticated",
    "PermissionDenied": "permission_denied",
    "QuotaExceeded": "quota_exceeded",
    "RateLimited": "rate_limited",
    "NotModified": "not_modified",
    "Unavailable": "unavailable",
    "Internal": "internal",
}
CLASSES: list[type[DockyardError]] = [getattr(errors, name) for name in KINDS]


def test_public_surface() -> None:
    assert set(errors.__all__) == {*KINDS, "DockyardError", "from_wire"}


def test_every_kind_is_a_direct_dockyard_error_with_its_own_name() -> None:
    for name, kind in KINDS.items():
        cls = getattr(errors, name)
        assert cls.__bases__ == (DockyardError,)
        assert cls.kind == kind
    assert len({cls.kind for cls in CLASSES}) == len(CLASSES)


def test_errors_carry_a_message_and_no_http_status() -> None:
    exc = NotFound("No such container: web")
    assert exc.message == str(exc) == "No such container: web"
    assert not any("status" in name.lower() for name in vars(NotFound))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_wire_round_trip(cls: type[DockyardError]) -> None:
    sent = cls("something went wrong: ü")
    wire = sent.to_wire()
    assert wire == {"kind": cls.kind, "message": "something went wrong: ü"}
    received = from_wire(wire)
    assert type(received) is cls
    assert received.message == sent.message


@pytest.mark.parametrize("kind", ["teapot", "", None, "NotFound", 404])
def test_unknown_kinds_become_internal(kind: Any) -> None:
    received = from_wire({"kind": kind, "message": "m"})
    assert type(received) is Internal
    assert received.message == "m"


@pytest.mark.parametrize("payload", [None, "not_found", ["not_found", "m"], 3])
def test_malformed_payloads_become_internal(payload: Any) -> None:
    received = from_wire(payload)
    assert type(received) is Internal
    assert "malformed error payload" in received.message


def test_missing_message_is_empty() -> None:
    received = from_wire({"kind": "conflict"})
    assert type(received) is errors.Conflict
    assert received.message == ""
