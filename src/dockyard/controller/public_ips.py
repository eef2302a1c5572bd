"""PublicIpService: floating IPs from the operator's pools, held by tenants, bound to
containers (ADR 0016, ADR 0018).

A tenant requests an address (its ``public_ips`` quota permitting) and holds it until it
releases it; meanwhile the address may be bound to one of its containers at a time, and
moved from one container to another (a replacement keeps the address). A bound address
reaches the container's exposed ports (or its ``-p`` remappings) and the container's
egress leaves from it; the agent does that from the container's network spec
(``NetworkSpec.public_ip``, ``public_ports``), which this service pushes whole
(``AgentClient.update_network``) whenever the address comes or goes.

Order of a change: the agents first, then the store. Unbinding takes the address off the
container's agent before the store forgets the binding, so an address the API shows as
unbound never still carries traffic; binding puts it on the new container (after taking
it off the old one, if it moves) before the binding is recorded, and a failed push
changes nothing recorded (the old container gets the address back). Each change holds the
tenant's lock here and the containers' locks of the container service (the ones connect,
disconnect and start hold), so a concurrent push of the same container's spec reads
either the state before or after, never a half.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from dockyard.controller.agents import AgentClient
from dockyard.controller.networks import NetworkService
from dockyard.controller.quotas import QuotaService
from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
)
from dockyard.core.models import Container, IpPool, PublicIp
from dockyard.store.base import ALL_TENANTS, Store

__all__ = ["PoolUsage", "PublicIpService", "parse_address", "parse_pool", "pool_size"]

log = logging.getLogger("dockyard.controller")

# Never public: "this network", loopback, link-local, the routers' transit links
# (ADR 0016), multicast and the reserved and broadcast space above it.
_NEVER_PUBLIC = tuple(
    ipaddress.IPv4Network(n)
    for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "224.0.0.0/3")
)


def parse_pool(text: str) -> ipaddress.IPv4Network:
    """A pool's range: an IPv4 network written with its network address (``/32`` for a
    single address, the default without a prefix). InvalidArgument otherwise, or when it
    overlaps space that is never public."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid public IP pool {text!r}: {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidArgument(f"only IPv4 public IP pools are supported, not {text}")
    for never in _NEVER_PUBLIC:
        if network.overlaps(never):
            raise InvalidArgument(f"public IP pool {network} overlaps {never}, which is reserved")
    return network


def pool_size(cidr: str) -> int:
    """How many addresses a range hands out: all of a /31 or /32, else all but its
    network and broadcast addresses."""
    network = ipaddress.IPv4Network(cidr)
    return network.num_addresses if network.prefixlen >= 31 else network.num_addresses - 2


