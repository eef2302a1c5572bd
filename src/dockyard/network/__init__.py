"""Host networking: bridges, veths, nftables NAT and published ports, one instance at a time."""
