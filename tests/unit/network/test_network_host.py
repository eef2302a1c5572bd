"""The pure parts of dockyard.network.host: which endpoint is primary after a connect
or disconnect (the plumbing itself is tested in tests/integration/network)."""

from __future__ import annotations

from dockyard.core.protocol import EndpointSpec
from dockyard.network.host import connected_endpoints, remaining_endpoints


def _endpoint(n: int, *, internal: bool = False) -> EndpointSpec:
    return EndpointSpec(
        endpoint_id=f"e{n}",
        network_id=f"n{n}",
        bridge=f"br-{n}",
        subnet=f"10.0.{n}.0/24",
        gateway=f"10.0.{n}.1",
        ip=f"10.0.{n}.2",
        interface=f"eth{n}",
        internal=internal,
    )


def _ids(endpoints: tuple[EndpointSpec, ...]) -> list[str]:
    return [e.endpoint_id for e in endpoints]


def test_another_endpoint_leaving_keeps_the_order() -> None:
    endpoints = [_endpoint(0), _endpoint(1, internal=True), _endpoint(2)]
    assert _ids(remaining_endpoints(endpoints, "e1")) == ["e0", "e2"]
    assert _ids(remaining_endpoints(endpoints, "e2")) == ["e0", "e1"]


def test_the_first_routed_endpoint_becomes_primary() -> None:
    endpoints = [_endpoint(0), _endpoint(1, internal=True), _endpoint(2), _endpoint(3)]
    assert _ids(remaining_endpoints(endpoints, "e0")) == ["e2", "e1", "e3"]
    assert _ids(remaining_endpoints(endpoints[:2] + endpoints[3:], "e0")) == ["e3", "e1"]


def test_only_internal_or_no_endpoints_left() -> None:
    inner = [_endpoint(0), _endpoint(1, internal=True), _endpoint(2, internal=True)]
    assert _ids(remaining_endpoints(inner, "e0")) == ["e1", "e2"]
    assert remaining_endpoints([_endpoint(0)], "e0") == ()
    assert remaining_endpoints([], "e0") == ()
    assert _ids(remaining_endpoints([_endpoint(0)], "x")) == ["e0"]


def test_a_connected_endpoint_comes_last_unless_it_gives_the_default_route() -> None:
    routed, inner = _endpoint(0), _endpoint(1, internal=True)
    assert _ids(connected_endpoints([routed], _endpoint(2))) == ["e0", "e2"]
    assert _ids(connected_endpoints([inner], _endpoint(2, internal=True))) == ["e1", "e2"]
    assert _ids(connected_endpoints([], _endpoint(2, internal=True))) == ["e2"]
    # The first routed network of a container on internal ones only: the gateway network.
    assert _ids(connected_endpoints([inner], _endpoint(2))) == ["e2", "e1"]
