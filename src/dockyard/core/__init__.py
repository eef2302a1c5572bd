"""The leaf of the package graph: ids, tenancy, errors, models and agent protocol messages.

Nothing here imports another Dockyard package or does I/O beyond path arithmetic.
"""
