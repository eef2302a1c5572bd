"""Host networking: bridges, veths, nftables NAT, published ports and DNS, one instance at a time.

Modules, bottom up:

- :mod:`~dockyard.network.nft`    in-process libnftables (ctypes), no ``nft`` processes
- :mod:`~dockyard.network.names`  interface names and addresses, validated (pure)
- :mod:`~dockyard.network.ports`  published ports: validation, ephemeral choice, reservation
- :mod:`~dockyard.network.rules`  the instance's nft table and its set/map elements (pure)
- :mod:`~dockyard.network.netns`  sockets inside a container's netns via setns(2)
- :mod:`~dockyard.network.counters` interface counters of a container's netns (procfs)
- :mod:`~dockyard.network.links`  interfaces over netlink (pyroute2 ``AsyncIPRoute``)
- :mod:`~dockyard.network.host`   :class:`HostNetwork`, what the agent uses
- :mod:`~dockyard.network.dnswire` DNS messages on the wire (pure)
- :mod:`~dockyard.network.dns`    the embedded DNS server of tenant networks
"""

from __future__ import annotations

from dockyard.network.host import HostNetwork
from dockyard.network.nft import Nft

__all__ = ["HostNetwork", "Nft"]
