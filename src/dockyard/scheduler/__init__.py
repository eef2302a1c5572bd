"""Placement: pure logic from a cluster view and a request to a plan; no I/O."""
