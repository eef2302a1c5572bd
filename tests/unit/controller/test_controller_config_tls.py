"""controller.config: the TLS listener's address, names and advertised endpoint."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dockyard.controller.config import ControllerConfig, default_tls_names, parse_address
from dockyard.core.errors import InvalidArgument
from dockyard.core.layout import Layout


def test_addresses() -> None:
    assert parse_address("127.0.0.1:2376") == ("127.0.0.1", 2376)
    assert parse_address("[::1]:2376") == ("::1", 2376)
    assert parse_address("docker.example:443") == ("docker.example", 443)
    for bad in ("127.0.0.1", ":2376", "host:0", "host:65536", "host:x"):
        with pytest.raises(InvalidArgument):
            parse_address(bad)


def test_default_names_cover_loopback_the_host_and_the_address() -> None:
    names = default_tls_names("127.0.0.1:2376")
    assert names[:3] == ("localhost", "127.0.0.1", "::1")
    assert socket.gethostname() in names
    assert "0.0.0.0" not in default_tls_names("0.0.0.0:2376")
    assert "192.0.2.7" in default_tls_names("192.0.2.7:2376")


def test_the_advertised_endpoint(tmp_path: Path) -> None:
    layout = Layout(state_dir=tmp_path, run_dir=tmp_path, instance="t")
    assert ControllerConfig(layout=layout).tls_endpoint == ""
    at = ControllerConfig(layout=layout, tls_address="127.0.0.1:2376")
    assert at.tls_endpoint == "tcp://127.0.0.1:2376"
    anywhere = ControllerConfig(layout=layout, tls_address="0.0.0.0:2376")
    assert anywhere.tls_endpoint == f"tcp://{socket.gethostname()}:2376"
    six = ControllerConfig(layout=layout, tls_address="[::1]:2376")
    assert six.tls_endpoint == "tcp://[::1]:2376"
