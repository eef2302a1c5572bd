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

    # registry (ADR 0021)
    @property
    def registry_dir(self) -> Path:
        """The registry process's config, log, storage and the token-signing key."""
        return self.state_dir / "registry"

    @property
    def registry_config(self) -> Path:
        """The registry's ``config.yml`` (written by the controller at every start)."""
        return self.registry_dir / "config.yml"

    @property
    def registry_storage(self) -> Path:
        """The registry's filesystem storage: every namespace's blobs and manifests."""
        return self.registry_dir / "storage"

    @property
    def registry_log(self) -> Path:
        return self.registry_dir / "registry.log"

    @property
    def registry_token_dir(self) -> Path:
        """The key that signs registry tokens and its certificate (0700)."""
        return self.registry_dir / "token"

    @property
    def registry_token_key(self) -> Path:
        return self.registry_token_dir / "key.pem"

    @property
    def registry_token_cert(self) -> Path:
        """What the registry trusts tokens from (its ``rootcertbundle``)."""
        return self.registry_token_dir / "cert.pem"

    @property
    def registry_socket(self) -> Path:
        """Where the registry process listens (root only): the registry front and the
        daemon side reach it here."""
        return self.run_dir / "registry.sock"

    @property
    def registry_endpoint_file(self) -> Path:
        """Holds ``host:port`` of the registry front while the controller serves it
        (``dockyard env`` prints it as ``DOCKYARD_REGISTRY``)."""
        return self.run_dir / "registry.endpoint"

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
        """Each container's lasting files (its record, writable layer and logs), one
        directory per container."""
        return self.agent_dir / "containers"

    @property
    def agent_run_dir(self) -> Path:
        """The agent's runtime files: a tmpfs the agent mounts unless it is on one
        already (ADR 0023). Nothing here outlives the host's uptime, and creating files
        here costs a fraction of creating them on the state disk."""
        return self.run_dir / "agent"

    @property
    def bundles_dir(self) -> Path:
        """Each container's OCI bundle (config, rootfs mount point, conmon's and crun's
        files, the /etc files bind-mounted in), one directory per container."""
        return self.agent_run_dir / "bundles"

    @property
    def crun_root(self) -> Path:
        """crun's ``--root``: its state of every container of this instance."""
        return self.agent_run_dir / "crun"

    @property
    def volumes_dir(self) -> Path:
        return self.agent_dir / "volumes"

    @property
    def exits_dir(self) -> Path:
        return self.agent_run_dir / "exits"

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
