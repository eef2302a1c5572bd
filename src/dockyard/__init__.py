"""Dockyard: a multi-tenant, Docker-compatible container cloud.

Read the system from this package's folders; CONTRIBUTING.md says what goes where.
"""

__version__ = "0.1.0"
