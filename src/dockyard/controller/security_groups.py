"""SecurityGroupService: a tenant's security groups, their rules, and which containers are
in them (ADR 0016).

Containers on one tenant network talk freely; anything else (another network, another
tenant, the public side) reaches a container only where a rule of one of its groups lets
it in (a ``-p`` publish is an allow of its own, as in Docker). Every tenant has a
``default`` group, made on first use, with no rules, that cannot be removed: a container
whose create names no group (label :data:`GROUPS_LABEL`) is in it.

A container's groups are part of its record (``Container.security_groups``), changed
under its lock by the container service (:class:`Members`). The agent learns them from the
network spec: at create, at ``network connect``, and whenever they or a rule of one of
them change, when the controller pushes the container's whole new spec
(``AgentClient.update_network``) to every container the agent holds, whatever its state
(a stopped one gets it at its next start). The change is saved first; a push that fails
(agent away) is retried in the background until it lands or the container is gone, so the
agents converge on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

from dockyard.controller.agents import AgentClient
from dockyard.controller.networks import NetworkService, group_records
from dockyard.core.clock import now_ns
from dockyard.core.errors import (
    AlreadyExists,
    Conflict,
    DockyardError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from dockyard.core.ids import new_id
from dockyard.core.models import Container, SecurityGroup, SecurityGroupRule
from dockyard.store.base import Store

__all__ = [
    "DEFAULT_GROUP",
    "GROUPS_LABEL",
    "MAX_GROUPS_PER_CONTAINER",
    "MAX_RULES",
    "PROTOCOLS",
    "Change",
    "GroupRequest",
    "Members",
    "RuleRequest",
    "SecurityGroupService",
    "ensure_default_group",
    "group_records",
    "groups_for_create",
]

log = logging.getLogger("dockyard.controller")

DEFAULT_GROUP: Final = "default"
GROUPS_LABEL: Final = "dockyard.security-groups"
"""``docker run --label dockyard.security-groups=web,db``: the groups a new container is in
(names, ids or id prefixes, comma-separated) instead of ``default``."""
PROTOCOLS: Final = ("tcp", "udp", "icmp", "all")
MAX_RULES: Final = 100
"""Rules per group: what one endpoint adds to its router's sets stays bounded (ADR 0016)."""
MAX_GROUPS_PER_CONTAINER: Final = 16
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_MAX_DESCRIPTION = 255
_RETRY_INTERVAL = 5.0  # seconds between attempts to push specs an agent did not take
_PUSHES_AT_ONCE = 32  # a rule change of a big group must not open a connection per member


@dataclass(frozen=True, slots=True)
class GroupRequest:
    name: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleRequest:
    """An ingress rule as asked for. For tcp and udp, no ``port_min`` means every port and
    no ``port_max`` means ``port_min`` alone; icmp and all take no ports (0 is no port for
    them). Exactly one of ``source`` (an IPv4 address or prefix) and ``source_group`` (a
    group of the same tenant: name, id or id prefix)."""

    protocol: str
    port_min: int | None = None
    port_max: int | None = None
    source: str = ""
    source_group: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """What a change to a group or a container's groups came to. ``unapplied``: ids of
    containers whose agent has not taken the new network spec yet (it is retried in the
    background)."""

    group: SecurityGroup
    rule: SecurityGroupRule | None = None
    container: Container | None = None
    unapplied: tuple[str, ...] = ()


class Members(Protocol):
    """What the service needs of the containers (``ContainerService``)."""

    def get(self, *, tenant: str, ref: str) -> Container: ...

    async def set_security_groups(
        self, *, tenant: str, container_id: str, change: Callable[[Container], list[str]]
    ) -> Container:
        """Under the container's lock, with no await between the two: call ``change`` with
        its current record (it raises to refuse) and save the groups it returns."""


# what container creates and specs need (functions of the store, so that the container
# service need not hold this service, which holds it) -----------------------------------


def ensure_default_group(store: Store, tenant: str) -> SecurityGroup:
    """The tenant's ``default`` group, made now if it is missing."""
    try:
        return store.get_security_group(tenant=tenant, ref=DEFAULT_GROUP)
    except NotFound:
        pass
    group = SecurityGroup(
        id=new_id(),
        tenant=tenant,
        name=DEFAULT_GROUP,
        created=now_ns(),
        description="containers that name no security group",
        builtin=True,
    )
    with contextlib.suppress(AlreadyExists):  # made by a concurrent caller
        store.add_security_group(group)
        return group
    return store.get_security_group(tenant=tenant, ref=DEFAULT_GROUP)


