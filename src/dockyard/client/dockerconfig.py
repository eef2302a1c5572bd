"""The docker CLI's config file (``<dir>/config.json``), where a Dockyard login lives.

The docker CLI and docker-py both send every ``HttpHeaders`` entry of the config with each
request, so a login is the token written there under ``X-Dockyard-Token``. Other keys of
an existing config (auths, credential helpers, ...) are kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dockyard.core.errors import InvalidArgument
from dockyard.core.identity import TOKEN_HEADER

__all__ = ["clear_token", "default_config_dir", "read_token", "write_token"]


def default_config_dir() -> Path:
    """Where the docker CLI looks: ``$DOCKER_CONFIG``, else ``~/.docker``."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise InvalidArgument(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path} does not hold a JSON object")
    return data


def read_token(config_dir: Path) -> str:
    headers = _load(config_dir / "config.json").get("HttpHeaders") or {}
    return str(headers.get(TOKEN_HEADER, "")) if isinstance(headers, dict) else ""


def write_token(config_dir: Path, token: str) -> Path:
    """Store ``token`` in the config (created 0700/0600 if new); the file's path."""
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config_dir / "config.json"
    data = _load(path)
    headers = data.get("HttpHeaders")
    if not isinstance(headers, dict):
        headers = {}
    headers[TOKEN_HEADER] = token
    data["HttpHeaders"] = headers
    _write(path, data)
    return path


def clear_token(config_dir: Path) -> bool:
    """Remove the token; whether there was one."""
    path = config_dir / "config.json"
    data = _load(path)
    headers = data.get("HttpHeaders")
    if not isinstance(headers, dict) or TOKEN_HEADER not in headers:
        return False
    del headers[TOKEN_HEADER]
    if not headers:
        del data["HttpHeaders"]
    _write(path, data)
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
