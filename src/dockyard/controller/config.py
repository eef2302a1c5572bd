"""Settings of one controller: where it keeps things and the defaults it applies."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.controller.namespaces import DEFAULT_NAMESPACE_LIMIT
from dockyard.controller.plans import DEFAULT_PLAN, builtin_plans
from dockyard.core.certs import CLIENT_CERT_MAX_TTL
from dockyard.core.errors import InvalidArgument
from dockyard.core.layout import Layout
from dockyard.core.quotas import Plan
from dockyard.core.sizes import DEFAULT_SIZE

__all__ = [
    "DEFAULT_AUDIT_KEEP",
    "DEFAULT_AUDIT_MAX_AGE",
    "DEFAULT_BRIDGE_SUBNET",
    "DEFAULT_DEFAULT_SUBNET",
    "DEFAULT_EVENTS_KEEP",
    "DEFAULT_EVENTS_MAX_AGE",
    "DEFAULT_UID_RANGE_START",
    "ControllerConfig",
    "default_tls_names",
    "parse_address",
]

MIB = 1024 * 1024
DEFAULT_EVENTS_KEEP = 10_000
DEFAULT_EVENTS_MAX_AGE = 7 * 24 * 3600 * 1_000_000_000  # a week, in ns
DEFAULT_AUDIT_KEEP = 100_000
DEFAULT_AUDIT_MAX_AGE = 90 * 24 * 3600 * 1_000_000_000  # 90 days, in ns
DEFAULT_BRIDGE_SUBNET = "172.17.0.0/16"
DEFAULT_DEFAULT_SUBNET = "172.18.0.0/16"
DEFAULT_UID_RANGE_START = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """``bridge_subnet`` and ``default_subnet`` are the subnets of every tenant's
    predefined ``bridge`` and ``default`` networks (ADR 0016: tenants' subnets live in
    their own router namespaces, so every tenant may have the same ones).
    ``uid_range_start`` is the first host uid handed to tenants. The ``default_*`` limits
    apply when a create asks for none, so that one container can never take the host down
    (a fork bomb meets ``default_pids``); a container's memory is that of its size
    (``dockyard.core.sizes``), ``default_size`` when it asks for none."""

    layout: Layout
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET
    default_subnet: str = DEFAULT_DEFAULT_SUBNET
    uid_range_start: int = DEFAULT_UID_RANGE_START
    default_size: str = DEFAULT_SIZE
    default_pids: int = 1024
    default_stop_timeout: int = 10
    log_max_size: int = 16 * MIB
    """Log files of a container that asks for no ``max-size`` hold this many bytes each."""
    log_max_files: int = 3
    """... and at most this many files are kept (``max-file``)."""
    log_max_bytes: int = 256 * MIB
    """The ceiling of ``max-size`` x ``max-file`` for any container (a larger request gets a
    smaller ``max-size`` and a warning)."""
    log_max_files_limit: int = 16
    """The ceiling of ``max-file`` (a larger request is cut down, with a warning)."""
    memory_overcommit: float = 4.0
    """Placement counts a host's memory this many times over: limits are ceilings, and
    most containers use a fraction of theirs (the operator's choice; 1.0 = none)."""
    events_keep: int = DEFAULT_EVENTS_KEEP
    """Events each tenant keeps at most (0: no bound by count)."""
    events_max_age: int = DEFAULT_EVENTS_MAX_AGE
    """Events older than this (ns) are dropped (0: no bound by age)."""
    audit_keep: int = DEFAULT_AUDIT_KEEP
    """Audit records each tenant keeps at most (0: no bound by count)."""
    audit_max_age: int = DEFAULT_AUDIT_MAX_AGE
    """Audit records older than this (ns) are dropped (0: no bound by age)."""
    tls_address: str = ""
    """``host:port`` of the TLS listener (client certificates required); empty: none."""
    tls_names: tuple[str, ...] = ()
    """Host names and IPs the listener's certificate is valid for."""
    client_cert_max_ttl: int = CLIENT_CERT_MAX_TTL
    """The longest lifetime of a client certificate, in seconds."""
    plans: Mapping[str, Plan] = field(default_factory=builtin_plans)
    """Plans tenants can be on, by name (``controller.plans``; ``--plans`` adds to them)."""
    default_plan: str = DEFAULT_PLAN
    """The plan of a tenant whose plan was never chosen, or is no longer offered."""
    reserved_namespaces: tuple[str, ...] = ()
    """Registry namespaces kept for the operator's curated images, beside ``library``:
    tenants cannot claim them (``controller.namespaces``)."""
    namespace_limit: int = DEFAULT_NAMESPACE_LIMIT
    """Registry namespaces a tenant may claim itself (0: no limit; the operator may
    assign more)."""
    public_pools: tuple[str, ...] = ()
    """Ranges of public addresses (CIDRs) added to the floating-IP pools at start if
    missing (the operator adds and removes more through the API)."""
    registry_address: str = ""
    """``host:port`` of the registry front (token service and ``/v2/`` pass-through to
    the registry process, ADR 0021); empty: none."""
    registry_binary: str = "docker-registry"
    """The CNCF distribution server the controller runs as its registry."""

    @property
    def tls_endpoint(self) -> str:
        """``tcp://host:port`` of the TLS listener for clients ("" without one); a wildcard
        address is advertised by this host's name."""
        if not self.tls_address:
            return ""
        host, port = parse_address(self.tls_address)
        if _is_unspecified(host):
            host = socket.gethostname()
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"

    @property
    def registry_endpoint(self) -> str:
        """``host:port`` clients reach the registry front at ("" without one); a wildcard
        address is advertised by this host's name."""
        if not self.registry_address:
            return ""
        host, port = parse_address(self.registry_address)
        if _is_unspecified(host):
            host = socket.gethostname()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (``[v6]:port`` for IPv6); InvalidArgument else."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"invalid address {text!r}: expected host:port")
    return host, int(port)


def default_tls_names(address: str) -> tuple[str, ...]:
    """The names the TLS listener's certificate is valid for when none are configured:
    localhost, the loopback addresses, this host's name and the listening address."""
    host, _ = parse_address(address)
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if not _is_unspecified(host):
        names.append(host)
    return tuple(dict.fromkeys(names))


def _is_unspecified(host: str) -> bool:
    """Whether ``host`` is a wildcard address (0.0.0.0 or ::)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