def groups_for_create(store: Store, *, tenant: str, labels: Mapping[str, str]) -> list[str]:
    """Ids of the groups a new container is in: those its :data:`GROUPS_LABEL` label names,
    else ``default``. NotFound names the first group the tenant lacks."""
    names = [n.strip() for n in labels.get(GROUPS_LABEL, "").split(",") if n.strip()]
    if not names:
        return [ensure_default_group(store, tenant).id]
    ids: list[str] = []
    for name in names:
        try:
            group = store.get_security_group(tenant=tenant, ref=name)
        except NotFound:
            if name != DEFAULT_GROUP:
                raise NotFound(f"security group {name} not found (label {GROUPS_LABEL})") from None
            group = ensure_default_group(store, tenant)
        ids.append(group.id)
    chosen = list(dict.fromkeys(ids))
    if len(chosen) > MAX_GROUPS_PER_CONTAINER:
        raise InvalidArgument(
            f"a container can be in at most {MAX_GROUPS_PER_CONTAINER} security groups"
        )
    return chosen


# the service ------------------------------------------------------------------------------


class SecurityGroupService:
    """Lifecycle: one per controller; :meth:`start` the retry of unapplied pushes,
    :meth:`close` it. Everything is per tenant: another tenant's group or container is
    NotFound, exactly as a missing one."""

    def __init__(
        self,
        *,
        store: Store,
        networks: NetworkService,
        containers: Members,
        agent_for: Callable[[str], AgentClient],
    ) -> None:
        self._store = store
        self._networks = networks
        self._containers = containers
        self._agent_for = agent_for
        self._serial: dict[str, tuple[asyncio.Lock, int]] = {}
        self._unapplied: dict[str, str] = {}  # container id -> tenant
        self._task: asyncio.Task[None] | None = None

    # reading ------------------------------------------------------------------------------

    def list_groups(self, *, tenant: str) -> list[SecurityGroup]:
        groups = self._store.list_security_groups(tenant=tenant)
        if not any(g.builtin for g in groups):
            ensure_default_group(self._store, tenant)
            groups = self._store.list_security_groups(tenant=tenant)
        return groups

    def get(self, *, tenant: str, ref: str) -> SecurityGroup:
        """The tenant's group by name, id or unique id prefix."""
        try:
            return self._store.get_security_group(tenant=tenant, ref=ref)
        except NotFound:
            if ref != DEFAULT_GROUP:
                raise
        return ensure_default_group(self._store, tenant)

    def members(self, group: SecurityGroup) -> list[Container]:
        """The containers in the group (creates under way included)."""
        found = []
        for container_id in self._store.security_group_users(
            tenant=group.tenant, group_id=group.id
        ):
            with contextlib.suppress(NotFound):
                found.append(self._containers.get(tenant=group.tenant, ref=container_id))
        return found

    def of_container(self, *, tenant: str, ref: str) -> tuple[Container, list[SecurityGroup]]:
        """A container of the tenant and the records of its groups."""
        container = self._containers.get(tenant=tenant, ref=ref)
        return container, group_records(self._store, container)

    # groups -------------------------------------------------------------------------------

    def create(self, *, tenant: str, request: GroupRequest) -> SecurityGroup:
        """A new group without rules. InvalidArgument for a bad name or description,
        AlreadyExists for a taken name (``default`` is always taken)."""
        name = request.name
        if not name:
            raise InvalidArgument("security group name is missing")
        if not _NAME.match(name):
            raise InvalidArgument(
                f"invalid security group name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                "allowed, at most 128 characters"
            )
        if len(request.description) > _MAX_DESCRIPTION:
            raise InvalidArgument(f"a description has at most {_MAX_DESCRIPTION} characters")
        ensure_default_group(self._store, tenant)
        group = SecurityGroup(
            id=new_id(),
            tenant=tenant,
            name=name,
            created=now_ns(),
            description=request.description,
            labels=dict(request.labels),
        )
        self._store.add_security_group(group)
        return group

    def remove(self, *, tenant: str, ref: str) -> SecurityGroup:
        """Remove a group. PermissionDenied for ``default``; Conflict, naming them, while
        containers are in it or another group's rule lets its members in."""
        group = self.get(tenant=tenant, ref=ref)
        if group.builtin:
            raise PermissionDenied(
                f"{group.name} is the tenant's default security group and cannot be removed"
            )
        try:
            self._store.delete_security_group(tenant=tenant, group_id=group.id)
        except Conflict:
            raise Conflict(self._in_use(group)) from None
        return group

    def _in_use(self, group: SecurityGroup) -> str:
        members = [c.name for c in self.members(group)]
        if members:
            shown = ", ".join(members[:5]) + (
                f" and {len(members) - 5} more" if len(members) > 5 else ""
            )
            return (
                f"security group {group.name} is in use by containers {shown}: detach them "
                "first (dockyard sg detach CONTAINER GROUP)"
            )
        referrers = [
            g.name
            for g in self._store.list_security_groups(tenant=group.tenant)
            if g.id != group.id and any(r.source_group == group.id for r in g.rules)
        ]
        return (
            f"security group {group.name} is the source of rules of security groups "
            f"{', '.join(referrers)}: remove those rules first"
        )

    # rules --------------------------------------------------------------------------------

    async def add_rule(self, *, tenant: str, ref: str, request: RuleRequest) -> Change:
        """Add an ingress rule and push the new rules to the group's containers.
        InvalidArgument for a malformed rule (see :class:`RuleRequest`), AlreadyExists for
        one the group has."""
        group = self.get(tenant=tenant, ref=ref)
        rule = self._rule(tenant, request)
        same = next((r for r in group.rules if _same(r, rule)), None)
        if same is not None:
            raise AlreadyExists(
                f"security group {group.name} already has this rule ({same.id[:12]})"
            )
        if len(group.rules) >= MAX_RULES:
            raise InvalidArgument(f"a security group has at most {MAX_RULES} rules")
        changed = replace(group, rules=(*group.rules, rule))
        self._store.put_security_group(changed)
        return Change(group=changed, rule=rule, unapplied=await self._push_members(changed))

    async def remove_rule(self, *, tenant: str, ref: str, rule: str) -> Change:
        """Remove the rule with this id (or unique id prefix) and push the group's
        containers; NotFound if the group has no such rule."""
        group = self.get(tenant=tenant, ref=ref)
        matches = [r for r in group.rules if r.id == rule] or [
            r for r in group.rules if rule and r.id.startswith(rule)
        ]
        if len(matches) != 1:
            raise NotFound(f"security group {group.name} has no rule {rule}")
        gone = matches[0]
        changed = replace(group, rules=tuple(r for r in group.rules if r.id != gone.id))
        self._store.put_security_group(changed)
        return Change(group=changed, rule=gone, unapplied=await self._push_members(changed))

    def _rule(self, tenant: str, request: RuleRequest) -> SecurityGroupRule:
        protocol = request.protocol.lower()
        if protocol not in PROTOCOLS:
            raise InvalidArgument(
                f"invalid protocol {request.protocol!r}: one of {', '.join(PROTOCOLS)}"
            )
        low, high = 0, 0
        if protocol in ("tcp", "udp"):
            if request.port_min is None:
                if request.port_max is not None:
                    raise InvalidArgument("a port range needs its first port (port_min)")
                low, high = 1, 65535
            else:
                low = request.port_min
                high = low if request.port_max is None else request.port_max
            for port in (low, high):
                if not 1 <= port <= 65535:
                    raise InvalidArgument(f"invalid port {port}: ports are 1-65535")
            if low > high:
                raise InvalidArgument(f"invalid port range {low}-{high}: the first is higher")
        elif request.port_min or request.port_max:
            raise InvalidArgument(f"protocol {protocol} takes no ports (only tcp and udp do)")
        if bool(request.source) == bool(request.source_group):
            raise InvalidArgument(
                "a rule needs exactly one source: an IPv4 prefix (source) or a security "
                "group (source_group)"
            )
        source, source_group = "", ""
        if request.source:
            source = _prefix(request.source)
        else:
            try:
                source_group = self.get(tenant=tenant, ref=request.source_group).id
            except NotFound:
                raise InvalidArgument(
                    f"source group {request.source_group}: no such security group"
                ) from None
        return SecurityGroupRule(
            id=new_id(),
            protocol=protocol,
            port_min=low,
            port_max=high,
            source=source,
            source_group=source_group,
            created=now_ns(),
        )

    # containers ---------------------------------------------------------------------------

    async def attach(self, *, tenant: str, container: str, group: str) -> Change:
        """Put a container (name, id or unique id prefix) in a group and push its new
        spec. Conflict if it is in it already or is being created or removed."""
        record = self._containers.get(tenant=tenant, ref=container)
        chosen = self.get(tenant=tenant, ref=group)

        def change(current: Container) -> list[str]:
            _check_settled(current)
            if chosen.id in current.security_groups:
                raise Conflict(
                    f"container {current.name} is already in security group {chosen.name}"
                )
            if len(current.security_groups) >= MAX_GROUPS_PER_CONTAINER:
                raise InvalidArgument(
                    f"a container can be in at most {MAX_GROUPS_PER_CONTAINER} security groups"
                )
            # Removed while we waited for the container's lock? Then it cannot be joined.
            self._store.get_security_group(tenant=tenant, ref=chosen.id)
            return [*current.security_groups, chosen.id]

        updated = await self._containers.set_security_groups(
            tenant=tenant, container_id=record.id, change=change
        )
        unapplied = await self._push_each([(tenant, updated.id)])
        return Change(group=chosen, container=updated, unapplied=unapplied)

    async def detach(self, *, tenant: str, container: str, group: str) -> Change:
        """Take a container out of a group and push its new spec. Conflict if it is not in
        it. A container may end in no group: then nothing outside its networks gets in."""
        record = self._containers.get(tenant=tenant, ref=container)
        chosen = self.get(tenant=tenant, ref=group)

        def change(current: Container) -> list[str]:
            _check_settled(current)
            if chosen.id not in current.security_groups:
                raise Conflict(f"container {current.name} is not in security group {chosen.name}")
            return [g for g in current.security_groups if g != chosen.id]

        updated = await self._containers.set_security_groups(
            tenant=tenant, container_id=record.id, change=change
        )
        unapplied = await self._push_each([(tenant, updated.id)])
        return Change(group=chosen, container=updated, unapplied=unapplied)

    # pushing specs to agents --------------------------------------------------------------

    def unapplied(self) -> dict[str, str]:
        """Container id -> tenant of every container whose agent has not taken its
        current network spec yet."""
        return dict(self._unapplied)

    async def _push_members(self, group: SecurityGroup) -> tuple[str, ...]:
        users = self._store.security_group_users(tenant=group.tenant, group_id=group.id)
        return await self._push_each([(group.tenant, u) for u in users])

    async def _push_each(self, targets: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """Push each container's spec, a few at a time; the ids of those not applied."""
        slots = asyncio.Semaphore(_PUSHES_AT_ONCE)

        async def push(tenant: str, container_id: str) -> bool:
            async with slots:
                return await self._push(tenant, container_id)

        applied = await asyncio.gather(*(push(t, c) for t, c in targets))
        return tuple(c for (_, c), ok in zip(targets, applied, strict=True) if not ok)

    async def _push(self, tenant: str, container_id: str) -> bool:
        """Send the container's whole current network spec to its agent; whether it is in
        place (or needs none). Pushes to one container run one at a time, each computed
        from the records as they are when it starts, so the last one sent is current."""
        async with self._serialised(container_id):
            try:
                container = self._store.get_container(tenant=tenant, ref=container_id)
            except NotFound:
                self._unapplied.pop(container_id, None)
                return True
            if container.phase == "removing" or not container.endpoints:
                self._unapplied.pop(container_id, None)
                return True
            if container.phase == "creating":
                # Its create may have sent the spec before this change: send it again
                # once the agent has the container.
                self._unapplied[container_id] = tenant
                return False
            spec = self._networks.spec(container, groups=group_records(self._store, container))
            try:
                await self._agent_for(container.host).update_network(container.id, spec)
            except DockyardError as exc:
                if container_id not in self._unapplied:
                    log.warning(
                        "network spec of container %s not applied, retrying: %s",
                        container_id[:12],
                        exc.message,
                    )
                self._unapplied[container_id] = tenant
                return False
            if self._unapplied.pop(container_id, None) is not None:
                log.info("network spec of container %s applied", container_id[:12])
            return True

    @contextlib.asynccontextmanager
    async def _serialised(self, container_id: str) -> AsyncIterator[None]:
        """One push at a time per container; the lock goes when nobody holds or awaits it."""
        lock, users = self._serial.get(container_id, (asyncio.Lock(), 0))
        self._serial[container_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._serial[container_id]
            if users == 1:
                del self._serial[container_id]
            else:
                self._serial[container_id] = (lock, users - 1)

    async def retry_unapplied(self) -> tuple[str, ...]:
        """Push again every spec not applied yet; the ids still not applied."""
        return await self._push_each([(t, c) for c, t in self._unapplied.items()])

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._retry_forever())
        self._task.add_done_callback(_report_failure)

    async def _retry_forever(self) -> None:
        while True:
            await asyncio.sleep(_RETRY_INTERVAL)
            if self._unapplied:
                await self.retry_unapplied()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("retrying security group pushes failed", exc_info=task.exception())


def _check_settled(container: Container) -> None:
    if container.phase:
        doing = {"creating": "created", "removing": "removed"}.get(container.phase, container.phase)
        raise Conflict(f"container {container.name} is being {doing}")


def _same(a: SecurityGroupRule, b: SecurityGroupRule) -> bool:
    return (a.protocol, a.port_min, a.port_max, a.source, a.source_group) == (
        b.protocol,
        b.port_min,
        b.port_max,
        b.source,
        b.source_group,
    )


def _prefix(text: str) -> str:
    """An IPv4 address or prefix in its canonical form (``1.2.3.4`` is ``1.2.3.4/32``)."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid source {text!r}: an IPv4 address or prefix") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidArgument(f"only IPv4 sources are supported, not {text}")
    if str(network.network_address) != text.split("/", maxsplit=1)[0]:
        raise InvalidArgument(f"invalid source {text}: it should be {network}")
    return str(network)
