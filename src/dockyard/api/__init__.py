"""HTTP only: the Docker Engine API compat layer and (later) the native API."""
