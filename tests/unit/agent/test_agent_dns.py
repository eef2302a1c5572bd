"""What the agent's embedded DNS answers (agent.dns.AgentDns), from the endpoints a
HostNetwork reports: names scoped to the asking container's networks, nothing across
tenants or from unknown addresses, no forwarding from internal networks."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.agent.dns import AgentDns
from dockyard.core.errors import NotFound
from dockyard.core.protocol import EndpointSpec
from dockyard.network.dns import Lookup, Outcome

A, B = "tenant-a", "tenant-b"


class FakeNetwork:
    """Records the watcher; has no router sockets (so no server is started)."""

    def __init__(self) -> None:
        self.watcher: Any = None

    def watch(self, watcher: Any) -> None:
        self.watcher = watcher

    def router_sockets(self, router: str, gateway: str, *, on_close: Any = None) -> Any:
        raise NotFound(f"no bridge {gateway} in {router}")


def endpoint(
    ip: str,
    *names: str,
    network: str = "n1",
    internal: bool = False,
    isolated: bool = False,
) -> EndpointSpec:
    return EndpointSpec(
        endpoint_id=ip.replace(".", ""),
        network_id=network,
        bridge=f"br-{network}",
        subnet=ip.rsplit(".", 1)[0] + ".0/24",
        gateway=ip.rsplit(".", 1)[0] + ".1",
        ip=ip,
        internal=internal,
        isolated=isolated,
        names=names,
    )


@pytest.fixture
def dns() -> tuple[AgentDns, Any]:
    network = FakeNetwork()
    agent_dns = AgentDns(network)  # type: ignore[arg-type]
    return agent_dns, network.watcher


def test_names_aliases_and_short_ids_on_the_askers_networks(dns: tuple[AgentDns, Any]) -> None:
    agent_dns, changed = dns
    changed("web", A, [endpoint("10.0.0.2", "web", "www", "abcdef012345")])
    changed("client", A, [endpoint("10.0.0.3", "client")])
    for name in ("web", "WWW", "abcdef012345"):
        assert agent_dns.lookup(A, client="10.0.0.3", name=name) == Lookup.found(["10.0.0.2"])
    assert agent_dns.lookup(A, client="10.0.0.3", name="example.org") == Lookup.FORWARD
    assert agent_dns.reverse(A, client="10.0.0.3", address="10.0.0.2") == Lookup.found(["web"])
    assert agent_dns.reverse(A, client="10.0.0.3", address="10.0.0.99").outcome is Outcome.NXDOMAIN


def test_a_shared_alias_gives_every_address(dns: tuple[AgentDns, Any]) -> None:
    agent_dns, changed = dns
    changed("a", A, [endpoint("10.0.0.2", "a", "db")])
    changed("b", A, [endpoint("10.0.0.3", "b", "db")])
    assert agent_dns.lookup(A, client="10.0.0.2", name="db") == Lookup.found(
        ["10.0.0.2", "10.0.0.3"]
    )
    changed("a", A, [])
    assert agent_dns.lookup(A, client="10.0.0.3", name="db") == Lookup.found(["10.0.0.3"])
    assert agent_dns.lookup(A, client="10.0.0.3", name="a") == Lookup.FORWARD


def test_other_networks_and_other_tenants_are_not_answered(dns: tuple[AgentDns, Any]) -> None:
    agent_dns, changed = dns
    changed("back", A, [endpoint("10.1.0.2", "db", network="back")])
    changed("front", A, [endpoint("10.0.0.2", "web", network="front")])
    changed("both", A, [endpoint("10.0.0.3", "both", network="front"),
                        endpoint("10.1.0.3", "both", network="back")])  # fmt: skip
    changed("theirs", B, [endpoint("10.0.0.2", "spy", network="front")])
    assert agent_dns.lookup(A, client="10.0.0.2", name="db") == Lookup.FORWARD
    assert agent_dns.lookup(A, client="10.0.0.3", name="db") == Lookup.found(["10.1.0.2"])
    assert agent_dns.lookup(A, client="10.0.0.3", name="web") == Lookup.found(["10.0.0.2"])
    # The same address in B's router is B's container, which knows nothing of A's.
    assert agent_dns.lookup(B, client="10.0.0.2", name="web") == Lookup.FORWARD
    assert agent_dns.lookup(A, client="10.0.0.2", name="spy") == Lookup.FORWARD
    # An address that is no container of the tenant gets nothing, not even a forward.
    assert agent_dns.lookup(A, client="10.9.9.9", name="web") == Lookup.NO_FORWARD
    assert agent_dns.reverse(A, client="10.0.0.2", address="10.1.0.2") == Lookup.FORWARD


def test_internal_networks_do_not_forward_and_bridge_has_no_names(
    dns: tuple[AgentDns, Any],
) -> None:
    agent_dns, changed = dns
    changed("i", A, [endpoint("10.2.0.2", "inner", network="in", internal=True)])
    changed("j", A, [endpoint("10.2.0.3", "other", network="in", internal=True)])
    assert agent_dns.lookup(A, client="10.2.0.2", name="other") == Lookup.found(["10.2.0.3"])
    assert agent_dns.lookup(A, client="10.2.0.2", name="example.org") == Lookup.NO_FORWARD
    changed("x", A, [endpoint("172.17.0.2", "x", network="bridge", isolated=True)])
    changed("y", A, [endpoint("172.17.0.3", "y", network="bridge", isolated=True)])
    assert agent_dns.lookup(A, client="172.17.0.2", name="y") == Lookup.FORWARD
