"""Host networking of one instance: tenant router namespaces, endpoints, published ports, DNS.

Modules, bottom up (ADR 0016):

- :mod:`~dockyard.network.nft`      in-process libnftables (ctypes), no ``nft`` processes
- :mod:`~dockyard.network.names`    kernel names and addresses, validated (pure)
- :mod:`~dockyard.network.ports`    published ports: validation, ephemeral choice, reservation
- :mod:`~dockyard.network.rules`    the root and router nft tables and their elements (pure)
- :mod:`~dockyard.network.ingress`  security groups and floating IPs as elements (pure)
- :mod:`~dockyard.network.elements` reading and deleting elements through an nft context
- :mod:`~dockyard.network.netns`    work inside namespaces via setns(2); named namespaces
- :mod:`~dockyard.network.rtnl`     just enough rtnetlink, packed by hand
- :mod:`~dockyard.network.conntrack` an address's conntrack entries, deleted over ctnetlink
- :mod:`~dockyard.network.counters` interface counters of a container's netns (procfs)
- :mod:`~dockyard.network.router`   one tenant's router namespace
- :mod:`~dockyard.network.host`     :class:`HostNetwork`, what the agent uses
- :mod:`~dockyard.network.dnswire`  DNS messages on the wire (pure)
- :mod:`~dockyard.network.dns`      the embedded DNS server of tenant networks
"""

from __future__ import annotations

from dockyard.network.host import DEFAULT_TRANSIT_SUBNET, HostNetwork
from dockyard.network.nft import Nft

__all__ = ["DEFAULT_TRANSIT_SUBNET", "HostNetwork", "Nft"]
