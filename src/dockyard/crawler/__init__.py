"""Out-of-band inspection of containers from the host (a later issue)."""