def parse_address(text: str) -> str:
    """An IPv4 address in its usual form; InvalidArgument otherwise."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid public IP {text!r}") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise InvalidArgument(f"only IPv4 public IPs exist, not {text}")
    return str(address)


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """A pool with how many addresses it can hand out and how many tenants hold."""

    pool: IpPool
    size: int
    held: int


class PublicIpService:
    """Lifecycle: one per controller; it counts the tenants' ``public_ips`` quota
    (:attr:`QuotaService.count_public_ips`). An address or container of another tenant is
    NotFound, as a missing one."""

    def __init__(
        self,
        *,
        store: Store,
        quotas: QuotaService,
        networks: NetworkService,
        agent_for: Callable[[str], AgentClient],
        container_lock: Callable[[str], asyncio.Lock],
    ) -> None:
        self._store = store
        self._quotas = quotas
        self._networks = networks
        self._agent_for = agent_for
        self._container_lock = container_lock
        self._locks: dict[str, asyncio.Lock] = {}
        quotas.count_public_ips = self.count

    # the operator's pools -----------------------------------------------------------------

    def add_pool(self, cidr: str) -> IpPool:
        """Add a range. InvalidArgument for a malformed or reserved one, AlreadyExists for
        one already there, Conflict for one overlapping another."""
        pool = IpPool(cidr=str(parse_pool(cidr)), created=now_ns())
        self._store.add_ip_pool(pool)
        return pool

    def ensure_pools(self, cidrs: Iterable[str]) -> None:
        """Add the ranges of the controller's configuration that are missing; one that
        overlaps a range added otherwise is logged and left out (the controller serves
        on, as the operator can fix it through the API)."""
        for cidr in cidrs:
            try:
                self.add_pool(cidr)
            except AlreadyExists:
                continue
            except Conflict as exc:
                log.error("--public-pool %s left out: %s", cidr, exc.message)  # noqa: TRY400

    def pools(self) -> list[PoolUsage]:
        held = [ipaddress.IPv4Address(p.address) for p in self.list_ips(tenant=ALL_TENANTS)]
        out = []
        for pool in self._store.list_ip_pools():
            network = ipaddress.IPv4Network(pool.cidr)
            out.append(PoolUsage(pool, pool_size(pool.cidr), sum(1 for a in held if a in network)))
        return out

    def remove_pool(self, cidr: str) -> None:
        """Remove a range; Conflict while a tenant holds one of its addresses, NotFound
        for an unknown one."""
        self._store.delete_ip_pool(str(parse_pool(cidr)))

    # a tenant's addresses -------------------------------------------------------------------

    def count(self, tenant: str) -> int:
        """Public IPs the tenant holds (its ``public_ips`` quota's use)."""
        return len(self._store.list_public_ips(tenant=tenant))

    def list_ips(self, *, tenant: str) -> list[PublicIp]:
        return self._store.list_public_ips(tenant=tenant)

    def get(self, *, tenant: str, address: str) -> PublicIp:
        """InvalidArgument for a malformed address, NotFound unless the tenant holds it."""
        return self._store.get_public_ip(tenant=tenant, address=parse_address(address))

    async def request(self, *, tenant: str) -> PublicIp:
        """A new address for the tenant, unbound. QuotaExceeded (naming ``public_ips``)
        past its quota; Unavailable when the pools have none left."""
        async with self._quotas.lock(tenant):
            # No await between the check and the allocation: the new address counts at once.
            self._quotas.check_public_ips(tenant)
            return self._store.allocate_public_ip(tenant=tenant, created=now_ns())

    async def bind(self, *, tenant: str, address: str, container_ref: str) -> PublicIp:
        """Bind the tenant's ``address`` to its container ``container_ref`` (id, name or
        unique id prefix), taking it from the container it was bound to (moved, not
        refused). Binding it to the container it is bound to pushes the spec again.

        NotFound for an address or container the tenant does not have; Conflict if the
        container has another public IP, has no network of its own (network mode ``none``
        or ``container:``, or only an internal network first), or is being created or
        removed; Unavailable if an agent cannot be reached (nothing then changes).
        """
        address = parse_address(address)
        async with self._tenant_lock(tenant):
            held = self._store.get_public_ip(tenant=tenant, address=address)
            container = self._store.get_container(tenant=tenant, ref=container_ref)
            bound = self._store.public_ip_of(tenant=tenant, container_id=container.id)
            if bound and bound != address:
                raise Conflict(
                    f"container {container.name} already has public IP {bound}: unbind it first"
                )
            old = held.container if held.container != container.id else ""
            async with self._locked(old, container.id):
                container = self._store.get_container(tenant=tenant, ref=container.id)
                _check_bindable(container, self._networks)
                previous = self._current(tenant, old)
                if previous is not None:
                    await self._push(previous, "")  # never on two containers at once
                try:
                    await self._push(container, address)
                    self._store.bind_public_ip(
                        tenant=tenant, address=address, container_id=container.id
                    )
                except BaseException:
                    # Back to what the store still says; the caller sees the first error.
                    with contextlib.suppress(DockyardError):
                        await self._push(container, bound)
                    if previous is not None:
                        with contextlib.suppress(DockyardError):
                            await self._push(previous, address)
                    raise
        return self._store.get_public_ip(tenant=tenant, address=address)

    async def unbind(self, *, tenant: str, address: str) -> PublicIp:
        """Take the tenant's ``address`` off its container (its traffic stops at once) and
        forget the binding; an unbound address stays as it is. NotFound unless the tenant
        holds it; Unavailable if the container's agent cannot be reached (it stays bound).
        """
        address = parse_address(address)
        async with self._tenant_lock(tenant):
            await self._unbind_locked(tenant, address)
            return self._store.get_public_ip(tenant=tenant, address=address)

    async def release(self, *, tenant: str, address: str) -> PublicIp:
        """Unbind the tenant's ``address`` if bound, then return it to the pool; the record
        as it was. NotFound unless the tenant holds it."""
        address = parse_address(address)
        async with self._tenant_lock(tenant):
            held = await self._unbind_locked(tenant, address)
            self._store.release_public_ip(tenant=tenant, address=address)
            return held

    # internals ----------------------------------------------------------------------------

    def _tenant_lock(self, tenant: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _locked(self, *container_ids: str) -> AsyncIterator[None]:
        """The containers' locks, in id order (the container service takes one at a time,
        so this order is enough to never deadlock)."""
        async with contextlib.AsyncExitStack() as stack:
            for container_id in sorted({c for c in container_ids if c}):
                await stack.enter_async_context(self._container_lock(container_id))
            yield

    async def _unbind_locked(self, tenant: str, address: str) -> PublicIp:
        held = self._store.get_public_ip(tenant=tenant, address=address)
        if held.container:
            async with self._locked(held.container):
                container = self._current(tenant, held.container)
                if container is not None:
                    # NotFound: its agent no longer has it, so nothing carries the address.
                    with contextlib.suppress(NotFound):
                        await self._push(container, "")
                self._store.unbind_public_ip(tenant=tenant, address=address)
        return held

    def _current(self, tenant: str, container_id: str) -> Container | None:
        """The container's record if it exists and is not being removed (a container on
        its way out needs no push: its agent deletes it with its addresses)."""
        if not container_id:
            return None
        try:
            container = self._store.get_container(tenant=tenant, ref=container_id)
        except NotFound:
            return None
        return None if container.phase == "removing" else container

    async def _push(self, container: Container, public_ip: str) -> None:
        spec = self._networks.spec(container, public_ip=public_ip)
        await self._agent_for(container.host).update_network(container.id, spec)


def _check_bindable(container: Container, networks: NetworkService) -> None:
    if container.phase:
        doing = "created" if container.phase == "creating" else "removed"
        raise Conflict(f"container {container.name} is being {doing}")
    mode = container.host_config.network_mode
    if mode.startswith("container:") or not container.endpoints:
        raise Conflict(
            f"container {container.name} has no network of its own (network mode {mode}): "
            "a public IP needs one"
        )
    first = networks.find(tenant=container.tenant, network_id=container.endpoints[0].network_id)
    if first is not None and first.internal:
        raise Conflict(
            f"container {container.name} is first on internal network {first.name}, "
            "whose traffic never leaves the tenant: a public IP cannot reach it"
        )
