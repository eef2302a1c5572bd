"""Where one Dockyard instance keeps its files, sockets and kernel objects.

An instance is one embedded cloud (``make up``) or one test cloud. Everything it creates on
the host, on disk and in the kernel, is named from its :class:`Layout`, so two instances on
one machine never collide and cleanup can find everything by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.errors import InvalidArgument

__all__ = ["DEFAULT_RUN_DIR", "DEFAULT_STATE_DIR", "Layout"]

DEFAULT_STATE_DIR = Path("/var/lib/dockyard")
DEFAULT_RUN_DIR = Path("/run/dockyard")
_INSTANCE = re.compile(r"^[a-z][a-z0-9]{0,9}$")


@dataclass(frozen=True, slots=True)
class Layout:
    """Paths and kernel names of one instance.

    ``instance`` (1 to 10 lowercase letters and digits, starting with a letter) prefixes
    kernel objects: the cgroup root, the nftables table and bridge names.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    run_dir: Path = DEFAULT_RUN_DIR
    instance: str = "dockyard"

    def __post_init__(self) -> None:
        if not _INSTANCE.match(self.instance):
            raise InvalidArgument(f"invalid instance name {self.instance!r}")

    # controller
    @property
    def controller_dir(self) -> Path:
        return self.state_dir / "controller"

    @property
    def database(self) -> Path:
        return self.controller_dir / "dockyard.db"

    @property
    def blobs_dir(self) -> Path:
        return self.controller_dir / "blobs"

    @property
    def docker_socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_config_dir(self) -> Path:
        """The docker config the embedded cloud logs its local admin into (``dockyard up``;
        ``dockyard env`` points ``DOCKER_CONFIG`` at it)."""
        return self.state_dir / "docker-config"

    @property
    def tls_dir(self) -> Path:
        """The controller's certificate authority and its TLS listener's key pair."""
        return self.controller_dir / "tls"

    @property
    def tls_endpoint_file(self) -> Path:
        """Holds ``tcp://host:port`` of the TLS listener while the controller serves one
        (``dockyard env --tls`` reads it)."""
        return self.run_dir / "docker-tls.endpoint"

    @property
    def controller_socket(self) -> Path:
        """The controller's internal API, for agents."""
        return self.run_dir / "controller.sock"

    @property
    def controller_pidfile(self) -> Path:
        return self.run_dir / "controller.pid"

    # agent
    @property
    def agent_dir(self) -> Path:
        return self.state_dir / "agent"

    @property
    def agent_socket(self) -> Path:
        return self.run_dir / "agent.sock"

    @property
    def agent_pidfile(self) -> Path:
        return self.run_dir / "agent.pid"

    @property
    def layers_dir(self) -> Path:
        return self.agent_dir / "layers"

    @property
    def idmapped_dir(self) -> Path:
        return self.agent_dir / "idmapped"

    @property
    def containers_dir(self) -> Path:
        return self.agent_dir / "containers"

    @property
    def volumes_dir(self) -> Path:
        return self.agent_dir / "volumes"

    @property
    def exits_dir(self) -> Path:
        return self.run_dir / "exits"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    # kernel names
    @property
    def cgroup_root(self) -> str:
        return f"/{self.instance}"

    @property
    def nft_table(self) -> str:
        return self.instance

    def bridge_name(self, index: int) -> str:
        """Name of the bridge for network number ``index`` on this host (at most 15 chars)."""
        return f"{self.instance}{index}"
