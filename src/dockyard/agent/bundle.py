"""Turning a CreateRequest into files in the container's bundle and an OCI config.

Pure helpers plus small file writes; the lifecycle lives in :mod:`containers`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path

from dockyard.core.errors import InvalidArgument
from dockyard.core.protocol import CreateRequest
from dockyard.core.tmpfs import tmpfs_options
from dockyard.runtime.paths import BundlePaths
from dockyard.runtime.spec import BundleSpec, Mount
from dockyard.runtime.users import ResolvedUser

__all__ = [
    "INIT_PATH",
    "Peer",
    "bundle_spec",
    "process_env",
    "resolv_conf",
    "write_etc_files",
]

INIT_PATH = "/sbin/docker-init"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass(frozen=True, slots=True)
class Peer:
    """The running container whose network a ``container:<id>`` container joins: its
    main process, its bundle (whose /etc files are shared) and its host name."""

    pid: int
    paths: BundlePaths
    hostname: str
    domainname: str = ""


def resolv_conf(req: CreateRequest, host_resolv: Path) -> str:
    """The container's resolv.conf: the request's servers; else, on tenant networks, the
    gateway of its first network (the embedded DNS server answers there, ADR 0016);
    else the host's minus loopback ones (a container cannot reach the host's
    127.0.0.53). Search domains and options: the request's, else the host's; with the
    embedded DNS server also ``ndots:0`` (as Docker writes it), so a single-label name
    goes to the server as typed before any search domain."""
    servers = list(req.dns)
    search = list(req.dns_search)
    options = list(req.dns_options)
    if not servers:
        host_servers, host_search, host_options = _parse_resolv(host_resolv)
        if req.network.mode == "tenant" and req.network.endpoints:
            servers = [req.network.endpoints[0].gateway]
        else:
            if host_servers and all(_is_loopback(s) for s in host_servers):
                # systemd-resolved's stub: its upstream servers are listed here (as Docker
                # does).
                host_servers = _parse_resolv(_RESOLVED_UPSTREAM)[0]
            servers = [s for s in host_servers if not _is_loopback(s)]
        search = search or host_search
        options = options or host_options
        embedded = req.network.mode == "tenant" and bool(req.network.endpoints)
        if embedded and not any(o.startswith("ndots:") for o in options):
            options = [*options, "ndots:0"]
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search:
        text += f"search {' '.join(search)}\n"
    if options:
        text += f"options {' '.join(options)}\n"
    return text


_RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


def _parse_resolv(path: Path) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return servers, search, options
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[0] == "nameserver":
            servers.append(parts[1])
        elif parts[0] == "search":
            search = parts[1:]
        elif parts[0] == "options":
            options = parts[1:]
    return servers, search, options


def _hosts(req: CreateRequest) -> str:
    text = _HOSTS_HEADER
    names = req.hostname + (f".{req.domainname} {req.hostname}" if req.domainname else "")
    if req.network.mode == "tenant" and req.network.endpoints:
        text += f"{req.network.endpoints[0].ip}\t{names}\n"
    for entry in req.extra_hosts:
        host, sep, address = entry.partition(":")
        if not sep or not host or not address:
            raise InvalidArgument(f"invalid argument {entry!r} for --add-host: expected host:ip")
        text += f"{address}\t{host}\n"
    return text


def write_etc_files(paths: BundlePaths, req: CreateRequest, *, host_resolv: Path) -> None:
    """Write hostname, hosts and resolv.conf, owned by the container's root."""
    files = {
        paths.hostname: f"{req.hostname}\n",
        paths.hosts: _hosts(req),
        paths.resolv_conf: resolv_conf(req, host_resolv),
    }
    for path, text in files.items():
        path.write_text(text)
        os.chown(path, req.uid_base, req.uid_base)
        os.chmod(path, 0o644)


def process_env(req: CreateRequest, *, home: str) -> tuple[str, ...]:
    """The request's environment plus what Docker adds: PATH, HOSTNAME, HOME, TERM."""
    env = list(req.process.env)
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, DEFAULT_PATH)
    if "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={req.hostname}")
    if req.process.tty and "TERM" not in keys:
        env.append("TERM=xterm")
    if "HOME" not in keys:
        env.append(f"HOME={home or '/'}")
    return tuple(env)


def bundle_spec(
    req: CreateRequest,
    *,
    paths: BundlePaths,
    user: ResolvedUser,
    volumes: dict[str, Path],
    cgroups_path: str,
    seccomp: dict[str, object] | None,
    seccomp_program: str,
    nofile: int,
    init_binary: Path,
    peer: Peer | None = None,
) -> BundleSpec:
    """Everything for ``config.json``; ``volumes`` maps volume names to host paths.

    With ``peer`` (network mode ``container:``) the container joins the peer's network
    namespace and shares its /etc/hostname, /etc/hosts and /etc/resolv.conf and its host
    name, as Docker does.
    """
    etc = peer.paths if peer is not None else paths
    mounts = [
        Mount("/etc/hostname", "bind", str(etc.hostname), ("rbind", "rprivate")),
        Mount("/etc/hosts", "bind", str(etc.hosts), ("rbind", "rprivate")),
        Mount("/etc/resolv.conf", "bind", str(etc.resolv_conf), ("rbind", "rprivate")),
    ]
    for m in req.mounts:
        if m.type == "volume":
            options = ("rbind", "rprivate", "nosuid", "nodev", "ro" if m.read_only else "rw")
            mounts.append(Mount(m.target, "bind", str(volumes[m.source]), options))
        elif m.type == "tmpfs":
            opts = tmpfs_options(m.options)
            mounts.append(
                Mount(m.target, "tmpfs", "tmpfs", opts + (("ro",) if m.read_only else ()))
            )
        else:
            raise InvalidArgument(f"unsupported mount type {m.type!r}")
    args = req.process.args
    if req.init:
        mounts.append(Mount(INIT_PATH, "bind", str(init_binary), ("rbind", "ro", "rprivate")))
        args = (INIT_PATH, "--", *args)
    return BundleSpec(
        args=args,
        env=process_env(
            req if peer is None else replace(req, hostname=peer.hostname), home=user.home
        ),
        cwd=req.process.cwd or "/",
        uid=user.uid,
        gid=user.gid,
        additional_gids=user.additional_gids,
        terminal=req.process.tty,
        hostname=peer.hostname if peer is not None else req.hostname,
        domainname=peer.domainname if peer is not None else req.domainname,
        uid_base=req.uid_base,
        uid_size=req.uid_size,
        cgroups_path=cgroups_path,
        capabilities=req.capabilities,
        seccomp=dict(seccomp) if seccomp is not None else None,
        seccomp_program=seccomp_program,
        nofile=nofile,
        readonly_rootfs=req.readonly_rootfs,
        mounts=tuple(mounts),
        resources=req.resources,
        shm_size=req.shm_size,
        oom_score_adj=req.oom_score_adj,
        join_pid=peer.pid if peer is not None else 0,
    )
