"""Python client of Dockyard's native API, used by the CLI and the dashboard."""
